"""Real-data budget run: train unet3d on eight of the ten real BraTS 2018 cases for a fixed wall-clock budget,
predict the other two with `brats3d predict`'s code path, check each output sits on its scan's grid, and score them
with `brats3d evaluate`'s code path. The same budget is given to a MONAI-tutorial-style recipe and to a careful
MONAI recipe (benchmarks/_recipes.py): same network, loss, optimiser and schedule, only the data pipeline differs.

Validation cases: one tumour whose core is mostly non-enhancing (low-grade-like) and one whose core enhances
(high-grade-like), the last by name of each kind, so that training also sees both kinds (`--val-cases` overrides).

Needs ../shared/data/brats18-sample. Run: python benchmarks/bench_real_data.py --minutes 20 --recipe all
Results of separate runs with the same budget and validation cases accumulate in benchmarks/results/real_data.json
(one entry per recipe); a recipe whose run folder under --out already holds a trained model is scored again
without training.
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
from brats3d.data.io import load_case
from brats3d.data.labels import REGION_NAMES
from brats3d.data.layouts import Case, discover
from brats3d.evaluation.evaluate import evaluate_folder
from brats3d.evaluation.report import format_table, summary_rows, write_report
from brats3d.inference.predict import PredictOptions, Predictor, summary_line
from brats3d.training.trainer import train


def enhancing_share(case: Case) -> float:
    """Share of the tumour core (non-enhancing + enhancing) that enhances."""
    label = load_case(case, with_label=True).label
    core, enhancing = int(np.isin(label, (2, 3)).sum()), int((label == 3).sum())
    return enhancing / max(core, 1)


def stratified_holdout(cases: list[Case], low_enhancing: float = 0.2) -> list[str]:
    """The last case by name whose core is mostly non-enhancing, and the last whose core enhances."""
    shares = {c.case_id: enhancing_share(c) for c in cases}
    low = sorted(i for i, v in shares.items() if v < low_enhancing)
    high = sorted(i for i, v in shares.items() if v >= low_enhancing)
    if not low or not high:
        return sorted(shares)[-2:]
    return [low[-1], high[-1]]


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
    parser.add_argument("--config", default="unet3d")
    parser.add_argument("--out", default=None)
    parser.add_argument("--val-cases", nargs=2, default=None, metavar="CASE", help="default: stratified_holdout")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--json", default=str(RESULTS / "real_data.json"))
    args = parser.parse_args()
    if not REAL_DATA.is_dir():
        raise SystemExit(f"{REAL_DATA} not found: this benchmark needs the real sample")
    cases = discover(REAL_DATA).labelled()
    val_ids = args.val_cases or stratified_holdout(cases)
    print(f"validation cases: {', '.join(val_ids)}")
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
    if (results.get("budget_minutes"), results.get("validation_cases")) != (args.minutes, val_ids):
        results = {}  # rows from another budget or split are not comparable
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
            info = train_recipe(recipe, train_cases, config, out / "run")
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
