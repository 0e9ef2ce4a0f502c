"""Which T1ce criterion separates enhancing tumour from the rest of the core best? Scored on out-of-fold probabilities.

The recipe's rule (``postprocessing.min_enhancing_contrast``) relabels predicted enhancing voxels whose T1ce z-score,
against the scan's predicted healthy brain, is under a bound. BraTS annotators compare T1ce with the native T1, so
this benchmark also tries the T1ce z-score minus the T1 z-score (T1-bright blood products would then not count as
enhancing), alone and with the recipe's rule. All other rules are the recipe's. It also scores whole-tumour
thresholds below the search's lowest candidate. No training: it reads a cross-validation's probabilities.

    python bench_enhancement_criteria.py \
        --probabilities /tmp/brats3d-crossval-fp32amx_seed0/2520patches/ours/probabilities_tta_on
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from _common import REAL_DATA, print_table

from brats3d.config import load_config
from brats3d.data.labels import ENHANCING, NON_ENHANCING
from brats3d.data.layouts import discover
from brats3d.data.targets import REGIONS, get_target
from brats3d.evaluation.metrics import Confusion, structure_mask
from brats3d.evaluation.postprocessing import OutOfFoldCase
from brats3d.transforms.postprocess import healthy_z_scores, relabel_small_enhancing, remove_small_components

# name: (T1ce z bound or None, T1ce-minus-T1 bound or None); a voxel stays enhancing only when it passes both
CRITERIA = {
    "none": (None, None),
    "T1ce z >= 0": (0.0, None),
    "T1ce z >= 0.5 (the recipe's)": (0.5, None),
    **{f"T1ce - T1 >= {d:g}": (None, d) for d in (0.0, 0.25, 0.5, 1.0, 1.5)},
    "T1ce z >= 0.5 and T1ce - T1 >= 0": (0.5, 0.0),
    "T1ce z >= 0.5 and T1ce - T1 >= 0.5": (0.5, 0.5),
}
WT_THRESHOLDS = (0.2, 0.25, 0.3, 0.4, 0.5)


def enhancing_dice(
    case: OutOfFoldCase,
    labels: np.ndarray,
    z: tuple[np.ndarray, np.ndarray],
    t1ce_min,
    difference_min,
    min_enhancing: int,
):
    """ET Dice and predicted ET ml after relabelling the enhancing voxels that fail the criterion as core; ``z`` is
    the case's (T1ce, T1) z-scores against its predicted healthy brain."""
    t1ce, t1 = z
    fails = np.zeros(labels.shape, bool)
    if t1ce_min is not None:
        fails |= t1ce < t1ce_min
    if difference_min is not None:
        fails |= (t1ce - t1) < difference_min
    out = labels.copy()
    out[(out == ENHANCING) & fails] = NON_ENHANCING
    out = relabel_small_enhancing(out, min_enhancing)
    mask = structure_mask(out, "enhancing_tumour")
    dice = Confusion.of(mask, structure_mask(case.truth, "enhancing_tumour")).dice
    return dice, np.count_nonzero(mask) * case.voxel_ml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probabilities", required=True, help="a cross-validation's probabilities_tta_* folder")
    parser.add_argument("--data", default=str(REAL_DATA))
    parser.add_argument("--config", default="unet3d", help="the recipe whose other rules apply")
    args = parser.parse_args()
    rules = load_config(args.config).postprocessing
    cases = [OutOfFoldCase(c, args.probabilities) for c in discover(args.data).cases]
    scores = {name: [] for name in CRITERIA}
    for case in cases:
        labels = get_target(REGIONS).labels(case.probs, rules.thresholds)
        labels = remove_small_components(np.where(case.brain, labels, 0).astype(np.uint8), rules.min_component)
        healthy = case.brain & (labels == 0)
        z = healthy_z_scores(case.image, healthy, "t1ce"), healthy_z_scores(case.image, healthy, "t1")
        for name, (t1ce_min, difference_min) in CRITERIA.items():
            scores[name].append(enhancing_dice(case, labels, z, t1ce_min, difference_min, rules.min_enhancing))
    low = [i for i, c in enumerate(cases) if c.true_enhancing_ml < 5]
    rows = [
        {
            "criterion": name,
            "mean ET Dice": round(float(np.mean([d for d, _ in s])), 4),
            **{f"{cases[i].case_id} ml (true {cases[i].true_enhancing_ml:.1f})": round(s[i][1], 1) for i in low},
        }
        for name, s in scores.items()
    ]
    print_table(rows, list(rows[0]))
    print()
    wt = []
    for t in WT_THRESHOLDS:
        trial = replace(rules, thresholds=[t, *rules.thresholds[1:]])
        wt.append(
            {
                "WT threshold": t,
                "mean WT Dice": round(float(np.mean([c.dice(trial)["whole_tumour"] for c in cases])), 4),
            }
        )
    print_table(wt, ["WT threshold", "mean WT Dice"])


if __name__ == "__main__":
    main()
