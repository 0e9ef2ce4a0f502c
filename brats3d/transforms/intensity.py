"""Intensity standardisation. The default is MONAI's ``NormalizeIntensityd(nonzero=True, channel_wise=True)``
(zero mean, unit variance per channel over brain voxels); this module adds the per-slice variant and a bias-field
augmentation that acts on a standardised case as a scanner's field acts on the raw one."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, NormalizeIntensityd, RandBiasField, RandomizableTransform

from brats3d.data.brain import brain_mask


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


class RandBrainBiasFieldd(RandomizableTransform, MapTransform):
    """A smooth multiplicative intensity field over the whole case, as a receive coil leaves in an MR scan.

    Why not MONAI's ``RandBiasFieldd`` alone: it multiplies the values it is given, and on a standardised case that
    leaves tissue of average brightness (value 0) untouched, whereas a real field multiplies raw intensities before
    standardisation. So each channel is moved back to a raw-like scale whose darkest brain voxel sits at zero
    (skull-stripped raw intensities start near zero), multiplied by MONAI's polynomial field (the same for every
    channel, as one coil's field is), and standardised over the brain again; the background stays zero. Applied to
    the whole cropped case before patches are drawn, so the field varies over the head, not over a 16-slice patch.
    For speed (about 0.06 s a case instead of 0.55 s) the field is evaluated on a grid 8 times coarser and
    interpolated, which a degree-3 polynomial survives, and the new mean and deviation come from every 8th voxel.
    Expects the brain-wide standardisation (``normalisation: brain``).
    """

    def __init__(self, keys: str, prob: float, coefficient: float = 0.2) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        # Legendre coefficients of degree <= 3, each uniform in +-coefficient: with 0.2 the gain varies about
        # 1.5-1.8-fold across a brain (1st to 99th percentile), as in scans without bias correction.
        self.field = RandBiasField(degree=3, coeff_range=(-coefficient, coefficient), prob=1.0)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.field.set_random_state(state=self.R)
        return self

    def _gain(self, shape: tuple[int, ...]) -> np.ndarray:
        coarse = [max(2, (n + 7) // 8) for n in shape]
        gain = torch.as_tensor(np.asarray(self.field(np.ones((1, *coarse), dtype=np.float32))))
        return F.interpolate(gain[None], size=shape, mode="trilinear", align_corners=True)[0, 0].numpy()

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize(None)
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            img = d[key]
            image = np.array(img.numpy() if isinstance(img, torch.Tensor) else img, dtype=np.float32)
            brain = brain_mask(image)
            if not brain.any():
                continue
            gain = self._gain(image.shape[1:])
            sampled = brain[::2, ::2, ::2]
            for channel in image:
                biased = (channel - channel[brain].min()) * gain
                values = biased[::2, ::2, ::2][sampled]
                np.copyto(channel, np.where(brain, (biased - values.mean()) / max(float(values.std()), 1e-6), 0))
            d[key] = image
        return d
