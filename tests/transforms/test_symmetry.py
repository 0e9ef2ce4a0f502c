"""Left-right asymmetry channels: symmetric anatomy cancels, a one-sided lesion stands out, flips commute."""

from __future__ import annotations

import numpy as np

from brats3d.transforms.symmetry import AddMirrorDifferenced, mirror_differences, mirror_indices


def _symmetric_head(shape=(40, 36, 20), centre_x: float = 19.5) -> np.ndarray:
    """Two channels of standardised-looking tissue, mirror-symmetric about x = ``centre_x``: an ellipsoid brain
    with a bright lower band (a 'cerebellum' one site images brighter than another) and random symmetric texture."""
    grid = np.indices(shape).astype(np.float32)
    radii = np.array([14.0, 15.0, 8.0])[:, None, None, None]
    middle = np.array([centre_x, (shape[1] - 1) / 2, (shape[2] - 1) / 2])[:, None, None, None]
    brain = (((grid - middle) / radii) ** 2).sum(0) < 1
    texture = np.random.default_rng(0).normal(0, 0.3, shape).astype(np.float32)
    mirror = np.clip((2 * centre_x - np.arange(shape[0])).astype(int), 0, shape[0] - 1)
    texture = (texture + texture[mirror]) / 2
    band = np.where(grid[2] < 6, 0.8, 0.0)
    image = np.stack([texture + band, 0.5 * texture - band])
    return np.where(brain, image, 0).astype(np.float32)


def test_symmetric_anatomy_cancels_and_a_one_sided_lesion_stands_out():
    image = _symmetric_head()
    lesion = np.zeros(image.shape[1:], dtype=bool)
    lesion[8:13, 14:20, 8:12] = True  # left of the midline (x = 19.5); its mirror is x = 26..30
    image[0][lesion] += 2.0
    out = mirror_differences(image)
    brain = np.any(image != 0, axis=0)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.all(out[:, ~brain] == 0)
    far = brain.copy()
    far[4:35, 10:24, 5:15] = False  # away from the lesion, its mirror and the smoothing around them
    assert np.abs(out[:, far]).max() < 0.05  # the bright band and the texture are symmetric: nothing left
    assert out[0][10, 17, 10] > 1.0  # the lesion is brighter than the other side
    assert out[0][29, 17, 10] < -1.0  # and its mirror image darker than the lesion's side
    assert np.abs(out[1][lesion]).max() < 0.05  # a channel without the lesion stays flat there


def test_the_plane_is_found_where_the_tissue_is_symmetric_not_only_at_the_box_centre():
    image = _symmetric_head(centre_x=19.5)
    brain = np.any(image != 0, axis=0)
    along = np.nonzero(brain.any(axis=(1, 2)))[0]
    assert along[0] + along[-1] == 39
    shifted = np.zeros_like(image)
    shifted[:, 1:] = image[:, :-1]  # tissue moved by one voxel...
    shifted_brain = np.any(shifted != 0, axis=0)
    shifted[:, shifted_brain.any(axis=(1, 2)).nonzero()[0][-1]] = 0  # ...and its box cut by one on the right
    box = np.nonzero(np.any(shifted != 0, axis=0).any(axis=(1, 2)))[0]
    assert box[0] + box[-1] == 40  # the box centre says 20.0, the tissue's plane is 20.5
    smoothed = shifted  # unsmoothed texture makes the right plane all the clearer
    mirror = mirror_indices(np.any(shifted != 0, axis=0), smoothed)
    assert mirror[0] == 41  # x and 41 - x mirror each other: the plane at 20.5


def test_flipping_a_case_flips_its_asymmetry_channels():
    """What lets patches be flipped (augmentation) and scans be flipped (TTA) after the channels are computed."""
    image = _symmetric_head(centre_x=18.5)
    image[0, 8:13, 14:20, 8:12] += 2.0
    image[1, 22:26, 5:9, 3:6] -= 1.5
    out = mirror_differences(image)
    for axis in (1, 2, 3):
        flipped = mirror_differences(np.flip(image, axis=axis).copy())
        np.testing.assert_allclose(flipped, np.flip(out, axis=axis), atol=1e-4)


def test_the_transform_appends_one_asymmetry_channel_per_channel_and_keeps_the_image():
    image = _symmetric_head()
    out = AddMirrorDifferenced("image")({"image": image.copy(), "label": np.zeros((1, *image.shape[1:]))})
    assert out["image"].shape == (4, *image.shape[1:])
    np.testing.assert_array_equal(out["image"][:2], image)
    assert out["label"].shape == (1, *image.shape[1:])


def test_an_empty_image_has_no_asymmetry():
    assert not mirror_differences(np.zeros((4, 8, 8, 8), dtype=np.float32)).any()
