"""Choose post-processing rules from out-of-fold predictions (as nnU-Net's ``find_best_configuration``).

Rules are searched one after the other, each kept only when it raises the mean out-of-fold Dice of the region it
acts on by at least ``MIN_GAIN`` (ten cases are few: a change that moves the mean by less is noise, and the neutral
rule generalises best): the threshold of WT, then TC, then ET; the smallest tumour component kept; the T1ce contrast
below which predicted enhancing voxels become core; the smallest enhancing volume kept (below it, enhancing voxels
become necrotic / non-enhancing core).

The enhancing-volume rule pays only on scans without enhancing tumour (common in low-grade gliomas): there an empty
prediction scores Dice 1 and a few stray enhancing voxels score 0. When no case in the evidence lacks enhancing
tumour, the search is blind to that benefit and would always answer "no rule"; it then keeps ``ENHANCING_PRIOR``
(within the tens to hundreds of voxels that BraTS entries use) unless that costs the enhancing Dice ``MIN_GAIN`` or
more on the cases it has.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from brats3d.data.brain import brain_mask
from brats3d.data.io import load_case
from brats3d.data.labels import REGION_NAMES, REGION_SHORT
from brats3d.data.layouts import Case
from brats3d.data.targets import REGIONS, get_target
from brats3d.evaluation.crossval import load_probabilities
from brats3d.evaluation.metrics import Confusion, structure_mask
from brats3d.transforms.postprocess import PostProcessing

MIN_GAIN = 0.005
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
MIN_COMPONENTS = (0, 100, 500, 1000, 3000, 5000, 10000)  # voxels (1 mm³ each in BraTS)
MIN_ENHANCING = (0, 100, 250, 500, 1000, 2000)  # voxels
ENHANCING_PRIOR = 500  # voxels (0.5 ml on BraTS' 1 mm grid)
ENHANCING_CONTRASTS = (-0.5, 0.0, 0.5, 1.0)  # T1ce z-scores against the predicted healthy brain


class OutOfFoldCase:
    """One case's out-of-fold probabilities and truth, cropped to the brain's bounding box to keep the search fast."""

    def __init__(self, case: Case, probability_dir: Path) -> None:
        loaded = load_case(case, ras=True)
        probs = load_probabilities(probability_dir, case.case_id)
        brain = brain_mask(loaded.image)
        box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(brain))
        self.case_id = case.case_id
        self.image = loaded.image[(slice(None), *box)]  # for the enhancing-contrast rule
        # The network's own channels: three sigmoid regions, or the softmax over background and the BraTS classes.
        target = get_target(REGIONS if probs.shape[0] == len(REGION_NAMES) else "classes")
        self.probs = target.region_probabilities(probs[(slice(None), *box)])
        self.brain = brain[box]
        self.truth = loaded.label[box]
        self.voxel_ml = float(abs(np.linalg.det(loaded.affine[:3, :3]))) / 1000.0
        self.true_enhancing_ml = int(np.count_nonzero(structure_mask(self.truth, "enhancing_tumour"))) * self.voxel_ml

    @property
    def has_enhancing(self) -> bool:
        return self.true_enhancing_ml > 0

    def labels(self, rules: PostProcessing) -> np.ndarray:
        labels = get_target(REGIONS).labels(self.probs, rules.thresholds)
        return rules.apply(np.where(self.brain, labels, 0).astype(np.uint8), self.image)

    def dice(self, rules: PostProcessing, labels: np.ndarray | None = None) -> dict[str, float]:
        labels = self.labels(rules) if labels is None else labels
        return {n: Confusion.of(structure_mask(labels, n), structure_mask(self.truth, n)).dice for n in REGION_NAMES}

    def summary(self, rules: PostProcessing) -> dict[str, float]:
        """Dice per region and the enhancing volume (ml), the figures a reader checks a rule against."""
        labels = self.labels(rules)
        scores = {REGION_SHORT[n]: round(d, 4) for n, d in self.dice(rules, labels).items()}
        enhancing = int(np.count_nonzero(structure_mask(labels, "enhancing_tumour")))
        return {**scores, "ET ml": round(enhancing * self.voxel_ml, 2)}


def _mean_dice(cases: list[OutOfFoldCase], rules: PostProcessing) -> dict[str, float]:
    scores = [c.dice(rules) for c in cases]
    return {n: float(np.mean([s[n] for s in scores])) for n in REGION_NAMES}


def score_rules(cases: list[Case], probability_dir: str | Path, rules: PostProcessing) -> dict[str, dict]:
    """Dice per region and enhancing volume of each case under ``rules`` (rules scored on cases of one's choice)."""
    return {c.case_id: c.summary(rules) for c in (OutOfFoldCase(case, Path(probability_dir)) for case in cases)}


def mean_dice_of(summaries: dict[str, dict]) -> dict[str, float]:
    """Mean Dice per region name over per-case summaries (``score_rules``' values), for ``format_scores``."""
    return {n: round(float(np.mean([s[REGION_SHORT[n]] for s in summaries.values()])), 4) for n in REGION_NAMES}


def choose_postprocessing(
    cases: list[Case], probability_dir: str | Path, log=print, folds: list[list[str]] | None = None
) -> tuple[PostProcessing, dict]:
    """The rules that the out-of-fold predictions support, and the evidence (mean Dice before and after; with
    ``folds``, also the nested estimate of what the rules are worth on unseen cases). Each case is read once."""
    loaded = [OutOfFoldCase(c, Path(probability_dir)) for c in cases]
    rules, evidence = _search(loaded, log)
    if folds:
        evidence["nested"] = _nested_estimate(loaded, folds)
    return rules, evidence


def _nested_estimate(loaded: list[OutOfFoldCase], folds: list[list[str]]) -> dict:
    """For each fold, rules chosen on the other folds' cases only, scored on the fold's own cases: what the search's
    rules are worth on unseen scans (the plain search scores the very cases it chose on, which flatters it)."""
    per_case, per_fold = {}, []
    for held_out in folds:
        chosen, _ = _search([c for c in loaded if c.case_id not in held_out], lambda _: None)
        per_fold.append(asdict(chosen))
        per_case.update({c.case_id: c.summary(chosen) for c in loaded if c.case_id in held_out})
    return {"mean_dice": mean_dice_of(per_case), "rules_per_fold": per_fold, "per_case": per_case}


def _search(loaded: list[OutOfFoldCase], log) -> tuple[PostProcessing, dict]:
    """The search itself, on cases already read."""
    rules = PostProcessing()
    before = best = _mean_dice(loaded, rules)
    log("neutral rules: " + format_scores(before))

    def search(region: str, candidates, make) -> None:
        nonlocal rules, best
        for value in candidates:
            trial = make(value)
            scores = _mean_dice(loaded, trial)
            if scores[region] >= best[region] + MIN_GAIN:
                rules, best = trial, scores
        log(f"after {REGION_SHORT[region]} search: {format_scores(best)}")

    for i, region in enumerate(REGION_NAMES):
        search(
            region,
            THRESHOLDS,
            lambda t, i=i: replace(rules, thresholds=[*rules.thresholds[:i], t, *rules.thresholds[i + 1 :]]),
        )
    search("whole_tumour", MIN_COMPONENTS, lambda v: replace(rules, min_component=v))
    search("enhancing_tumour", ENHANCING_CONTRASTS, lambda z: replace(rules, min_enhancing_contrast=z))
    if all(c.has_enhancing for c in loaded):
        prior = replace(rules, min_enhancing=ENHANCING_PRIOR)
        scores = _mean_dice(loaded, prior)
        if scores["enhancing_tumour"] > best["enhancing_tumour"] - MIN_GAIN:
            rules, best = prior, scores
            log(f"every case has enhancing tumour: the enhancing-volume rule keeps its prior, {ENHANCING_PRIOR} voxels")
    search("enhancing_tumour", MIN_ENHANCING, lambda v: replace(rules, min_enhancing=v))
    evidence = {
        "cases": [c.case_id for c in loaded],
        "mean_dice_neutral": before,
        "mean_dice_chosen": best,
        "min_gain": MIN_GAIN,
        "cases_without_enhancing": sum(not c.has_enhancing for c in loaded),
        "per_case": {
            c.case_id: {
                "true ET ml": round(c.true_enhancing_ml, 2),
                "neutral": c.summary(PostProcessing()),
                "chosen": c.summary(rules),
            }
            for c in loaded
        },
    }
    return rules, evidence


def format_scores(scores: dict[str, float]) -> str:
    """``WT 0.8000 TC ... ET ...`` from mean Dice keyed by region name."""
    return " ".join(f"{REGION_SHORT[n]} {scores[n]:.4f}" for n in REGION_NAMES)
