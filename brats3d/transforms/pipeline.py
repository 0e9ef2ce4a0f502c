"""The transform chains used by training, validation and inference, built in one place.

Training: load → crop to the brain → normalise → pad to the patch → find tumour patches (all cached by a MONAI
``CacheDataset``, which stops at the first random transform) → draw patches → flips and intensity jitter →
target. Validation and inference keep the whole scan.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureTyped,
    RandFlipd,
    RandGaussianNoised,
    RandScaleIntensityd,
    RandShiftIntensityd,
    SpatialPadd,
)

from brats3d.transforms.intensity import brain_normalisation
from brats3d.transforms.loading import LoadCased
from brats3d.transforms.sampling import FindTumourPatchesd, RandTumourPatchd
from brats3d.transforms.targets import LabelToTargetd

BRAIN_CROP_MARGIN = 2  # voxels kept around the brain's bounding box; training and inference crop alike


def is_brain(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Brain voxels are the non-zero ones: BraTS and Decathlon scans are skull-stripped with zero background."""
    return x != 0


def _load_and_crop(reader: str, per_slice_norm: bool, with_label: bool = True) -> list:
    keys = ["image", "label"] if with_label else ["image"]
    return [
        LoadCased(reader=reader, with_label=with_label),
        # Crop before normalising: afterwards brain voxels can be exactly zero and the background is no longer 0.
        CropForegroundd(
            keys=keys,
            source_key="image",
            select_fn=is_brain,
            margin=BRAIN_CROP_MARGIN,
            allow_smaller=True,
            allow_missing_keys=not with_label,
        ),
        brain_normalisation("image", per_slice=per_slice_norm),
    ]


def build_train_transforms(
    patch_size: Sequence[int] = (160, 160, 16),
    min_tumour_fraction: float = 0.05,
    unbiased_fraction: float = 0.1,
    class_balance: bool = True,
    samples_per_case: int = 4,
    target: str = "regions",
    per_slice_norm: bool = False,
    reader: str = "nibabel",
    augment: bool = True,
    noise_std: float = 0.0,
) -> Compose:
    """Cached part (load, crop, normalise, pad, patch index) then random part (patches, augmentation, target)."""
    keys = ["image", "label"]
    chain = [
        *_load_and_crop(reader, per_slice_norm),
        SpatialPadd(keys=keys, spatial_size=tuple(patch_size)),
        FindTumourPatchesd(patch_size, min_tumour_fraction, class_balance=class_balance),
        RandTumourPatchd(keys, patch_size, num_samples=samples_per_case, unbiased_fraction=unbiased_fraction),
    ]
    if augment:
        chain += [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(3)]
        chain += [
            RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
        ]
        if noise_std > 0:
            chain.append(RandGaussianNoised(keys="image", prob=0.5, std=noise_std))
    chain += [LabelToTargetd(target), EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False)]
    return Compose(chain)


def build_val_transforms(per_slice_norm: bool = False, reader: str = "nibabel") -> Compose:
    """Whole scans cropped to the brain, normalised, with canonical labels (1, X, Y, Z) for scoring."""
    return Compose(
        [
            *_load_and_crop(reader, per_slice_norm),
            EnsureTyped(keys=["image", "label"], dtype=torch.float32, track_meta=False),
        ]
    )
