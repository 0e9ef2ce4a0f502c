import nibabel as nib
import numpy as np
import pytest
import torch

from brats3d.data.layouts import discover
from brats3d.transforms import NormalizeSlicesd, build_train_transforms, build_val_transforms


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
    chain = build_train_transforms(patch_size=(32, 32, 16), samples_per_case=1, target="classes", augment=False)
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
        chain = build_train_transforms(
            patch_size=(32, 32, 16), samples_per_case=2, low_resolution_prob=probability, contrast_prob=probability
        )
        chain.set_random_state(3)
        return chain(case_dict)

    for plain, augmented in zip(patches(0.0), patches(1.0)):
        assert augmented["image"].shape == plain["image"].shape == (4, 32, 32, 16)
        assert torch.equal(augmented["label"], plain["label"])
        assert not torch.allclose(augmented["image"], plain["image"])
