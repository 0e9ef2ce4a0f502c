"""Run every benchmark once, in sequence on this machine, with the settings BENCHMARKS.md quotes.

    python run_all.py                # sampler, data pipeline, training steps, inference (about 8 min on 2 cores)
    python run_all.py --with-real    # then the real-data budget run (3 recipes x 20 min, plus scoring)

Each script prints its table and writes benchmarks/results/*.json; a failing script stops the run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
QUICK = [
    ["bench_patch_sampler.py", "--cases", "3", "--draws", "100"],
    ["bench_data_pipeline.py", "--cases", "4", "--batches", "20"],
    ["bench_training.py", "--network", "unet3d", "--steps", "10"],
    ["bench_training.py", "--network", "vnet", "--steps", "6"],
    ["bench_inference.py", "--network", "unet3d"],
]
REAL = ["bench_real_data.py", "--recipe", "all", "--minutes", "20"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--with-real", action="store_true", help="also run the real-data budget run")
    args = parser.parse_args()
    for command in QUICK + ([REAL] if args.with_real else []):
        print(f"\n$ python {' '.join(command)}", flush=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, *command], cwd=HERE, check=True)
        print(f"({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
