"""2D metrics: per image, and per patient with the patient's slices stacked (the LGG reference metric)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from brats3d.data.slices import Slice
from brats3d.evaluation.slices import SliceEvaluation, score_image


def _slice(patient: str, n: int) -> Slice:
    return Slice(Path(f"{patient}_{n}.tif"), Path(f"{patient}_{n}_mask.tif"), patient, n)


def test_image_metrics_match_hand_counts():
    truth = np.zeros((10, 10), np.uint8)
    truth[2:6, 2:6] = 1  # 16 pixels
    pred = np.zeros_like(truth)
    pred[2:6, 2:4] = 1  # 8 pixels, all inside
    pred[9, 9] = 1  # one false positive
    s = score_image(pred, truth, [0, 255])["foreground"]
    assert s["dsc"] == pytest.approx(2 * 8 / (9 + 16))
    assert s["iou"] == pytest.approx(8 / 17)
    assert s["sensitivity"] == pytest.approx(8 / 16)
    assert s["specificity"] == pytest.approx(83 / 84)
    assert s["hd95_px"] > 0


def test_patient_dsc_stacks_slices_and_empty_slices_count_as_agreement():
    ev = SliceEvaluation([0, 255])
    truth = np.zeros((8, 8), np.uint8)
    truth[:4, :4] = 1
    half = truth.copy()
    half[:2] = 0
    ev.add(_slice("A", 1), truth, truth)  # perfect
    ev.add(_slice("A", 2), half, truth)  # 8 of 16
    ev.add(_slice("A", 3), np.zeros_like(truth), np.zeros_like(truth))  # empty: DSC 1 per image, adds nothing
    patient = ev.patients()[0]
    assert patient["foreground_dsc"] == pytest.approx(2 * 24 / (24 + 32))
    per_image = [r["foreground_dsc"] for r in ev.images]
    assert per_image == pytest.approx([1.0, 2 * 8 / 24, 1.0])
    assert ev.summary()["foreground_dsc_per_patient"]["mean"] == pytest.approx(patient["foreground_dsc"])


def test_multi_class_masks_are_scored_per_class_and_as_foreground():
    truth = np.zeros((6, 6), np.uint8)
    truth[1:5, 1:5] = 1
    truth[2:4, 2:4] = 2
    pred = truth.copy()
    pred[2:4, 2:4] = 1  # the core called lesion: foreground perfect, class 2 missed
    scores = score_image(pred, truth, [0, 1, 2])
    assert scores["foreground"]["dsc"] == 1.0 and scores["class_2"]["dsc"] == 0.0
    assert scores["class_1"]["dsc"] == pytest.approx(2 * 12 / (16 + 12))
