"""Intensity standardisation. The default is MONAI's ``NormalizeIntensityd(nonzero=True, channel_wise=True)``
(zero mean, unit variance per channel over brain voxels); this module adds the per-slice variant."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.transforms import MapTransform, NormalizeIntensityd


def brain_normalisation(key: str = "image", per_slice: bool = False) -> MapTransform:
    """The one normalisation used in training and inference: per channel over non-zero (brain) voxels."""
    if per_slice:
        return NormalizeSlicesd(keys=key)
    return NormalizeIntensityd(keys=key, nonzero=True, channel_wise=True)


class NormalizeSlicesd(MapTransform):
    """Standardise each channel of each axial (z) slice over its non-zero voxels, as common Keras BraTS notebooks do.

    MONAI has no per-slice option; this is the slice-wise analogue of ``NormalizeIntensityd(nonzero=True)``.
    Slices without brain stay zero.
    """

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            arr = img.numpy() if isinstance(img, torch.Tensor) else np.asarray(img)
            arr = np.array(arr, dtype=np.float32, copy=True)
            mask = arr != 0
            count = mask.sum(axis=(1, 2), keepdims=True)
            safe = np.maximum(count, 1)
            mean = arr.sum(axis=(1, 2), keepdims=True) / safe
            var = (np.where(mask, arr - mean, 0) ** 2).sum(axis=(1, 2), keepdims=True) / safe
            std = np.sqrt(var)
            std[std == 0] = 1
            arr = np.where(mask, (arr - mean) / std, 0).astype(np.float32)
            d[key] = arr
        return d
