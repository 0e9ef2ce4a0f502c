"""5-fold cross-validation on the ten real BraTS 2018 cases: brats3d's default recipe against the careful MONAI
recipe (benchmarks/_recipes.py), the same wall-clock budget per fold, every case scored exactly once, out of fold.

Resumable: one unit of work is one recipe on one fold; each finished unit is appended to the JSON at once, and a
later invocation skips the units already there, and a unit of ours that was stopped mid-training resumes from its
last.pt (so a session that stops mid-run loses at most the MONAI unit in progress).
Units run fold by fold, alternating recipes, so that a machine busier at some times than others affects both alike.
The out-of-fold probabilities of each case are kept under --out (uint8, compressed) so that post-processing can be
chosen from them afterwards (`brats3d postprocess`), without training again; `--score-rules` appends what it scores
to `<json stem>_rules<suffix>.json`.

The budget is wall clock (``--minutes``, what a user on this machine gets) or a number of training patches
(``--patches``, the same network compute for every recipe): with a patch budget a GPU runs the CPU experiment
step for step in a fraction of the time, which is how recipe variants were compared (see BENCHMARKS.md).

Needs ../shared/data/brats18-sample (or --data). Run from benchmarks/:
    python bench_crossval.py --minutes 10                 # everything not yet done
    python bench_crossval.py --patches 1800 --json results/crossval_gpu.json
    python bench_crossval.py --minutes 6 --recipe ours --fold 2
    python bench_crossval.py --minutes 6 --report         # only print the tables from the JSON
    python bench_crossval.py --minutes 10 --postprocess   # choose post-processing rules from ours' probabilities
    python bench_crossval.py --minutes 10 --postprocess --tta on   # the same after predicting again with flip TTA
    python bench_crossval.py --minutes 10 --tta on --score-rules --rules 'postprocessing.thresholds=[0.3,0.3,0.7]'
    python bench_crossval.py --minutes 10 --tta off --window 160x160x48 --score-rules   # predicts again if needed
    python bench_crossval.py --minutes 10 --postprocess --tta on --overlap 0.75   # denser sliding windows
    python bench_crossval.py --minutes 10 --postprocess --tta on --window 160x160x32   # deeper sliding windows
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from _common import REAL_DATA, RESULTS, machine, print_table, sizes
from _recipes import train_recipe

from brats3d.config import load_config
from brats3d.data.labels import REGION_NAMES, REGION_SHORT
from brats3d.data.layouts import discover
from brats3d.evaluation.crossval import save_probabilities
from brats3d.evaluation.evaluate import score_files
from brats3d.evaluation.postprocessing import choose_postprocessing, format_scores, mean_dice_of, score_rules
from brats3d.files import atomic_path
from brats3d.inference.predict import PredictOptions, Predictor
from brats3d.models.device import amp_dtype, select_device
from brats3d.training.data import fold_assignment, steps_per_epoch
from brats3d.training.trainer import train

RECIPES = ("ours", "monai")


def train_unit(recipe: str, fold: int, args, cases, out: Path) -> tuple[Path, dict]:
    """Train one recipe on the training cases of one fold; returns its checkpoint and training facts."""
    overrides = [
        *([f"train.max_minutes={args.minutes}", "train.epochs=100000"] if not args.patches else []),
        f"data.folds={args.folds}",
        f"data.fold={fold}",
        "validation.every=100000",  # the out-of-fold scoring below is the validation; none inside the budget
        *args.set,
    ]
    config = load_config(args.config, overrides)
    validation = set(fold_assignment([c.case_id for c in cases], args.folds, config.seed, config.data.fold_by)[fold])
    n_train = len(cases) - len(validation)
    if args.patches:  # whole epochs of ours' own length, at least the patch budget; the cosine ends with them
        per_epoch = steps_per_epoch(config, n_train, 1) * config.train.batch_size
        config.train.epochs = math.ceil(args.patches / per_epoch)
    run = out / recipe / f"fold_{fold}"
    # an interrupted unit of ours resumes from its last.pt (brats3d's exact resume); the MONAI recipe starts over
    resume = recipe == "ours" and (run / "last.pt").is_file() and (run / "config.yaml").is_file()
    if run.exists() and not resume:
        shutil.rmtree(run)
    if recipe == "ours":
        t0 = time.perf_counter()
        result = train(None if resume else config, run, data_dir=args.data, resume=resume)
        facts = {
            "epochs": result.epochs_done,
            "train_minutes": round((time.perf_counter() - t0) / 60, 1),  # of this invocation only when resumed
            "resumed": resume,
            "patches_per_s": float(np.mean([r["patches_per_s"] for r in result.history])),
            # what train.amp came to on this machine: bf16 asks for it only where the CPU has it natively
            "precision": training_precision(config),
        }
        return run / "last.pt", facts  # the final weights (with folds, best.pt is chosen on these very cases)
    facts = train_recipe(recipe, [c for c in cases if c.case_id not in validation], config, run, args.patches)
    return run / "best.pt", facts


def training_precision(config) -> str:
    """``bf16``, ``fp16`` or ``fp32``: the recipe's ``train.amp`` as this machine runs it (runs on CPUs with and without
    native bf16 differ here, which a comparison between their JSONs has to know)."""
    dtype = amp_dtype(select_device(config.train.device), config.train.amp)
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def score_unit(checkpoint: Path, val_cases, out: Path, args) -> list[dict]:
    """Predict each held-out case as `brats3d evaluate` does (the recipe's flip TTA and rules), keep its
    probabilities, and score it."""
    predictor = Predictor(checkpoint, predict_options(args))
    rows = []
    for case in val_cases:
        prediction = predictor.predict(case)
        seg = predictor.write(prediction, out / "predictions")[0]
        save_probabilities(prediction, out / "probabilities")
        scores = score_files(seg, case).scores
        rows.append({"case": case.case_id, "scores": scores})
        print(f"  {case.case_id}: " + " ".join(f"{REGION_SHORT[n]} {scores[n]['dice']:.3f}" for n in REGION_NAMES))
    return rows


def load_results(path: Path, args) -> dict:
    results = json.loads(path.read_text()) if path.is_file() else {}
    key = {
        "budget_minutes": None if args.patches else args.minutes,
        "budget_patches": args.patches or None,
        "folds": args.folds,
        "set": args.set,
    }
    if {k: results.get(k) for k in key} != key:
        results = {**key, "units": {}}
    return results


def save_results(path: Path, results: dict) -> None:
    results["machine"] = machine()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2))


def report(results: dict) -> None:
    """Mean Dice, median HD95 and volume error per region and recipe over the out-of-fold cases, then per case."""
    rows, per_case = [], []
    for recipe in RECIPES:
        cases = [c for key, unit in results["units"].items() if key.startswith(recipe) for c in unit["cases"]]
        if not cases:
            continue
        row = {"recipe": recipe, "cases": len(cases)}
        for n in REGION_NAMES:
            s = [c["scores"][n] for c in cases]
            row[f"{REGION_SHORT[n]} Dice"] = float(np.mean([x["dice"] for x in s]))
            row[f"{REGION_SHORT[n]} HD95"] = float(np.median([x["hd95"] for x in s]))
            row[f"{REGION_SHORT[n]} vol err ml"] = float(
                np.median([x["pred_volume_ml"] - x["ref_volume_ml"] for x in s])
            )
        rows.append(row)
        for c in cases:
            et = c["scores"]["enhancing_tumour"]
            per_case.append(
                {
                    "recipe": recipe,
                    "case": c["case"],
                    **{REGION_SHORT[n]: round(c["scores"][n]["dice"], 3) for n in REGION_NAMES},
                    "ET pred ml": round(et["pred_volume_ml"], 1),
                    "ET true ml": round(et["ref_volume_ml"], 1),
                }
            )
    if not rows:
        print("no finished units yet")
        return
    budget = (
        f"{results['budget_patches']} patches"
        if results.get("budget_patches")
        else f"{results['budget_minutes']:g} min"
    )
    print(f"\n{results['folds']}-fold cross-validation, {budget} per fold")
    print_table(rows, list(rows[0]) if rows else ["recipe"])
    print()
    print_table(per_case, list(per_case[0]) if per_case else ["recipe"])


def run_folder(args, recipe: str) -> Path:
    budget = f"{args.patches}patches" if args.patches else f"{args.minutes:g}min"
    return Path(args.out) / budget / recipe


def inference_suffix(args) -> str:
    """'' for out-of-fold probabilities predicted as the trained recipe says, else '_tta_on' / '_tta_off'; a
    sliding-window overlap other than 0.5 adds '_overlap<value>', a given window '_window<XxYxZ>'."""
    suffix = "" if args.tta == "recipe" else f"_tta_{args.tta}"
    suffix += "" if args.overlap == 0.5 else f"_overlap{args.overlap:g}"
    return suffix + ("" if args.window is None else f"_window{'x'.join(map(str, args.window))}")


def predict_options(args) -> PredictOptions:
    return PredictOptions(
        window=args.window,
        overlap=args.overlap,
        pictures=False,
        save_probabilities=True,
        tta={"recipe": None, "on": True, "off": False}[args.tta],
    )


def repredict(args, results: dict) -> None:
    """Ours' held-out cases predicted again by their fold's final weights with other inference options (--tta), into
    probabilities<suffix>/, skipping cases already there: inference variants compared without training again."""
    folder = run_folder(args, "ours")
    cases = {c.case_id: c for c in discover(args.data).labelled()}
    out = folder / f"probabilities{inference_suffix(args)}"
    for fold, ids in enumerate(results["assignment"]):
        todo = [i for i in ids if not (out / f"{i}.npz").is_file()]
        if todo and f"ours/fold_{fold}" in results["units"]:
            predictor = Predictor(folder / f"fold_{fold}" / "last.pt", predict_options(args))
            for case_id in todo:
                save_probabilities(predictor.predict(cases[case_id]), out)
                print(f"  fold {fold}: {case_id} -> {out}")


def ours_out_of_fold(args, results: dict) -> tuple[Path, list]:
    """Where ours' stored out-of-fold probabilities lie (for --tta) and the cases scored so far."""
    ids = {c["case"] for key, unit in results["units"].items() if key.startswith("ours") for c in unit["cases"]}
    if not ids:
        raise SystemExit(f"{args.json}: no out-of-fold cases of ours scored yet; run the folds with this --json first")
    cases = [c for c in discover(args.data).labelled() if c.case_id in ids]
    return run_folder(args, "ours") / f"probabilities{inference_suffix(args)}", cases


def postprocess(args, results: dict) -> None:
    """`brats3d postprocess`'s search on ours' out-of-fold probabilities; rules and per-case evidence to JSON."""
    probabilities, cases = ours_out_of_fold(args, results)
    rules, evidence = choose_postprocessing(cases, probabilities, folds=results["assignment"])
    path = Path(args.json).with_name(f"{Path(args.json).stem}_postprocessing{inference_suffix(args)}.json")
    rules.save(path, evidence)
    rows = [
        {
            "case": case,
            "true ET ml": e["true ET ml"],
            **{f"{k} {m}": v for k in ("neutral", "chosen") for m, v in e[k].items()},
        }
        for case, e in evidence["per_case"].items()
    ]
    print(f"\nchosen rules {rules} -> {path}")
    print_table(rows, list(rows[0]))
    print(f"\nrules chosen without each fold, scored on it (nested): {format_scores(evidence['nested']['mean_dice'])}")


def score_given_rules(args, results: dict) -> None:
    """The recipe's rules, changed by --rules, scored on ours' stored out-of-fold probabilities: mean Dice per
    region and each case's enhancing volume (a rule examined without its search choosing it)."""
    rules = load_config(args.config, [*args.set, *args.rules]).postprocessing
    probabilities, cases = ours_out_of_fold(args, results)
    scores = score_rules(cases, probabilities, rules)
    rows = [{"case": case, **{k: round(v, 3) for k, v in s.items()}} for case, s in sorted(scores.items())]
    print(f"rules {rules} on {probabilities}")
    print_table(rows, list(rows[0]))
    print(f"mean Dice {format_scores(mean_dice_of(scores))}")
    path = save_rule_scores(args, rules, scores)
    print(f"-> {path}")


def save_rule_scores(args, rules, scores: dict[str, dict]) -> Path:
    """Appends one scored rule set to ``<json stem>_rules<suffix>.json`` (keyed by the rules, a rescore replaces its
    entry): the numbers outlive the terminal and the probabilities, which a session's /tmp may not keep."""
    path = Path(args.json).with_name(f"{Path(args.json).stem}_rules{inference_suffix(args)}.json")
    saved = json.loads(path.read_text()) if path.is_file() else {}
    saved[str(rules)] = {"rules": asdict(rules), "mean_dice": mean_dice_of(scores), "per_case": scores}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(saved, indent=2))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per recipe and fold")
    parser.add_argument("--patches", type=int, default=0, help="budget in training patches instead of minutes")
    parser.add_argument("--data", default=str(REAL_DATA), help="the labelled cases (default: the shared ten)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold", default="all", help="0..folds-1 or all")
    parser.add_argument("--recipe", choices=(*RECIPES, "all"), default="all")
    parser.add_argument("--config", default="unet3d")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for ours")
    parser.add_argument("--out", default="/tmp/brats3d-crossval", help="run folders, predictions, probabilities")
    parser.add_argument("--json", default=str(RESULTS / "crossval.json"))
    parser.add_argument("--report", action="store_true", help="print the tables from the JSON and stop")
    parser.add_argument("--postprocess", action="store_true", help="choose rules from ours' out-of-fold probabilities")
    parser.add_argument("--score-rules", action="store_true", help="score the recipe's rules (changed by --rules)")
    parser.add_argument("--rules", action="append", default=[], metavar="KEY=VALUE", help="postprocessing.*")
    parser.add_argument(
        "--tta",
        choices=("recipe", "on", "off"),
        default="recipe",
        help="flip TTA when predicting held-out cases (default: as the recipe says); with --postprocess, predict "
        "the held-out cases again this way first (into probabilities_tta_on|off) unless --tta recipe",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=0.5,
        help="sliding-window overlap when predicting held-out cases (other than 0.5: with --postprocess, predicted "
        "again into probabilities<tta>_overlap<value>)",
    )
    parser.add_argument(
        "--window",
        type=sizes,
        help="sliding-window size XxYxZ when predicting held-out cases (default: the recipe's; given: with "
        "--postprocess, predicted again into probabilities<tta>_window<XxYxZ>)",
    )
    args = parser.parse_args()
    path = Path(args.json)
    results = load_results(path, args)
    if args.report:
        report(results)
        return
    if args.score_rules:
        if inference_suffix(args):
            repredict(args, results)
        score_given_rules(args, results)
        return
    if args.postprocess:
        if inference_suffix(args):
            repredict(args, results)
        postprocess(args, results)
        return
    if not Path(args.data).is_dir():
        raise SystemExit(f"{args.data} not found: this benchmark needs the real sample")
    cases = discover(args.data).labelled()
    folds = range(args.folds) if args.fold == "all" else [int(args.fold)]
    recipes = RECIPES if args.recipe == "all" else (args.recipe,)
    # the folds follow the seed the units train with (--set seed=N included), so each case is scored out of fold
    config = load_config(args.config, args.set)
    assignment = fold_assignment([c.case_id for c in cases], args.folds, config.seed, config.data.fold_by)
    results["assignment"] = assignment
    for fold in folds:
        for recipe in recipes:
            key = f"{recipe}/fold_{fold}"
            if key in results["units"]:
                continue
            out = run_folder(args, recipe)
            print(f"== {key}: training {out.parent.name}")
            checkpoint, facts = train_unit(recipe, fold, args, cases, out.parent)
            val_cases = [c for c in cases if c.case_id in assignment[fold]]
            results["units"][key] = {**facts, "cases": score_unit(checkpoint, val_cases, out, args)}
            save_results(path, results)
    report(results)


if __name__ == "__main__":
    main()
