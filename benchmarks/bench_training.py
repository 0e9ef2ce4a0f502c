"""Training step: seconds per step, patches per second and the share of step time spent waiting for data, measured
by ``brats3d train`` itself (its metrics.csv) on real cases when present, for one network at 160x160x16.

Run: python benchmarks/bench_training.py --network unet3d   (and --network vnet)
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import torch
from _common import RESULTS, benchmark_cases, machine, print_table, write_json

from brats3d.config import load_config
from brats3d.models.device import amp_dtype, select_device
from brats3d.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="unet3d")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=2, help="patches per step")
    parser.add_argument("--amp", default="auto")
    parser.add_argument("--config", default=None, help="a packaged config or YAML to start from (e.g. gpu_full_data)")
    parser.add_argument("--workers", type=int, default=0, help="loader processes")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    cases, source = benchmark_cases(args.cases)
    data_root = cases[0].images[0].parent.parent
    ids = [c.case_id for c in cases]
    run = Path(tempfile.mkdtemp(prefix="brats3d-bench-train-")) / "run"
    config = load_config(
        args.config,
        [
            f"model.network={args.network}",
            "data.patches_per_case=1",
            f"train.batch_size={args.batch}",
            f"train.steps_per_epoch={args.steps}",
            "train.epochs=2",
            f"data.num_workers={args.workers}",
            f"train.amp={args.amp}",
            f"data.val_cases={ids[-1:]}",
            "validation.max_cases=1",
            "validation.every=2",
        ],
    )
    config.data.root = str(data_root)
    # Trains on every case of the folder except the last chosen one (validation), as `brats3d train` would.
    result = train(config, run, log=print)
    second = result.history[-1]  # epoch 2: steady state, the cache is warm
    row = {
        "network": args.network,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "amp": str(amp_dtype(select_device(), args.amp) or "off").removeprefix("torch."),
        "patches_per_step": args.batch,
        "s_per_step": args.batch / second["patches_per_s"],
        "patches_per_s": second["patches_per_s"],
        "data_wait_share": second["data_wait_share"],
        "loader_workers": args.workers,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if torch.cuda.is_available():
        row["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(f"\ndata: {source}; config {args.config or 'defaults'}; {args.steps} steps per epoch, epoch 2 shown")
    print_table([row], list(row))
    write_json(
        args.json or str(RESULTS / f"training_{args.network}.json"),
        {"machine": machine(), "source": source, "row": row},
    )


if __name__ == "__main__":
    main()
