"""Whole-scan inference: seconds per 240x240x155 case split into load / sliding window / write / pictures, for
overlap 0.25, 0.5 and 0.75, with and without flip TTA; and our sliding-window stage next to a plain MONAI
``sliding_window_inference`` call on the uncropped scan at the same settings.

Timings do not depend on the weights, so a freshly initialised network is used unless --checkpoint is given.
Run: python benchmarks/bench_inference.py [--network unet3d] [--checkpoint runs/x/best.pt] [--window 160x160x32]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
from _common import RESULTS, benchmark_cases, machine, print_table, sizes, write_json
from monai.inferers import sliding_window_inference

from brats3d.config import load_config
from brats3d.data.io import load_case
from brats3d.inference.predict import PredictOptions, Predictor
from brats3d.models import build_network
from brats3d.models.checkpoint import save_checkpoint
from brats3d.transforms.intensity import brain_normalisation


def fresh_checkpoint(network: str, folder: Path) -> Path:
    config = load_config(None, [f"model.network={network}"])
    model = build_network(network, config.data.patch_size)
    path = folder / f"{network}.pt"
    save_checkpoint(path, model, config, "brats2021")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--network", default="unet3d")
    parser.add_argument("--checkpoint")
    parser.add_argument("--cases", type=int, default=1)
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--window",
        type=sizes,
        help="sliding window XxYxZ (default: the recipe's inference.window, else its patch)",
    )
    args = parser.parse_args()
    cases, source = benchmark_cases(args.cases)
    tmp = Path(tempfile.mkdtemp(prefix="brats3d-bench-infer-"))
    ckpt = Path(args.checkpoint) if args.checkpoint else fresh_checkpoint(args.network, tmp)
    rows = []
    for overlap in (0.25, 0.5, 0.75):
        for tta in (False, True):
            predictor = Predictor(ckpt, PredictOptions(window=args.window, overlap=overlap, tta=tta))
            for case in cases:
                t0 = time.perf_counter()
                prediction = predictor.predict(case)
                predictor.write(prediction, tmp / "out")
                t = prediction.timings
                rows.append(
                    {
                        "overlap": overlap,
                        "tta": tta,
                        "case": case.case_id,
                        **{k: round(v, 2) for k, v in t.items()},
                        "total_s": round(time.perf_counter() - t0, 2),
                    }
                )
    # Our sliding-window stage vs a plain MONAI call on the whole (uncropped, normalised) scan, same settings.
    predictor = Predictor(ckpt, PredictOptions(window=args.window, overlap=0.5, pictures=False))
    loaded = load_case(cases[0], with_label=False, ras=True)
    image = torch.as_tensor(brain_normalisation("image")({"image": loaded.image})["image"]).float()[None]
    with torch.no_grad():
        t0 = time.perf_counter()
        sliding_window_inference(image, predictor.window, 4, predictor.models[0], overlap=0.5, mode="gaussian")
        plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = predictor.predict(cases[0]).timings["infer"]
    compare = [
        {"stage": "plain MONAI sliding_window_inference, whole scan", "seconds": round(plain, 2)},
        {"stage": "brats3d sliding window (cropped to brain)", "seconds": round(ours, 2)},
    ]
    print(f"data: {source}; network {args.network}; window {predictor.window}; torch threads {torch.get_num_threads()}")
    print_table(rows, list(rows[0]))
    print()
    print_table(compare, ["stage", "seconds"])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {peak_mb:.0f} MB")
    write_json(
        args.json or str(RESULTS / f"inference_{args.network}.json"),
        {"machine": machine(), "source": source, "rows": rows, "sliding_window": compare, "peak_rss_mb": peak_mb},
    )


if __name__ == "__main__":
    main()
