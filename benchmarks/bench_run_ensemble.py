"""One long run or two short ones? The out-of-fold estimate of an ensemble of independent cross-validation runs.

Two cross-validation runs of one recipe with other seeds split the cases into other folds, but each run's model for a
case never saw that case; the mean of the runs' out-of-fold probabilities is therefore an out-of-fold prediction of
the ensemble of those runs (what `brats3d evaluate --checkpoint a.pt b.pt` gives a user who trains twice). It is
scored as ``bench_crossval.py --postprocess`` scores one run (the rule search, the rules chosen without each fold of
--folds-from's split, scored on it) and with the recipe's rules. No training, no inference: a few minutes.

Run from benchmarks/, after the runs' ``bench_crossval.py --tta on --postprocess``:
    python bench_run_ensemble.py \\
        --runs /tmp/brats3d-crossval-channels_last/2520patches/ours/probabilities_tta_on \\
               /tmp/brats3d-crossval-default_seed2/2520patches/ours/probabilities_tta_on \\
        --folds-from results/crossval_bf16_hard_channels_last.json \\
        --json results/run_ensemble_seed0_seed2_postprocessing_tta_on.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from _common import REAL_DATA, print_table

from brats3d.config import load_config
from brats3d.data.layouts import discover
from brats3d.evaluation.crossval import load_probabilities, store_probabilities
from brats3d.evaluation.postprocessing import choose_postprocessing, format_scores, mean_dice_of, score_rules


def average_runs(runs: list[Path], case_ids: list[str], out: Path) -> None:
    """Each case's probabilities averaged over the runs, stored in ``out`` as a run's own are."""
    for case_id in case_ids:
        probs = [load_probabilities(run, case_id) for run in runs]
        if len({p.shape for p in probs}) != 1:
            raise SystemExit(f"{case_id}: the runs' probabilities differ in shape {[p.shape for p in probs]}")
        store_probabilities(np.mean(probs, axis=0), case_id, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", nargs="+", type=Path, required=True, help="probability folders of the runs")
    parser.add_argument("--folds-from", type=Path, required=True, help="a bench_crossval JSON: its split")
    parser.add_argument("--data", default=str(REAL_DATA))
    parser.add_argument("--config", default="unet3d", help="the recipe whose rules are scored")
    parser.add_argument("--json", type=Path, required=True, help="rules and evidence, as --postprocess writes them")
    args = parser.parse_args()
    assignment = json.loads(args.folds_from.read_text())["assignment"]
    case_ids = [c for fold in assignment for c in fold]
    cases = [c for c in discover(args.data).labelled() if c.case_id in case_ids]
    with tempfile.TemporaryDirectory() as tmp:
        average_runs(args.runs, case_ids, Path(tmp))
        rules, evidence = choose_postprocessing(cases, tmp, folds=assignment)
        recipe = score_rules(cases, tmp, load_config(args.config).postprocessing)
    evidence["runs"] = [str(r) for r in args.runs]
    evidence["recipe_rules"] = {"mean_dice": mean_dice_of(recipe), "per_case": recipe}
    rules.save(args.json, evidence)
    print(f"\nchosen rules {rules} -> {args.json}")
    print(f"no rules: {format_scores(evidence['mean_dice_neutral'])}")
    print(f"rules chosen without each fold, scored on it (nested): {format_scores(evidence['nested']['mean_dice'])}")
    rows = [{"case": case, **{k: round(v, 3) for k, v in s.items()}} for case, s in sorted(recipe.items())]
    print_table(rows, list(rows[0]))
    print(f"the recipe's rules: {format_scores(mean_dice_of(recipe))}")


if __name__ == "__main__":
    main()
