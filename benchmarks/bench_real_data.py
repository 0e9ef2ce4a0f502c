"""Real-data budget run: train unet3d on eight of the ten real BraTS 2018 cases for a fixed wall-clock budget,
then predict the other two with `brats3d predict`'s code path, check each output sits on its scan's grid, and score
them with `brats3d evaluate`'s code path (Dice, sensitivity, specificity, HD95 per region).

Needs ../shared/data/brats18-sample. Run: python benchmarks/bench_real_data.py --minutes 20
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from _common import REAL_DATA, RESULTS, machine, print_table, write_json

from brats3d.config import load_config
from brats3d.data.labels import REGION_NAMES
from brats3d.data.layouts import discover
from brats3d.evaluation.evaluate import evaluate_folder
from brats3d.evaluation.report import format_table, summary_rows, write_report
from brats3d.inference.predict import PredictOptions, Predictor, summary_line
from brats3d.training.trainer import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--config", default=str(Path(__file__).parents[1] / "configs" / "unet3d.yaml"))
    parser.add_argument("--out", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", default=str(RESULTS / "real_data.json"))
    args = parser.parse_args()
    if not REAL_DATA.is_dir():
        raise SystemExit(f"{REAL_DATA} not found: this benchmark needs the real sample")
    cases = discover(REAL_DATA).labelled()
    val_ids = [c.case_id for c in cases[-2:]]
    out = Path(args.out or tempfile.mkdtemp(prefix="brats3d-real-"))
    config = load_config(
        args.config,
        [
            "train.epochs=1000",
            f"train.max_minutes={args.minutes}",
            f"data.val_cases={val_ids}",
            "validation.every=1000",
            "data.num_workers=0",
            *args.set,
        ],
    )
    config.data.root = str(REAL_DATA)
    t0 = time.perf_counter()
    result = train(config, out / "run")
    train_s = time.perf_counter() - t0

    predictor = Predictor(out / "run" / "best.pt", PredictOptions(overlap=0.5))
    geometry = []
    for case in (c for c in cases if c.case_id in val_ids):
        prediction = predictor.predict(case)
        seg = predictor.write(prediction, out / "predictions")[0]
        print(summary_line(prediction))
        a, b = nib.load(str(seg)), nib.load(str(case.images[0]))
        geometry.append(
            {
                "case": case.case_id,
                "same_shape": a.shape == b.shape,
                "same_affine": bool(np.allclose(a.affine, b.affine)),
                "same_codes": (int(a.header["qform_code"]), int(a.header["sform_code"]))
                == (int(b.header["qform_code"]), int(b.header["sform_code"])),
            }
        )
    subset = out / "reference"
    subset.mkdir(exist_ok=True)
    for case_id in val_ids:
        link = subset / case_id
        if not link.exists():
            link.mkdir()
            for f in (REAL_DATA / case_id).iterdir():
                (link / f.name).symlink_to(f)
    evaluation = evaluate_folder(out / "predictions", subset)
    report = write_report(evaluation, out / "evaluation")
    print(format_table(summary_rows(evaluation)))
    print()
    print_table(geometry, list(geometry[0]))
    summary = evaluation.summary()
    row = {
        "epochs": result.epochs_done,
        "train_minutes": round(train_s / 60, 1),
        **{f"dice_{n}": round(summary[n]["dice"]["mean"], 4) for n in REGION_NAMES},
    }
    print()
    print_table([row], list(row))
    print(f"report: {report}")
    write_json(
        args.json,
        {
            "machine": machine(),
            "budget_minutes": args.minutes,
            "validation_cases": val_ids,
            "result": row,
            "geometry": geometry,
            "summary": summary,
            "run": str(out),
        },
    )


if __name__ == "__main__":
    main()
