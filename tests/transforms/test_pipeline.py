from collections.abc import Callable

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    Randomizable,
    RandScaleIntensityd,
    RandShiftIntensityd,
)

from brats3d.data.layouts import discover
from brats3d.transforms import Augmentation, NormalizeSlicesd, build_train_transforms, build_val_transforms
from brats3d.transforms.intensity import (
    NORMALISATIONS,
    RandBrainBiasFieldd,
    RandDropModalityd,
    brain_normalisation,
)
from brats3d.transforms.pipeline import augmentation
from brats3d.transforms.sampling import FindTumourPatchesd, RandTumourPatchd


@pytest.fixture
def case_dict(make_dataset):
    return discover(make_dataset("brats2021", cases=1)).cases[0].to_dict()


def test_training_patches_have_the_configured_shape_and_targets(case_dict):
    chain = build_train_transforms(patch_size=(32, 32, 16), samples_per_case=3, min_tumour_fraction=0.05)
    chain.set_random_state(0)
    patches = chain(case_dict)
    assert len(patches) == 3
    for p in patches:
        assert p["image"].shape == (4, 32, 32, 16) and p["image"].dtype == torch.float32
        assert p["label"].shape == (3, 32, 32, 16)
        wt, tc, et = p["label"]
        assert torch.all(tc <= wt) and torch.all(et <= tc)
        assert wt.mean() >= 0.05 or p["patch_rule"] != "tumour"


def test_class_targets_are_label_indices(case_dict):
    chain = build_train_transforms(patch_size=(32, 32, 16), samples_per_case=1, target="classes", augment=None)
    (p,) = chain(case_dict)
    assert p["label"].shape == (1, 32, 32, 16)
    assert set(torch.unique(p["label"]).tolist()) <= {0, 1, 2, 3}


def test_training_chain_is_deterministic_under_a_seed(case_dict):
    outs = []
    for _ in range(2):
        chain = build_train_transforms(patch_size=(32, 32, 16), samples_per_case=2)
        chain.set_random_state(7)
        outs.append(chain(case_dict))
    for a, b in zip(*outs):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_whole_scan_is_standardised_per_channel_over_the_brain(case_dict):
    out = build_val_transforms()(case_dict)
    image, label = out["image"], out["label"]
    assert label.shape[0] == 1 and label.shape[1:] == image.shape[1:]
    for c in range(4):
        brain = image[c][image[c] != 0]
        assert abs(brain.mean().item()) < 1e-3
        assert abs(brain.std().item() - 1) < 1e-2
    # Cropped to the brain, but no tumour voxel was cut away.
    on_disk = np.asanyarray(nib.load(case_dict["label"]).dataobj)
    assert int((label > 0).sum()) == int((on_disk > 0).sum()) > 0


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_caches_keep_the_normalised_case_and_its_patch_index(normalisation):
    # MONAI's CacheDataset and brats3d's memory-mapped cache store a chain's results up to its first randomizable
    # transform; everything before the patch draw must come before it, or it is recomputed for every patch.
    chain = build_train_transforms(patch_size=(32, 32, 16), normalisation=normalisation)
    first_random = next(i for i, t in enumerate(chain.transforms) if isinstance(t, Randomizable))
    assert any(isinstance(t, FindTumourPatchesd) for t in chain.transforms[:first_random])


def test_per_slice_normalisation_standardises_each_axial_slice():
    rng = np.random.default_rng(0)
    image = np.zeros((1, 10, 10, 3), dtype=np.float32)
    image[0, 2:8, 2:8, 0] = rng.normal(100, 5, size=(6, 6))
    image[0, 2:8, 2:8, 1] = rng.normal(500, 50, size=(6, 6))
    out = NormalizeSlicesd(keys="image")({"image": image})["image"]
    for z in (0, 1):
        brain = out[0, :, :, z][image[0, :, :, z] != 0]
        assert abs(brain.mean()) < 1e-4 and abs(brain.std() - 1) < 1e-3
    assert np.all(out[0, :, :, 2] == 0) and np.all(out[0, :2] == 0)


def test_optional_contrast_and_low_resolution_augmentations_change_the_image_only(case_dict):
    def patches(probability: float):
        settings = Augmentation(low_resolution_prob=probability, contrast_prob=probability)
        chain = build_train_transforms(patch_size=(32, 32, 16), samples_per_case=2, augment=settings)
        chain.set_random_state(3)
        return chain(case_dict)

    for plain, augmented in zip(patches(0.0), patches(1.0)):
        assert augmented["image"].shape == plain["image"].shape == (4, 32, 32, 16)
        assert torch.equal(augmented["label"], plain["label"])
        assert not torch.allclose(augmented["image"], plain["image"])


def test_rotation_and_scaling_ranges_reach_the_affine_augmentation():
    def affine_ranges(**settings) -> tuple:
        chain = build_train_transforms(patch_size=(32, 32, 16), augment=Augmentation(**settings))
        (affine,) = [t for t in chain.transforms if isinstance(t, RandAffined)]
        grid = affine.rand_affine.rand_affine_grid
        return tuple(grid.rotate_range), tuple(grid.scale_range)

    rotation, scaling = affine_ranges()
    assert rotation == pytest.approx((0, 0, np.pi / 12)) and scaling == pytest.approx((0.1, 0.1, 0))
    rotation, scaling = affine_ranges(rotation_degrees=30.0, scaling=0.25)
    assert rotation == pytest.approx((0, 0, np.pi / 6)) and scaling == pytest.approx((0.25, 0.25, 0))  # in-plane


def test_patches_are_flipped_only_across_the_configured_axes(case_dict):
    def flipped_axes(augment: Augmentation | None) -> set[int]:
        chain = build_train_transforms(patch_size=(32, 32, 16), samples_per_case=1, augment=augment)
        return {int(t.flipper.spatial_axis) for t in chain.transforms if isinstance(t, RandFlipd)}

    assert flipped_axes(Augmentation()) == {0, 1, 2}
    assert flipped_axes(Augmentation(flip_axes=(0,))) == {0}  # left-right only: anatomy keeps up-down, front-back
    assert flipped_axes(None) == set()


def _augmentation_steps(keep: Callable[[object], bool], **settings) -> Compose:
    """The steps of ``augmentation`` with ``settings`` that ``keep`` picks, to run them alone on a made-up patch."""
    return Compose([t for t in augmentation(["image", "label"], Augmentation(**settings)) if keep(t)])


def test_intensity_scale_and_shift_are_drawn_per_channel_only_when_asked():
    def channel_values(per_channel: bool) -> torch.Tensor:
        chain = _augmentation_steps(
            lambda t: isinstance(t, (RandScaleIntensityd, RandShiftIntensityd)), intensity_per_channel=per_channel
        )
        chain.set_random_state(1)
        return chain({"image": torch.ones(4, 8, 8, 4)})["image"][:, 0, 0, 0]

    joint, apart = channel_values(False), channel_values(True)
    assert torch.allclose(joint, joint[0]) and not torch.allclose(joint, torch.ones(4))
    assert len(set(apart.tolist())) == 4  # one scale and shift drawn for each MRI channel


def test_channel_contrast_scales_each_channel_about_the_brain_mean_by_its_own_factor():
    def contrast_steps(prob: float) -> Compose:
        return _augmentation_steps(
            lambda t: isinstance(t, RandScaleIntensityd) and t.scaler.channel_wise, channel_contrast_prob=prob
        )

    assert not contrast_steps(0.0).transforms  # off unless asked
    chain = contrast_steps(1.0)
    chain.set_random_state(3)
    image = torch.ones(4, 8, 8, 4)
    image[:, :4] = 0.0  # background and brain mean stay where standardisation put them
    scaled = chain({"image": image})["image"]
    factors = scaled[:, 4, 0, 0]
    assert torch.all(scaled[:, :4] == 0)
    assert len(set(factors.tolist())) == 4 and bool(((factors >= 0.65) & (factors <= 1.5)).all())


def test_inverted_gamma_bends_the_bright_end_and_keeps_order_mean_and_sd():
    def inverted_steps(prob: float) -> Compose:
        return _augmentation_steps(
            lambda t: isinstance(t, RandAdjustContrastd) and t.adjuster.invert_image, inverted_gamma_prob=prob
        )

    assert not inverted_steps(0.0).transforms  # off unless asked
    chain = inverted_steps(1.0)
    chain.set_random_state(2)
    ramp = torch.linspace(-2.0, 3.0, 64).reshape(1, 4, 4, 4).repeat(4, 1, 1, 1)
    out = chain({"image": ramp.clone()})["image"].flatten()
    gaps = out.reshape(4, -1)[0].diff()
    assert bool((gaps > 0).all())  # a monotonic curve: no tissue changes place with another
    assert torch.isclose(out.mean(), ramp.mean(), atol=1e-4) and torch.isclose(out.std(), ramp.std(), rtol=1e-3)
    # gamma on the negated ramp: the spacing changes most at the bright end, not at the dark one
    assert abs(gaps[-1] / gaps[-2] - 1) > abs(gaps[1] / gaps[0] - 1) > 0


def test_modality_dropout_zeroes_one_sequence_with_its_asymmetry_channel_and_comes_last():
    assert not any(isinstance(t, RandDropModalityd) for t in augmentation(["image", "label"]))  # off unless asked
    steps = augmentation(["image", "label"], Augmentation(modality_dropout_prob=1.0))
    assert isinstance(steps[-1], RandDropModalityd)  # nothing after it can make the sequence non-zero again
    drop = Compose([steps[-1]])
    dropped = set()
    for seed in range(12):
        drop.set_random_state(seed)
        image = torch.arange(1.0, 9.0).reshape(8, 1, 1, 1).repeat(1, 4, 4, 2)  # 4 sequences, then their asymmetries
        out = drop({"image": image})["image"]
        assert torch.equal(image[:, 0, 0, 0], torch.arange(1.0, 9.0))  # the caller's patch is left as it was
        zero = [c for c in range(8) if not out[c].any()]
        assert len(zero) == 2 and zero[1] == zero[0] + 4
        assert all(torch.equal(out[c], image[c]) for c in range(8) if c not in zero)
        dropped.add(zero[0])
    assert dropped == {0, 1, 2, 3}  # each sequence can be the one dropped
    never = Compose([RandDropModalityd("image", prob=0.0)])
    assert torch.equal(never({"image": torch.ones(4, 2, 2, 2)})["image"], torch.ones(4, 2, 2, 2))


def test_bias_field_is_drawn_over_the_whole_case_before_patches_and_only_with_augmentation(case_dict):
    def kinds(augment: Augmentation | None) -> list[type]:
        return [type(t) for t in build_train_transforms(patch_size=(32, 32, 16), augment=augment).transforms]

    chain = kinds(Augmentation(bias_field_prob=0.5))
    assert chain.index(RandBrainBiasFieldd) == chain.index(RandTumourPatchd) - 1
    assert RandBrainBiasFieldd not in kinds(Augmentation())
    assert RandBrainBiasFieldd not in kinds(None)
    chain = build_train_transforms(
        patch_size=(32, 32, 16), samples_per_case=2, augment=Augmentation(bias_field_prob=1.0)
    )
    chain.set_random_state(0)
    for patch in chain(case_dict):
        assert patch["image"].shape == (4, 32, 32, 16) and torch.isfinite(patch["image"]).all()


def test_bias_field_shades_average_tissue_smoothly_and_keeps_the_brain_standardised():
    # Two tissues (raw 100 and 200) in a ball, standardised: each tissue is one value before the field. One
    # voxel of raw 1 is the darkest brain, which the field leaves in place as it does raw zero.
    grid = np.indices((40, 40, 24)).astype(np.float32)
    ball = ((grid - np.array([20, 20, 12])[:, None, None, None]) ** 2).sum(0) < 11**2
    raw = np.where(ball, np.where(grid[0] < 20, 100.0, 200.0), 0).astype(np.float32)
    raw[20, 20, 12] = 1.0
    image = brain_normalisation("image")({"image": np.stack([raw, raw / 2])})["image"]
    image = np.asarray(image)
    out = RandBrainBiasFieldd("image", prob=1.0).set_random_state(0)({"image": image})["image"]

    assert out.shape == image.shape and np.all(out[:, ~ball] == 0)
    for channel in out:  # re-standardised from every 8th voxel, so nearly, not exactly
        assert abs(channel[ball].mean()) < 0.1 and abs(channel[ball].std() - 1) < 0.1
    dark = raw == 100
    assert out[0][dark].std() > 0.02  # one tissue is no longer one value: the field shades it
    neighbours = np.abs(np.diff(out[0], axis=1))[dark[:, 1:] & dark[:, :-1]]
    assert neighbours.max() < 0.1 * np.ptp(out[0][dark]) + 1e-6  # smoothly, not voxel by voxel
    np.testing.assert_allclose(out[0], out[1], atol=1e-4)  # one coil: both channels get the same field
    # The field multiplies raw-like intensity: side by side, where the gain is the same, the bright tissue stays
    # (200 - 1) / (100 - 1) times as far above the darkest voxel as the dark tissue (multiplying standardised
    # values instead would not keep that ratio).
    zero = out[0, 20, 20, 12]
    across = ball[19] & (raw[20] == 200)
    ratio = (out[0, 20][across] - zero) / (out[0, 19][across] - zero)
    np.testing.assert_allclose(ratio, 199 / 99, rtol=0.05)
    again = RandBrainBiasFieldd("image", prob=1.0).set_random_state(0)({"image": image})["image"]
    np.testing.assert_array_equal(out, again)
