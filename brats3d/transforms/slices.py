"""The 2D chains (MONAI dictionary transforms) and the post-processing of 2D masks.

One loading and normalisation step serves training, validation and prediction; training adds a resize to the
network's input size and augmentation suited to slices (flips, rotation, scaling, contrast, brightness, noise,
blur). Validation and prediction keep the image's own size: ``inference.slices`` resizes the input for the
network and the probabilities back, so a mask always matches its image pixel for pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from monai.transforms import (
    Compose,
    MapTransform,
    NormalizeIntensityd,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandGaussianSmoothd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    Resized,
)
from scipy import ndimage

from brats3d.data.slices import check_pair, read_image, read_mask


class LoadSliced(MapTransform):
    """Paths -> ``image`` (C, H, W) float32 and, when given, ``label`` (1, H, W) float32 class indices."""

    def __init__(self, class_values: Sequence[int] | None = None) -> None:
        super().__init__(["image", "label"], allow_missing_keys=True)
        self.class_values = class_values

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        image = read_image(d["image"])
        d["size"] = np.asarray(image.shape[1:])
        if d.get("label"):
            mask = read_mask(d["label"], self.class_values)
            check_pair(image, mask, d["image"], d["label"])
            d["label"] = mask[None].astype(np.float32)
        else:
            d.pop("label", None)
        d["image"] = image
        return d


ChannelStats = tuple[Sequence[float], Sequence[float]]  # per-channel (mean, standard deviation)


def build_slice_load_transforms(
    class_values: Sequence[int] | None = None, stats: ChannelStats | None = None
) -> Compose:
    """Read, then scale each channel: by the training set's ``stats`` when given, else a z-score per image."""
    if stats is None:
        scale = NormalizeIntensityd("image", channel_wise=True)
    else:
        scale = NormalizeIntensityd("image", subtrahend=list(stats[0]), divisor=list(stats[1]), channel_wise=True)
    return Compose([LoadSliced(class_values), scale])


def channel_stats(images: Sequence[np.ndarray]) -> tuple[list[float], list[float]]:
    """Mean and standard deviation of each channel over ``images`` (C, H, W)."""
    stacked = np.concatenate([im.reshape(im.shape[0], -1) for im in images], axis=1).astype(np.float64)
    return stacked.mean(1).tolist(), np.maximum(stacked.std(1), 1e-6).tolist()


def build_slice_train_transforms(
    image_size: Sequence[int],
    class_values: Sequence[int] | None = None,
    augment: bool = True,
    stats: ChannelStats | None = None,
) -> Compose:
    """Load, normalise, resize to ``image_size``; then (random) augmentation. The part before the first random
    transform is what a ``CacheDataset`` keeps."""
    steps = [
        *build_slice_load_transforms(class_values, stats).transforms,
        Resized(["image", "label"], spatial_size=list(image_size), mode=("bilinear", "nearest")),
    ]
    if augment:
        keys = ["image", "label"]
        steps += [
            RandFlipd(keys, prob=0.5, spatial_axis=0),
            RandFlipd(keys, prob=0.5, spatial_axis=1),
            RandAffined(
                keys,
                prob=0.5,
                rotate_range=math.radians(15),
                scale_range=0.1,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandAdjustContrastd("image", prob=0.3, gamma=(0.7, 1.5)),
            RandScaleIntensityd("image", factors=0.1, prob=0.3),
            RandShiftIntensityd("image", offsets=0.1, prob=0.3),
            RandGaussianNoised("image", prob=0.2, std=0.05),
            RandGaussianSmoothd("image", prob=0.2, sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0)),
        ]
    return Compose(steps)


@dataclass
class SlicePostProcessing:
    """Clean-up of a predicted 2D mask, as the ultrasound programs do: a probability threshold (binary tasks),
    morphological opening (removes specks) and closing (fills small gaps) with a disc of the given radius, and
    removal of components smaller than ``min_component`` pixels (8-connected). Defaults change nothing."""

    threshold: float = 0.5
    min_component: int = 0
    opening: int = 0
    closing: int = 0

    def check(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must lie between 0 and 1, got {self.threshold}")
        if min(self.min_component, self.opening, self.closing) < 0:
            raise ValueError("min_component, opening and closing must be >= 0")

    def apply(self, classes: np.ndarray) -> np.ndarray:
        """(H, W) class indices -> cleaned class indices (each foreground class on its own)."""
        out = np.zeros_like(classes)
        for value in (v for v in np.unique(classes) if v):
            mask = classes == value
            if self.opening:
                mask = ndimage.binary_opening(mask, structure=_disc(self.opening))
            if self.closing:
                mask = ndimage.binary_closing(mask, structure=_disc(self.closing))
            if self.min_component:
                parts, count = ndimage.label(mask, structure=np.ones((3, 3)))
                sizes = np.bincount(parts.ravel(), minlength=count + 1)
                mask = (sizes >= self.min_component)[parts] & mask
            out[mask & (out == 0)] = value
        return out


def _disc(radius: int) -> np.ndarray:
    y, x = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return x * x + y * y <= radius * radius
