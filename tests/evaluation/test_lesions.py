"""Lesion-wise Dice/HD95 (BraTS 2023) on hand-built cases whose scores can be worked out on paper."""

from __future__ import annotations

import numpy as np
import pytest

from brats3d.evaluation.lesions import GLIOMA, LESION_MISS_HD95, METASTASES, lesion_wise
from brats3d.evaluation.metrics import hd95


def _mask(*cubes: tuple[int, int, int, int]) -> np.ndarray:
    """Cubes given as (x, y, z, edge) in a 48³ volume."""
    m = np.zeros((48, 48, 48), bool)
    for x, y, z, e in cubes:
        m[x : x + e, y : y + e, z : z + e] = True
    return m


def test_both_empty_is_a_perfect_score():
    empty = _mask()
    assert lesion_wise(empty, empty) == {
        "lesion_dice": 1.0,
        "lesion_hd95": 0.0,
        "lesions": 0.0,
        "false_positives": 0.0,
        "missed_lesions": 0.0,
    }


def test_an_exact_prediction_of_one_lesion_scores_one():
    ref = _mask((10, 10, 10, 4))  # 64 voxels, above the 50-voxel threshold
    scores = lesion_wise(ref.copy(), ref)
    assert scores["lesion_dice"] == 1.0 and scores["lesion_hd95"] == 0.0 and scores["lesions"] == 1


def test_a_false_positive_counts_as_a_lesion_with_dice_0_and_hd95_374():
    ref = _mask((10, 10, 10, 4))
    pred = _mask((10, 10, 10, 4), (35, 35, 35, 3))
    scores = lesion_wise(pred, ref)
    assert scores["false_positives"] == 1 and scores["lesions"] == 1
    assert scores["lesion_dice"] == pytest.approx((1 + 0) / 2)
    assert scores["lesion_hd95"] == pytest.approx((0 + LESION_MISS_HD95) / 2)


def test_a_missed_lesion_scores_0_and_374():
    ref = _mask((5, 5, 5, 4), (35, 35, 35, 4))
    pred = _mask((5, 5, 5, 4))
    scores = lesion_wise(pred, ref)
    assert scores["lesions"] == 2 and scores["missed_lesions"] == 1 and scores["false_positives"] == 0
    assert scores["lesion_dice"] == pytest.approx(0.5)
    assert scores["lesion_hd95"] == pytest.approx(LESION_MISS_HD95 / 2)


def test_components_merged_by_dilation_are_one_lesion_scored_against_all_its_matches():
    # two 4³ cubes three voxels apart: dilated 3 times (glioma) they touch, dilated once (metastases) they do not
    ref = _mask((10, 10, 10, 4), (17, 10, 10, 4))
    pred = _mask((10, 10, 10, 4))
    glioma = lesion_wise(pred, ref, rule=GLIOMA)
    assert glioma["lesions"] == 1 and glioma["missed_lesions"] == 0
    assert glioma["lesion_dice"] == pytest.approx(2 * 64 / (128 + 64))
    assert glioma["lesion_hd95"] == pytest.approx(hd95(pred, ref))
    metastases = lesion_wise(pred, ref, rule=METASTASES)
    assert metastases["lesions"] == 2 and metastases["missed_lesions"] == 1
    assert metastases["lesion_dice"] == pytest.approx((1 + 0) / 2)
    assert metastases["lesion_hd95"] == pytest.approx((0 + LESION_MISS_HD95) / 2)


def test_a_small_lesion_is_not_scored_and_its_match_is_no_false_positive():
    ref = _mask((10, 10, 10, 4), (35, 35, 35, 3))  # the second lesion has 27 voxels, at most 50: dropped
    pred = ref.copy()
    pred[34:39, 34:39, 34:39] = True  # an over-sized prediction of the small lesion
    scores = lesion_wise(pred, ref)
    assert scores == {
        "lesion_dice": 1.0,
        "lesion_hd95": 0.0,
        "lesions": 1.0,
        "false_positives": 0.0,
        "missed_lesions": 0.0,
    }


def test_a_prediction_on_an_empty_reference_is_all_false_positive():
    scores = lesion_wise(_mask((10, 10, 10, 2), (30, 30, 30, 2)), _mask())
    assert scores["false_positives"] == 2
    assert scores["lesion_dice"] == 0.0 and scores["lesion_hd95"] == LESION_MISS_HD95
