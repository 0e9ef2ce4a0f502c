import numpy as np
import pytest

from brats3d.evaluation.metrics import BRATS_MAX_HD95, Confusion, hd95, score_case


@pytest.mark.parametrize(
    ("pred", "ref", "sensitivity", "specificity"),
    [
        # the seed course's unit-test values, on examples with those confusion counts
        ([1, 0, 1, 0], [1, 1, 0, 0], 0.5, 0.5),
        ([1, 1, 0, 0], [1, 1, 1, 0], 0.6667, 1.0),
        ([1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], 0.2857, 0.4286),
    ],
)
def test_sensitivity_and_specificity(pred, ref, sensitivity, specificity):
    c = Confusion.of(np.array(pred), np.array(ref))
    assert c.sensitivity == pytest.approx(sensitivity, abs=1e-4)
    assert c.specificity == pytest.approx(specificity, abs=1e-4)


def test_dice_on_a_hand_made_example():
    pred = np.array([1, 1, 1, 0, 0, 0])
    ref = np.array([0, 1, 1, 1, 0, 0])
    assert Confusion.of(pred, ref).dice == pytest.approx(2 * 2 / (3 + 3))


def test_empty_set_conventions():
    empty, full = np.zeros((4, 4, 4), bool), np.zeros((4, 4, 4), bool)
    full[1, 1, 1] = True
    both_empty = Confusion.of(empty, empty)
    assert (both_empty.dice, both_empty.sensitivity, both_empty.specificity) == (1.0, 1.0, 1.0)
    assert hd95(empty, empty) == 0.0
    assert Confusion.of(full, empty).dice == 0.0 and Confusion.of(empty, full).dice == 0.0
    assert hd95(full, empty) == hd95(empty, full) == pytest.approx(BRATS_MAX_HD95)


def test_hd95_uses_anisotropic_spacing():
    a, b = np.zeros((5, 5, 9), bool), np.zeros((5, 5, 9), bool)
    a[2, 2, 2], b[2, 2, 4] = True, True  # two voxels apart along z
    assert hd95(a, b, spacing=(1.0, 1.0, 3.0)) == pytest.approx(6.0)
    a, b = np.zeros((9, 5, 5), bool), np.zeros((9, 5, 5), bool)
    a[2, 2, 2], b[4, 2, 2] = True, True  # two voxels apart along x
    assert hd95(a, b, spacing=(1.0, 1.0, 3.0)) == pytest.approx(2.0)


def test_score_case_covers_classes_and_regions():
    ref = np.zeros((6, 6, 6), np.uint8)
    ref[1:5, 1:5, 1:5] = 1  # edema
    ref[2:4, 2:4, 2:4] = 3  # enhancing
    pred = ref.copy()
    pred[2:4, 2:4, 2:4] = 2  # enhancing called non-enhancing
    scores = score_case(pred, ref, spacing=(1, 1, 1))
    assert scores["whole_tumour"]["dice"] == 1.0 and scores["tumour_core"]["dice"] == 1.0
    assert scores["enhancing_tumour"]["dice"] == 0.0 and scores["enhancing"]["dice"] == 0.0
    assert scores["edema"]["dice"] == 1.0
    assert scores["non_enhancing"]["hd95"] == pytest.approx(BRATS_MAX_HD95)
    assert scores["whole_tumour"]["ref_volume_ml"] == pytest.approx(64 / 1000)
