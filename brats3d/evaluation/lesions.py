"""Lesion-wise Dice and HD95, the ranking metric of the BraTS challenges since 2023.

Per region, the reference mask is split into 26-connected components; components whose dilations touch (the
18-connected 3x3x3 element, ``dil_factor`` iterations) form one lesion. Each lesion is matched with every predicted
component that touches its dilated mask and scored against their union; a lesion no component touches scores Dice 0
and HD95 374 mm. Lesions of at most ``min_lesion_voxels`` are left out of the score (their matches are not false
positives either). Every predicted component that touches no lesion is a false positive: it adds 0 to the Dice
sum, 374 to the HD95 sum and 1 to the count. Score = sum / (lesions + false positives); nothing in either mask gives
Dice 1 and HD95 0. Written here (scipy only) after the public BraTS 2023 definition, to score without its
dependencies; tests check it on hand-built cases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from brats3d.evaluation.metrics import Confusion, hd95

LESION_MISS_HD95 = 374.0  # mm, the BraTS 2023 value for a missed lesion or a false positive
LESION_METRICS = ("lesion_dice", "lesion_hd95", "lesions", "false_positives", "missed_lesions")
_COMPONENTS = np.ones((3, 3, 3), bool)  # 26-connectivity
_DILATION = ndimage.generate_binary_structure(3, 2)  # 18-connected 3x3x3 element


@dataclass(frozen=True)
class LesionRule:
    """How reference components group into lesions and which are too small to count."""

    dil_factor: int = 3  # dilation iterations that merge nearby components into one lesion
    min_lesion_voxels: int = 50  # lesions of this many voxels or fewer are not scored


GLIOMA = LesionRule(3, 50)  # BraTS adult glioma
METASTASES = LesionRule(1, 2)  # BraTS metastases


def lesion_wise(
    pred: np.ndarray,
    ref: np.ndarray,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
    rule: LesionRule = GLIOMA,
    with_hd95: bool = True,
) -> dict[str, float]:
    """Lesion-wise scores of one region (boolean masks of the same shape), with the counts behind them."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    pred_components, _ = ndimage.label(pred, _COMPONENTS)
    blobs, _ = ndimage.label(ndimage.binary_dilation(ref, _DILATION, rule.dil_factor), _COMPONENTS)
    lesions = np.where(ref, blobs, 0)  # a lesion's dilated mask is exactly its blob
    matched: set[int] = set()
    dices, distances, missed = [], [], 0
    for lesion_id, box in enumerate(ndimage.find_objects(blobs), start=1):
        if box is None:
            continue
        in_blob = blobs[box] == lesion_id
        touching = np.unique(pred_components[box][in_blob])
        touching = touching[touching > 0]
        matched.update(int(t) for t in touching)
        lesion = lesions == lesion_id
        if np.count_nonzero(lesion) <= rule.min_lesion_voxels:
            continue
        matches = np.isin(pred_components, touching) if touching.size else np.zeros_like(pred)
        missed += int(touching.size == 0)
        dices.append(Confusion.of(matches, lesion).dice)
        distances.append(_cropped_hd95(matches, lesion, spacing) if with_hd95 else float("nan"))
    false_positives = int(pred_components.max()) - len(matched)
    count = len(dices) + false_positives
    if count == 0:
        dice, distance = 1.0, 0.0
    else:
        dice = float(sum(dices)) / count
        distance = (float(sum(distances)) + LESION_MISS_HD95 * false_positives) / count
    return {
        "lesion_dice": dice,
        "lesion_hd95": distance if with_hd95 else float("nan"),
        "lesions": float(len(dices)),
        "false_positives": float(false_positives),
        "missed_lesions": float(missed),
    }


def _cropped_hd95(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> float:
    """HD95 on the bounding box of both masks (distances do not change; the computation gets far cheaper)."""
    if not pred.any():
        return LESION_MISS_HD95
    both = np.nonzero(pred | ref)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in both)
    return hd95(pred[box], ref[box], spacing)
