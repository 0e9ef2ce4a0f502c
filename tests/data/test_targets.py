"""What a network's outputs mean: region probabilities and labels from either BraTS target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brats3d.data.labels import EDEMA, ENHANCING, NON_ENHANCING
from brats3d.data.targets import get_target, slice_target

# Four voxels' softmax over background / edema / non-enhancing / enhancing.
SOFTMAX = np.array(
    [
        [0.7, 0.2, 0.1, 0.0],  # background
        [0.1, 0.6, 0.2, 0.1],  # edema
        [0.1, 0.1, 0.3, 0.3],  # non-enhancing core
        [0.1, 0.1, 0.4, 0.6],  # enhancing
    ],
    dtype=np.float32,
)


def test_class_probabilities_sum_into_the_nested_regions():
    regions = get_target("classes").region_probabilities(SOFTMAX)
    np.testing.assert_allclose(regions[0], 1 - SOFTMAX[0])  # whole tumour: anything but background
    np.testing.assert_allclose(regions[1], SOFTMAX[2] + SOFTMAX[3])  # core: non-enhancing or enhancing
    np.testing.assert_allclose(regions[2], SOFTMAX[3])
    assert (regions[2] <= regions[1] + 1e-6).all() and (regions[1] <= regions[0] + 1e-6).all()


def test_both_brats_targets_decode_through_the_same_region_thresholds():
    # Voxel 2: non-enhancing is not the largest class (enhancing 0.4 is), but core 0.7 and enhancing 0.4 < 0.5.
    assert get_target("classes").labels(torch.from_numpy(SOFTMAX)).tolist() == [0, EDEMA, NON_ENHANCING, ENHANCING]
    # The enhancing threshold moves voxel 3 to core in both targets alike.
    as_regions = get_target("classes").region_probabilities(SOFTMAX)
    for target, probs in (("classes", SOFTMAX), ("regions", as_regions)):
        assert get_target(target).labels(probs, [0.5, 0.5, 0.7]).tolist() == [0, EDEMA, NON_ENHANCING, NON_ENHANCING]


def test_the_classes_of_a_2d_task_are_not_brats_regions():
    target = slice_target([0, 1, 2])
    assert not target.has_regions
    assert target.labels(SOFTMAX[:3]).tolist() == [0, 1, 2, 2]  # argmax of the task's own classes
    with pytest.raises(ValueError, match="not the BraTS classes"):
        target.region_probabilities(SOFTMAX[:3])
