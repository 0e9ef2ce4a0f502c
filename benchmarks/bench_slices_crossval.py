"""5-fold cross-validation of 2D slice segmentation on real scans: the ten shared BraTS cases cut into LGG-style
slices (make_lgg_slices.py), split by patient, each patient scored exactly once out of fold by its per-patient DSC
(the LGG reference metric: the patient's slices stacked).

Recipes: ``default`` (configs/lgg2d.yaml: U-Net, Dice + BCE, slice augmentation, channels scaled by the training
set) against ``reference`` (the reference notebook's recipe: the same U-Net with soft Dice alone, no augmentation,
each image scaled on its own). Same wall-clock budget per fold. Resumable: one (recipe, fold) per unit, appended
to the JSON as it finishes.

    python benchmarks/make_lgg_slices.py --out /tmp/brats-lgg
    python benchmarks/bench_slices_crossval.py --data /tmp/brats-lgg --minutes 3
    python benchmarks/bench_slices_crossval.py --report
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, machine, print_table

from brats3d.config import load_config
from brats3d.data.slices import discover_slices
from brats3d.evaluation.slices import evaluate_with_models
from brats3d.files import atomic_path
from brats3d.inference.slices import SliceModels, SlicePredictOptions
from brats3d.training.data import fold_assignment
from brats3d.training.trainer import train

RECIPES = {
    "default": [],
    "reference": ["loss.name=dice", "data.augment=false", "data.normalisation=image"],
}


def run_unit(recipe: str, fold: int, args) -> dict:
    overrides = [
        *RECIPES[recipe],
        f"data.folds={args.folds}",
        f"data.fold={fold}",
        f"train.max_minutes={args.minutes}",
        "train.epochs=100000",
        "validation.every=100000",  # the out-of-fold scoring below is the validation
        *args.set,
    ]
    config = load_config("lgg2d", overrides)
    run = Path(args.out) / recipe / f"fold_{fold}"
    t0 = time.perf_counter()
    result = train(config, run, data_dir=args.data, log=print)
    minutes = (time.perf_counter() - t0) / 60
    held_out = set(json.loads((run / "split.json").read_text())["validation"])
    slices = [s for s in discover_slices(args.data).labelled() if s.patient in held_out]
    evaluation = evaluate_with_models(SliceModels.load([run / "last.pt"]), slices, SlicePredictOptions())
    return {
        "recipe": recipe,
        "fold": fold,
        "epochs": result.epochs_done,
        "train_minutes": round(minutes, 1),
        "slices_per_s": float(np.mean([r["patches_per_s"] for r in result.history])),
        "patients": evaluation.patients(),
        "per_image_dsc_mean": float(np.mean([r["foreground_dsc"] for r in evaluation.images])),
    }


def report(results: dict) -> None:
    rows = []
    for recipe in RECIPES:
        units = [u for u in results["units"] if u["recipe"] == recipe]
        if not units:
            continue
        dsc = [p["foreground_dsc"] for u in units for p in u["patients"]]
        rows.append(
            {
                "recipe": recipe,
                "folds": len(units),
                "patients": len(dsc),
                "dsc_per_patient_mean": float(np.mean(dsc)),
                "dsc_per_patient_median": float(np.median(dsc)),
                "dsc_per_image_mean": float(np.mean([u["per_image_dsc_mean"] for u in units])),
                "slices_per_s": float(np.mean([u["slices_per_s"] for u in units])),
            }
        )
    print_table(rows, list(rows[0]) if rows else ["recipe"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="/tmp/brats-lgg", help="LGG-style slices of the ten cases")
    parser.add_argument("--minutes", type=float, default=3.0, help="training budget per recipe and fold")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold", type=int, help="only this fold")
    parser.add_argument("--recipe", choices=list(RECIPES), help="only this recipe")
    parser.add_argument("--set", action="append", default=[], help="config override for both recipes")
    parser.add_argument("--out", default="/tmp/brats3d-slices-cv")
    parser.add_argument("--json", default=str(RESULTS / "slices_crossval.json"))
    parser.add_argument("--report", action="store_true", help="only print the table from the JSON")
    args = parser.parse_args()
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.is_file() else {"machine": machine(), "settings": {}, "units": []}
    if not args.report:
        results["settings"] = {"minutes": args.minutes, "folds": args.folds, "set": args.set}
        patients = sorted({s.patient for s in discover_slices(args.data).slices})
        fold_assignment(patients, args.folds)  # fails early with too few patients
        done = {(u["recipe"], u["fold"]) for u in results["units"]}
        for fold in [args.fold] if args.fold is not None else range(args.folds):
            for recipe in [args.recipe] if args.recipe else RECIPES:
                if (recipe, fold) in done:
                    continue
                results["units"].append(run_unit(recipe, fold, args))
                with atomic_path(path) as tmp:
                    tmp.write_text(json.dumps(results, indent=2))
    report(results)


if __name__ == "__main__":
    main()
