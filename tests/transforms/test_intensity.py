"""The flattened normalisation: a smooth intensity field is divided out before standardising over the brain."""

from __future__ import annotations

import numpy as np
import pytest

from brats3d.transforms.intensity import NORMALISATIONS, brain_normalisation, smooth_log_field


def _brain(shape=(48, 48, 32)) -> tuple[np.ndarray, np.ndarray]:
    """A ball of brain whose voxels are one of two interleaved tissues (raw 100 or 160), and its grid."""
    grid = np.indices(shape).astype(np.float32)
    centre = (np.array(shape) - 1)[:, None, None, None] / 2
    ball = (((grid - centre) / (np.array(shape)[:, None, None, None] * 0.45)) ** 2).sum(0) < 1
    tissue = np.where(np.random.default_rng(0).random(shape) < 0.5, 100.0, 160.0)
    return np.where(ball, tissue, 0).astype(np.float32), grid


def _standardised(raw: np.ndarray, method: str) -> np.ndarray:
    # a copy: MONAI's NormalizeIntensityd standardises a numpy input in place
    return np.asarray(brain_normalisation("image", method)({"image": raw[None].copy()})["image"])[0]


def test_a_smooth_gain_along_the_head_is_divided_out():
    raw, grid = _brain()
    z = grid[2] / (raw.shape[2] - 1) * 2 - 1
    lit = np.where(raw > 0, raw * np.exp(0.4 * z), 0).astype(np.float32)  # the top 2.2x brighter than the bottom
    lesion = np.zeros(raw.shape, dtype=bool)
    lesion[20:28, 20:28, 20:26] = True
    lit[lesion] *= 3  # a bright lesion, which the trimmed fit must not bend around
    brain = raw > 0
    low, high = brain & ~lesion & (z < -0.3), brain & ~lesion & (z > 0.3)
    shading = {}
    for method in ("brain", "flattened"):
        out = _standardised(lit, method)
        assert np.all(out[~brain] == 0)
        assert abs(out[brain].mean()) < 1e-3 and abs(out[brain].std() - 1) < 1e-2
        shading[method] = out[high].mean() - out[low].mean()
        contrast = out[lesion].mean() - out[brain & ~lesion].mean()
    assert shading["brain"] > 0.8  # the field shows after brain-wide standardisation
    assert abs(shading["flattened"]) < 0.1  # and is gone after flattening
    assert contrast > 2.5  # the lesion is still far brighter than the brain around it


def test_a_large_lesion_in_one_hemisphere_is_not_divided_out():
    raw, grid = _brain()
    lesion = (raw > 0) & (grid[0] < 20) & (np.abs(grid[1] - 23.5) < 12) & (np.abs(grid[2] - 15.5) < 9)
    raw[lesion] *= 1.6  # oedema-like: a fifth of the brain, moderately bright, all left of the midline
    brain, left = raw > 0, grid[0] < 23.5
    out = {method: _standardised(raw, method) for method in ("brain", "flattened")}
    contrast = {m: o[lesion].mean() - o[brain & ~lesion].mean() for m, o in out.items()}
    sides = out["flattened"][brain & ~lesion & left].mean() - out["flattened"][brain & ~lesion & ~left].mean()
    assert contrast["flattened"] > 0.85 * contrast["brain"]  # a fit free to tilt towards it keeps about half
    assert abs(sides) < 0.2  # healthy tissue either side of the midline stays alike (a free fit: 0.4 SD apart)


def test_without_a_field_flattening_changes_next_to_nothing():
    raw, _ = _brain()
    change = np.abs(_standardised(raw, "flattened") - _standardised(raw, "brain"))
    assert change.mean() < 0.02 and change.max() < 0.15  # a fit to random tissue is not exactly flat at the rim


def test_a_channel_that_is_not_a_positive_intensity_is_left_to_standardisation():
    raw, _ = _brain()
    centred = np.where(raw > 0, raw - 130, 0).astype(np.float32)  # half the brain negative: no log intensity
    assert smooth_log_field(centred, raw > 0) is None
    np.testing.assert_allclose(_standardised(centred, "flattened"), _standardised(centred, "brain"), atol=1e-6)


def test_an_unknown_method_is_refused():
    assert NORMALISATIONS == ("brain", "slice", "flattened")
    with pytest.raises(ValueError, match="unknown normalisation 'n4'"):
        brain_normalisation("image", "n4")
