"""Real-data budget run: train unet3d on eight of the ten real BraTS 2018 cases for a fixed wall-clock budget,
predict the other two with `brats3d predict`'s code path, check each output sits on its scan's grid, and score them
with `brats3d evaluate`'s code path. The same budget is given to a MONAI-tutorial-style recipe and to a careful
MONAI recipe (benchmarks/_recipes.py): same network, loss, optimiser and schedule, only the data pipeline differs.

Needs ../shared/data/brats18-sample. Run: python benchmarks/bench_real_data.py --minutes 20 --recipe all
Results of separate runs accumulate in benchmarks/results/real_data.json (one entry per recipe); a recipe whose
run folder under --out already holds a trained model is scored again without training.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from _common import REAL_DATA, RESULTS, machine, print_table, write_json
from _recipes import RECIPES, train_recipe

from brats3d.config import load_config
from brats3d.data.labels import REGION_NAMES
from brats3d.data.layouts import discover
from brats3d.evaluation.evaluate import evaluate_folder
from brats3d.evaluation.report import format_table, summary_rows, write_report
from brats3d.inference.predict import PredictOptions, Predictor, summary_line
from brats3d.training.trainer import train


def score(run_dir: Path, out: Path, val_cases) -> tuple[dict, list[dict]]:
    predictor = Predictor(run_dir / "best.pt", PredictOptions(overlap=0.5))
    geometry = []
    for case in val_cases:
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
    reference = out / "reference"  # the two validation cases only, as a dataset folder of links
    for case in val_cases:
        folder = reference / case.case_id
        folder.mkdir(parents=True, exist_ok=True)
        for f in (REAL_DATA / case.case_id).iterdir():
            if not (folder / f.name).exists():
                (folder / f.name).symlink_to(f)
    evaluation = evaluate_folder(out / "predictions", reference)
    write_report(evaluation, out / "evaluation")
    print(format_table(summary_rows(evaluation)))
    return evaluation.summary(), geometry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--recipe", choices=("ours", *RECIPES, "all"), default="all")
    parser.add_argument("--config", default=str(Path(__file__).parents[1] / "configs" / "unet3d.yaml"))
    parser.add_argument("--out", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", default=str(RESULTS / "real_data.json"))
    args = parser.parse_args()
    if not REAL_DATA.is_dir():
        raise SystemExit(f"{REAL_DATA} not found: this benchmark needs the real sample")
    cases = discover(REAL_DATA).labelled()
    val_ids = [c.case_id for c in cases[-2:]]
    val_cases = [c for c in cases if c.case_id in val_ids]
    root = Path(args.out or tempfile.mkdtemp(prefix="brats3d-real-"))
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
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("recipes", {})
    recipes = ("ours", *RECIPES) if args.recipe == "all" else (args.recipe,)
    for recipe in recipes:
        out = root / recipe
        info_path = out / "run" / "info.json"
        if info_path.is_file():  # trained by an earlier call: score it again (e.g. after a scoring change)
            info = json.loads(info_path.read_text())
        elif recipe == "ours":
            t0 = time.perf_counter()
            result = train(config, out / "run")
            info = {
                "epochs": result.epochs_done,
                "train_minutes": round((time.perf_counter() - t0) / 60, 1),
                "patches_per_s": float(np.mean([r["patches_per_s"] for r in result.history])),
            }
        else:
            train_cases = [c for c in cases if c.case_id not in val_ids]
            info = train_recipe(recipe, train_cases, config, out / "run", args.minutes)
        info_path.write_text(json.dumps(info))
        summary, geometry = score(out / "run", out, val_cases)
        results["recipes"][recipe] = {
            **info,
            **{f"dice_{n}": summary[n]["dice"]["mean"] for n in REGION_NAMES},
            "geometry": geometry,
            "summary": summary,
            "run": str(out),
        }
    results.update({"machine": machine(), "budget_minutes": args.minutes, "validation_cases": val_ids})
    write_json(path, results)
    rows = [
        {
            "recipe": name,
            **{
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in r.items()
                if k in ("epochs", "train_minutes", "patches_per_s", *(f"dice_{n}" for n in REGION_NAMES))
            },
        }
        for name, r in results["recipes"].items()
    ]
    print(f"\nbudget {args.minutes:g} min per recipe on 2 CPU cores; validation cases {', '.join(val_ids)}")
    print_table(rows, list(rows[0]))
    geometry = [g | {"recipe": n} for n, r in results["recipes"].items() for g in r["geometry"]]
    print()
    print_table(geometry, ["recipe", "case", "same_shape", "same_affine", "same_codes"])


if __name__ == "__main__":
    main()
