import numpy as np

from brats3d.data.targets import get_target
from brats3d.transforms.postprocess import remove_small_components


def test_small_components_are_dropped_with_all_their_labels():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:8, 2:8, 2:8] = 1
    labels[4:6, 4:6, 4:6] = 3
    labels[15, 15, 15] = 3  # a lone enhancing voxel
    out = remove_small_components(labels, min_voxels=5)
    assert out[15, 15, 15] == 0
    np.testing.assert_array_equal(out[:10, :10, :10], labels[:10, :10, :10])
    np.testing.assert_array_equal(remove_small_components(labels, 0), labels)


def test_the_largest_component_stays_whatever_the_minimum():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:5, 2:5, 2:5] = 1  # 27 voxels: the tumour of this scan, small
    labels[15:17, 15:17, 15] = 3  # 4 voxels elsewhere
    out = remove_small_components(labels, min_voxels=1000)
    np.testing.assert_array_equal(out[:10, :10, :10], labels[:10, :10, :10])
    assert not out[10:].any()


def test_thresholds_other_than_one_half():
    probs = np.zeros((3, 1, 1, 3), np.float32)
    probs[0] = [0.6, 0.9, 0.97]  # WT
    probs[1] = [0.0, 0.9, 0.97]  # TC
    probs[2] = [0.0, 0.0, 0.96]  # ET
    assert get_target("regions").labels(probs, threshold=0.5).ravel().tolist() == [1, 2, 3]
    assert get_target("regions").labels(probs, threshold=0.85).ravel().tolist() == [0, 2, 3]
    assert get_target("regions").labels(probs, threshold=0.95).ravel().tolist() == [0, 0, 3]


def test_labels_outside_the_brain_are_removed():
    from brats3d.transforms.postprocess import restrict_to_brain

    image = np.zeros((4, 6, 6, 6), np.float32)
    image[:, 1:4, 1:4, 1:4] = 1.0
    image[2, 4, 4, 4] = -0.5  # one channel non-zero is still brain (values after normalisation can be negative)
    labels = np.full((6, 6, 6), 3, np.uint8)
    out = restrict_to_brain(labels, image)
    assert out[2, 2, 2] == 3 and out[4, 4, 4] == 3
    assert out[0, 0, 0] == 0 and out[5, 5, 5] == 0
    assert int((out > 0).sum()) == 27 + 1
