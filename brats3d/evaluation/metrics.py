"""Per-structure metrics on canonical label maps.

Conventions (as in the BraTS challenge): both masks empty -> Dice 1, sensitivity 1, HD95 0; exactly one empty ->
Dice 0 and HD95 373.13 mm (the diagonal of the BraTS volume). Specificity counts true negatives over the whole
scan. Dice, sensitivity and specificity come from one confusion count per structure, so the three share one set of
empty-mask rules (MONAI's ``DiceMetric`` gives the BraTS 1 or 0 only with ``ignore_empty=False``, its default
returns NaN for an empty reference, and its ``ConfusionMatrixMetric`` has no such switch for sensitivity); HD95 uses
MONAI's ``compute_hausdorff_distance`` with the voxel spacing.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance

from brats3d.data.labels import CLASS_NAMES, EDEMA, ENHANCING, NON_ENHANCING, REGION_LABELS, REGION_NAMES

BRATS_MAX_HD95 = 373.12866  # mm: sqrt(240² + 240² + 155²), the value BraTS gives when one mask is empty
# Every scored structure and the canonical labels it is made of.
STRUCTURES: dict[str, tuple[int, ...]] = {
    **dict(zip(CLASS_NAMES, ((EDEMA,), (NON_ENHANCING,), (ENHANCING,)))),
    **dict(zip(REGION_NAMES, REGION_LABELS)),
}
METRICS = ("dice", "sensitivity", "specificity", "hd95", "pred_volume_ml", "ref_volume_ml")


@dataclass(frozen=True)
class Confusion:
    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def of(cls, pred: np.ndarray, ref: np.ndarray) -> Confusion:
        pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
        tp = int(np.count_nonzero(pred & ref))
        fp = int(np.count_nonzero(pred)) - tp
        fn = int(np.count_nonzero(ref)) - tp
        return cls(tp, fp, fn, pred.size - tp - fp - fn)

    @property
    def dice(self) -> float:
        denom = 2 * self.tp + self.fp + self.fn
        return 1.0 if denom == 0 else 2 * self.tp / denom

    @property
    def sensitivity(self) -> float:
        positives = self.tp + self.fn
        return 1.0 if positives == 0 else self.tp / positives

    @property
    def specificity(self) -> float:
        negatives = self.tn + self.fp
        return 1.0 if negatives == 0 else self.tn / negatives


def structure_mask(label: np.ndarray, structure: str) -> np.ndarray:
    return np.isin(label, STRUCTURES[structure])


def hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> float:
    """95th-percentile symmetric Hausdorff distance in mm, with the BraTS empty-mask conventions."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    has_pred, has_ref = pred.any(), ref.any()
    if not has_pred and not has_ref:
        return 0.0
    if has_pred != has_ref:
        return BRATS_MAX_HD95
    with warnings.catch_warnings():  # MONAI 1.5+ warns about its own internal use of a deprecated argument
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        value = compute_hausdorff_distance(
            torch.from_numpy(pred)[None, None],
            torch.from_numpy(ref)[None, None],
            include_background=True,
            percentile=95,
            spacing=[float(s) for s in spacing],
        )
    return float(value.item())


def score_case(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    structures: Sequence[str] = tuple(STRUCTURES),
    with_hd95: bool = True,
) -> dict[str, dict[str, float]]:
    """``{structure: {metric: value}}`` for one case given canonical predicted and reference labels."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    scores: dict[str, dict[str, float]] = {}
    for name in structures:
        p, r = structure_mask(pred, name), structure_mask(ref, name)
        c = Confusion.of(p, r)
        scores[name] = {
            "dice": c.dice,
            "sensitivity": c.sensitivity,
            "specificity": c.specificity,
            "hd95": hd95(p, r, spacing) if with_hd95 else float("nan"),
            "pred_volume_ml": (c.tp + c.fp) * voxel_ml,
            "ref_volume_ml": (c.tp + c.fn) * voxel_ml,
        }
    return scores
