"""The transform chains used by training, validation and inference, built in one place.

Training: load → resample a case far from the run's voxel spacing → crop to the brain → normalise → pad to the
patch → find tumour patches (all cached by a MONAI ``CacheDataset``, which stops at the first random transform) →
draw patches → augmentation → target. Validation and inference keep the whole scan and share one chain;
``CropForegroundd`` records the crop box (``foreground_start_coord``) so a prediction is pasted back exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from monai.transforms import (
    Compose,
    CropForegroundd,
    EnsureTyped,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandScaleIntensityFixedMeand,
    RandShiftIntensityd,
    RandSimulateLowResolutiond,
    SpatialPadd,
)

from brats3d.data.brain import is_brain
from brats3d.data.targets import REGIONS
from brats3d.transforms.intensity import RandBrainBiasFieldd, RandDropModalityd, brain_normalisation
from brats3d.transforms.loading import LoadCased
from brats3d.transforms.resampling import ResampleToSpacingd
from brats3d.transforms.sampling import FindTumourPatchesd, RandTumourPatchd
from brats3d.transforms.spatial import RandInPlaneElasticd
from brats3d.transforms.symmetry import AddMirrorDifferenced
from brats3d.transforms.targets import LabelToTargetd

# The RAS array axes (0 left-right, 1 back-front, 2 down-up) a patch is flipped across unless a recipe names fewer;
# flip TTA averages over the same axes, so a network only sees orientations it trained on.
EVERY_AXIS = (0, 1, 2)

CHANNEL_CONTRAST = (-0.35, 0.5)  # MONAI's v * (1 + factor): each channel's contrast scaled by 0.65-1.5
BRAIN_CROP_MARGIN = 2  # voxels kept around the brain's bounding box; training and inference crop alike


def _load_and_crop(
    reader: str,
    normalisation: str,
    mirror_difference: bool,
    with_label: bool = True,
    keep_source: bool = False,
    spacing: Sequence[float] | None = None,
    only_finer: bool = False,
) -> list:
    keys = ["image", "label"] if with_label else ["image"]
    return [
        LoadCased(reader=reader, with_label=with_label, keep_source=keep_source),
        *([ResampleToSpacingd(spacing, only_finer)] if spacing is not None else []),
        # Crop before normalising: afterwards brain voxels can be exactly zero and the background is no longer 0.
        CropForegroundd(
            keys=keys,
            source_key="image",
            select_fn=is_brain,
            margin=BRAIN_CROP_MARGIN,
            allow_smaller=True,
            allow_missing_keys=not with_label,
            start_coord_key="foreground_start_coord",
            end_coord_key="foreground_end_coord",
        ),
        brain_normalisation("image", normalisation),
        *([AddMirrorDifferenced("image")] if mirror_difference else []),
    ]


@dataclass(frozen=True)
class Augmentation:
    """Which random changes a training patch gets, and how strong (``augmentation``): one object, so that a setting
    cannot be dropped or transposed on its way from the config (``DataConfig.augmentation``) to the chain."""

    flip_axes: tuple[int, ...] = EVERY_AXIS
    rotation_degrees: float = 15.0
    scaling: float = 0.1
    elastic_prob: float = 0.0
    bias_field_prob: float = 0.0  # the one change drawn over the whole case, before its patches are cut
    noise_std: float = 0.1
    intensity_per_channel: bool = False
    contrast_prob: float = 0.0
    channel_contrast_prob: float = 0.0
    inverted_gamma_prob: float = 0.0
    low_resolution_prob: float = 0.0
    modality_dropout_prob: float = 0.0


RECIPE_AUGMENTATION = Augmentation()


def augmentation(keys: Sequence[str], settings: Augmentation = RECIPE_AUGMENTATION) -> list:
    """Random spatial and intensity changes of a patch, as nnU-Net and the BraTS winners use them, at modest rates
    because a CPU budget sees only a few thousand steps.

    Spatial: flips across each of ``flip_axes`` (every axis unless told); with probability 0.2 a rotation of up to
    ``rotation_degrees`` (15°) in the axial plane and a scaling of ±``scaling`` (10 %) in-plane (patches are thin,
    16 slices, so nothing rotates out of the axial plane). Intensity, per patch: gamma (contrast) 0.7-1.5, scale and
    shift of ±0.1 standard deviations, Gaussian noise, a slight blur. Optional, as nnU-Net has them: contrast scaled
    about the patch mean, and a patch resampled at lower resolution and back (scans from older scanners, thicker
    slices), and an in-plane elastic deformation (``elastic_prob``; ``RandInPlaneElasticd``).
    ``intensity_per_channel`` draws the scale and shift for each MRI channel apart (as the BraTS 2018 winner did),
    so that one sequence can come out brighter than the others, as it does between scanners.
    ``channel_contrast_prob`` is the chance that each channel is multiplied by its own factor in
    ``CHANNEL_CONTRAST`` (0.65-1.5): on a case standardised over the brain (brain mean and background 0) that scales
    the channel's contrast between tumour and healthy brain, which varies that much between the ten real cases
    (coefficient of variation 0.4-0.8 per tissue and sequence; off in the recipes: cross-validated behind,
    BENCHMARKS.md). ``inverted_gamma_prob`` is nnU-Net's inverted gamma: a gamma curve on the negated patch, so the
    contrast among its brightest voxels (oedema on FLAIR, enhancing tumour on T1ce) changes while the dark end
    barely moves, with the patch's mean and SD kept (off in the recipes: behind on random folds, BENCHMARKS.md).
    ``modality_dropout_prob`` is the chance that one MRI sequence of a patch is zeroed (``RandDropModalityd``), last,
    so that no other change makes it non-zero again (off in the recipes: behind on tumour core, BENCHMARKS.md).
    ``bias_field_prob`` is not applied here but before the patches are cut (``build_train_transforms``).
    """
    return [*_spatial_augmentation(keys, settings), *_intensity_augmentation(keys[0], settings)]


def _spatial_augmentation(keys: Sequence[str], a: Augmentation) -> list:
    chain = [
        *[RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in a.flip_axes],
        RandAffined(
            keys=keys,
            prob=0.2,
            rotate_range=(0.0, 0.0, np.deg2rad(a.rotation_degrees)),
            scale_range=(a.scaling, a.scaling, 0.0),
            mode=("bilinear", "nearest"),
            padding_mode="zeros",
        ),
    ]
    if a.elastic_prob:
        chain.append(RandInPlaneElasticd(keys, prob=a.elastic_prob))
    return chain


def _intensity_augmentation(image_key: str, a: Augmentation) -> list:
    """The recipe's steps in a fixed order, the optional ones (probability 0: left out) where nnU-Net has them."""
    chain = [RandAdjustContrastd(keys=image_key, prob=0.15, gamma=(0.7, 1.5))]
    if a.inverted_gamma_prob:
        chain.append(
            RandAdjustContrastd(
                keys=image_key, prob=a.inverted_gamma_prob, gamma=(0.7, 1.5), invert_image=True, retain_stats=True
            )
        )
    chain += [
        RandScaleIntensityd(keys=image_key, factors=0.1, prob=1.0, channel_wise=a.intensity_per_channel),
        RandShiftIntensityd(keys=image_key, offsets=0.1, prob=1.0, channel_wise=a.intensity_per_channel),
    ]
    if a.noise_std > 0:
        chain.append(RandGaussianNoised(keys=image_key, prob=0.15, std=a.noise_std))
    chain.append(
        RandGaussianSmoothd(keys=image_key, prob=0.1, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0))
    )
    if a.contrast_prob:
        chain.append(RandScaleIntensityFixedMeand(keys=image_key, factors=0.25, prob=a.contrast_prob))
    if a.channel_contrast_prob:
        chain.append(
            RandScaleIntensityd(
                keys=image_key, factors=CHANNEL_CONTRAST, prob=a.channel_contrast_prob, channel_wise=True
            )
        )
    if a.low_resolution_prob:
        chain.append(RandSimulateLowResolutiond(keys=image_key, prob=a.low_resolution_prob, zoom_range=(0.5, 1.0)))
    if a.modality_dropout_prob:
        chain.append(RandDropModalityd(image_key, a.modality_dropout_prob))
    return chain


def build_train_transforms(
    patch_size: Sequence[int] = (160, 160, 16),
    min_tumour_fraction: float = 0.05,
    unbiased_fraction: float = 0.1,
    hard_negative_fraction: float = 0.0,
    class_balance: bool = True,
    samples_per_case: int = 4,
    target: str = REGIONS,
    normalisation: str = "brain",
    mirror_difference: bool = False,
    reader: str = "nibabel",
    augment: Augmentation | None = RECIPE_AUGMENTATION,
    spacing: Sequence[float] | None = None,
) -> Compose:
    """Cached part (load, resample, crop, normalise, pad, patch index) then random part (patches, augmentation,
    target).

    ``spacing`` (mm, RAS axes): cases far from it are resampled to it first (``ResampleToSpacingd``); None: every
    case as it is. ``augment`` None: patches as they are. The bias field, when on, is drawn over the whole case
    before its patches are cut (``RandBrainBiasFieldd``).
    """
    keys = ["image", "label"]
    chain = [
        *_load_and_crop(reader, normalisation, mirror_difference, spacing=spacing),
        SpatialPadd(keys=keys, spatial_size=tuple(patch_size)),
        FindTumourPatchesd(patch_size, min_tumour_fraction, class_balance=class_balance),
    ]
    if augment is not None and augment.bias_field_prob:
        chain.append(RandBrainBiasFieldd("image", augment.bias_field_prob))
    chain.append(RandTumourPatchd(keys, patch_size, samples_per_case, unbiased_fraction, hard_negative_fraction))
    if augment is not None:
        chain += augmentation(keys, augment)
    chain += [LabelToTargetd(target), EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False)]
    return Compose(chain)


def build_val_transforms(
    normalisation: str = "brain",
    reader: str = "nibabel",
    with_label: bool = True,
    keep_source: bool = False,
    mirror_difference: bool = False,
    spacing: Sequence[float] | None = None,
    only_finer: bool = False,
) -> Compose:
    """Whole scans cropped to the brain and normalised, with canonical labels (1, X, Y, Z) when ``with_label``.

    Validation and ``brats3d predict`` both use this chain; the crop box it records
    (``foreground_start_coord``/``foreground_end_coord``) maps predictions back onto the scan, and with
    ``keep_source`` the loaded case (header, orientation, raw image) rides along for writing results. ``spacing``:
    validation scores a case at the spacing its run trains at. ``only_finer`` (``predict``): only scans finer than
    ``spacing`` are resampled here; ``predict`` resamples coarser ones after normalisation and brings every
    prediction back to the scan's own grid itself.
    """
    keys = ["image", "label"] if with_label else ["image"]
    return Compose(
        [
            *_load_and_crop(reader, normalisation, mirror_difference, with_label, keep_source, spacing, only_finer),
            EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False),
        ]
    )
