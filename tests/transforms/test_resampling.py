"""Resampling to one voxel spacing: the factors, the volume operations, and a loaded case brought to the spacing its
run trains at (shape, labels, world position, zero background)."""

from __future__ import annotations

import numpy as np
import torch

from brats3d.data.synthetic import make_phantom
from brats3d.transforms.resampling import (
    ResampleToSpacingd,
    finer_than,
    resample,
    resampled_shape,
    resampling_factors,
)


def test_factors_are_scan_over_training_spacing_and_none_within_ten_percent():
    assert resampling_factors((2.0, 2.0, 3.0), (1.0, 1.0, 1.0)) == (2.0, 2.0, 3.0)
    assert resampling_factors((0.5, 0.5, 1.0), (1.0, 1.0, 1.0)) == (0.5, 0.5, 1.0)
    assert resampling_factors((0.94, 1.05, 1.0), (1.0, 1.0, 1.0)) is None
    assert resampling_factors((2.0, 2.0, 2.0), None) is None  # a checkpoint from before spacings were recorded
    assert resampled_shape((20, 21, 12), (2.0, 2.0, 0.5)) == (40, 42, 6)


def test_resampling_keeps_values_and_reaches_the_shape_asked():
    constant = torch.full((2, 12, 10, 8), 0.7)
    for shape in [(24, 20, 16), (6, 5, 4)]:
        out = resample(constant, shape)
        assert tuple(out.shape) == (2, *shape) and type(out) is torch.Tensor
        torch.testing.assert_close(out, torch.full_like(out, 0.7))
    ramp = torch.arange(16.0).reshape(1, 16, 1, 1).expand(1, 16, 4, 4).contiguous()
    back = resample(resample(ramp, (32, 4, 4)), (16, 4, 4))
    assert torch.allclose(back[0, 2:-2], ramp[0, 2:-2], atol=0.05)  # up and back down: the same ramp inside


def _loaded(step: int = 2) -> tuple[dict, np.ndarray]:
    """A phantom as ``LoadCased`` gives it after a coarser acquisition (every ``step``-th voxel, ``step`` mm), and
    the 1 mm labels it was cut from."""
    image, labels = make_phantom((64, 64, 48), seed=3)
    affine = np.diag([float(step)] * 3 + [1.0])
    affine[:3, 3] = (-40.0, 12.0, 7.5)
    coarse = {
        "image": image[:, ::step, ::step, ::step].copy(),
        "label": labels[None, ::step, ::step, ::step].copy(),
        "affine": affine,
        "spacing": (float(step),) * 3,
        "spatial_shape": tuple(n // step for n in labels.shape),
    }
    return coarse, labels


def _world(affine: np.ndarray, index) -> np.ndarray:
    return (affine @ np.append(np.asarray(index, dtype=float), 1.0))[:3]


def test_a_coarse_case_comes_out_at_the_training_spacing_where_it_was():
    coarse, fine_labels = _loaded(step=2)
    out = ResampleToSpacingd([1.0, 1.0, 1.0])(coarse)
    assert out["image"].shape == (4, 64, 64, 48) and out["label"].shape == (1, 64, 64, 48)
    assert out["spacing"] == (1.0, 1.0, 1.0) and out["spatial_shape"] == (64, 64, 48)
    assert out["label"].dtype == coarse["label"].dtype
    assert set(np.unique(out["label"])) == set(np.unique(coarse["label"]))  # nearest voxel: no mixed labels
    np.testing.assert_allclose(np.abs(np.diag(out["affine"])[:3]), 1.0)
    # The volume covers the same stretch of the world: the extent's centre and its corners stay put.
    for old, new in [((15.5, 15.5, 11.5), (31.5, 31.5, 23.5)), ((-0.5, -0.5, -0.5), (-0.5, -0.5, -0.5))]:
        np.testing.assert_allclose(_world(coarse["affine"], old), _world(out["affine"], new))
    # Each structure keeps its volume in ml and lies where the fine scan had it.
    for value in (1, 2, 3):
        coarse_ml = np.count_nonzero(coarse["label"] == value) * 8 / 1000
        fine_ml = np.count_nonzero(out["label"] == value) / 1000
        assert abs(fine_ml - coarse_ml) <= 0.15 * coarse_ml
    tumour, truth = out["label"][0] > 0, fine_labels > 0
    assert 2 * np.count_nonzero(tumour & truth) / (np.count_nonzero(tumour) + np.count_nonzero(truth)) > 0.85
    # The background stays exactly zero outside the brain, so the brain mask and normalisation still find it.
    brain = np.any(out["image"] != 0, axis=0)
    assert 0.9 < brain.sum() / (8 * np.any(coarse["image"] != 0, axis=0).sum()) < 1.1
    assert not out["image"][:, ~brain].any()


def test_a_case_near_the_training_spacing_passes_unchanged():
    coarse, _ = _loaded(step=1)
    coarse["spacing"] = (1.05, 0.95, 1.0)
    out = ResampleToSpacingd([1.0, 1.0, 1.0])(coarse)
    assert out["image"] is coarse["image"] and out["label"] is coarse["label"] and out["spacing"] == (1.05, 0.95, 1.0)


def test_a_case_without_a_label_is_resampled_alone():
    coarse, _ = _loaded(step=2)
    del coarse["label"]
    out = ResampleToSpacingd([1.0, 1.0, 2.0])(coarse)
    assert out["image"].shape == (4, 64, 64, 24) and "label" not in out


def test_only_finer_resamples_a_fine_case_and_leaves_a_coarse_one_for_later():
    assert finer_than((0.5, 0.5, 1.0)) and finer_than((0.5, 0.5, 1.05))
    assert not finer_than((0.5, 0.5, 3.0)) and not finer_than((2.0, 2.0, 2.0))
    coarse, _ = _loaded(step=2)
    assert ResampleToSpacingd([1.0, 1.0, 1.0], only_finer=True)(coarse)["image"] is coarse["image"]
    fine = ResampleToSpacingd([4.0, 4.0, 4.0], only_finer=True)(coarse)  # 2 mm voxels against a 4 mm spacing
    assert fine["image"].shape == (4, 16, 16, 12) and fine["spacing"] == (4.0, 4.0, 4.0)
