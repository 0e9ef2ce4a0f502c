"""Intensity standardisation. The default is MONAI's ``NormalizeIntensityd(nonzero=True, channel_wise=True)``
(zero mean, unit variance per channel over brain voxels); this module adds the per-slice variant, a flattened
variant that first divides out each channel's smooth intensity field, and a bias-field augmentation that acts on a
standardised case as a scanner's field acts on the raw one."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, NormalizeIntensityd, RandBiasField, RandomizableTransform

from brats3d.data.brain import brain_mask
from brats3d.data.layouts import MODALITIES
from brats3d.transforms.symmetry import MIRROR_AXIS

# 3D normalisations (``data.normalisation``): brain: per channel over brain voxels | slice: per channel and axial
# slice | flattened: each channel's smooth intensity field divided out, then per channel over brain voxels.
NORMALISATIONS = ("brain", "slice", "flattened")


def brain_normalisation(key: str = "image", method: str = "brain") -> MapTransform:
    """The one normalisation used in training and inference (``method``: one of ``NORMALISATIONS``).

    One transform, never a ``Compose``: MONAI's caches keep a chain's results up to its first randomizable
    transform, and a ``Compose`` counts as one, so a nested chain would be recomputed for every patch."""
    if method == "slice":
        return NormalizeSlicesd(keys=key)
    if method == "flattened":
        return NormalizeFlattenedd(keys=key)
    if method != "brain":
        raise ValueError(f"unknown normalisation {method!r}; expected one of {NORMALISATIONS}")
    return _standardise(key)


def _standardise(key: str) -> NormalizeIntensityd:
    return NormalizeIntensityd(keys=key, nonzero=True, channel_wise=True)


def _exponents(degree: int) -> list[tuple[int, int, int]]:
    """Powers (i, j, k) with i + j + k <= degree and an even power of the left-right coordinate (``MIRROR_AXIS``)."""
    powers = [(i, j, k) for i in range(degree + 1) for j in range(degree + 1 - i) for k in range(degree + 1 - i - j)]
    return [p for p in powers if p[MIRROR_AXIS] % 2 == 0]


def _monomials(coordinates: list[np.ndarray], exponents: list[tuple[int, int, int]]) -> np.ndarray:
    """(N, terms) products x^i y^j z^k of the coordinates for each of ``exponents``."""
    x, y, z = coordinates
    return np.stack([x**i * y**j * z**k for i, j, k in exponents], axis=-1)


def _box_coordinates(indices: tuple[np.ndarray, ...], low: list[int], high: list[int]) -> list[np.ndarray]:
    """Voxel indices as coordinates in [-1, 1] over the box ``low``..``high`` (inclusive), 0 at its centre."""
    return [(index - (lo + hi) / 2) / max((hi - lo) / 2, 1.0) for index, lo, hi in zip(indices, low, high)]


def smooth_log_field(
    channel: np.ndarray, brain: np.ndarray, degree: int = 2, samples: int = 10_000
) -> np.ndarray | None:
    """A polynomial of ``degree`` in the voxel coordinates fitted to log intensity over the brain's positive voxels,
    refitted twice without voxels further than 1.5 SD from the fit (tumour, CSF) so that they do not bend it.
    Returns the field's log gain at every brain voxel (mean 0 over the fit), or None when under 90 % of the brain
    is positive (raw MR magnitudes are: 96.5-100 % per channel in the ten BraTS cases; a standardised channel, or
    one that is no intensity, is left alone).

    The field is mirror-symmetric across the brain's mid-sagittal plane (even powers of the left-right coordinate
    only). Why: a glioma lies in one hemisphere, and a free fit tilts towards a large bright tumour and divides part
    of it out (mean oedema contrast on the ten BraTS cases, FLAIR / T2: 2.04 / 0.88 SD standardised over the brain,
    1.72 / 0.62 flattened with a free fit, 1.95 / 0.78 with a symmetric one), while the site differences it removes
    run from the cerebellum upwards and are symmetric (``benchmarks/bench_site_shift.py``; BENCHMARKS.md).

    For speed the fit uses every ``step``-th voxel per axis: 4 on a whole adult brain (over 20,000 voxels then),
    fewer on a small brain, where sparse samples of mixed tissue would leave the fit noisy."""
    positive = brain & (channel > 0)
    count = int(positive.sum())
    if count < 0.9 * brain.sum() or count < 100:
        return None
    step = int(np.clip((count / samples) ** (1 / 3), 1, 4))
    exponents = _exponents(degree)
    inside = np.nonzero(brain)
    low, high = [int(i.min()) for i in inside], [int(i.max()) for i in inside]  # the brain's bounding box
    sampled = np.zeros_like(positive)
    sampled[::step, ::step, ::step] = positive[::step, ::step, ::step]
    where = np.nonzero(sampled)
    terms = _monomials(_box_coordinates(where, low, high), exponents)
    log_value = np.log(channel[where].astype(np.float64))
    keep = np.ones(log_value.shape, dtype=bool)
    for _ in range(3):
        coefficients = np.linalg.lstsq(terms[keep], log_value[keep], rcond=None)[0]
        residual = log_value - terms @ coefficients
        keep = np.abs(residual) <= 1.5 * residual[keep].std()  # <=: a flat channel keeps every voxel
    offset = float((terms @ coefficients)[keep].mean())
    return _monomials(_box_coordinates(inside, low, high), exponents) @ coefficients - offset


class NormalizeFlattenedd(MapTransform):
    """Divide each channel by its own smooth intensity field (a degree-2 polynomial in log intensity, mirror-symmetric
    across the mid-sagittal plane: ``smooth_log_field``), then standardise it over the brain as ``normalisation:
    brain`` does, so that scanners and sites that leave one part of the brain brighter than another on one sequence
    look alike.

    Why: on the ten BraTS 2018 cases the healthy inferior brain (cerebellum, brain stem) ranges from 0.76 SD darker
    to 0.51 SD brighter than the rest on T2 depending on the site (``benchmarks/bench_site_shift.py``), and a model
    that never saw a site with a bright cerebellum labels it oedema. Why not ITK's N4: about 5 s a channel even on a
    4x-shrunk scan (20 s a case, a sixth of a 20-minute CPU budget on ten cases); this fit takes about 0.1 s a
    channel and removes the slab-scale differences between sites that matter here (BENCHMARKS.md). Channels with
    mostly non-positive values are only standardised. Expects a channel-first (C, X, Y, Z) image with zero background.
    """

    def __init__(self, keys: str) -> None:
        super().__init__(keys)
        self.standardise = _standardise(keys)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            image = np.array(img.numpy() if isinstance(img, torch.Tensor) else img, dtype=np.float32)
            brain = brain_mask(image)
            for channel in image:
                log_gain = smooth_log_field(channel, brain)
                if log_gain is not None:
                    values = channel[brain]
                    channel[brain] = np.where(values > 0, values * np.exp(-log_gain), values)
            d[key] = image
        return self.standardise(d)


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
    Expects a brain-wide standardisation (``normalisation: brain`` or ``flattened``).
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


class RandDropModalityd(RandomizableTransform, MapTransform):
    """With probability ``prob``, one MRI sequence of a patch, chosen at random, set to zero (the brain mean and the
    background of a standardised case: no information).

    Why: a network that can segment without any one sequence cannot lean on one sequence's look at one site (the
    CBICA scans' bright FLAIR, BENCHMARKS.md "Folds by institution"), as in hetero-modal training. The image may
    hold ``modalities`` sequences followed by derived channels in the same order (the asymmetry channels); those of
    the dropped sequence are zeroed with it. MONAI's dropouts remove regions, not channels.
    """

    def __init__(self, keys: str, prob: float, modalities: int = len(MODALITIES)) -> None:
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.modalities = modalities
        self.dropped = 0

    def randomize(self, data: object = None) -> None:
        super().randomize(None)
        self.dropped = int(self.R.randint(self.modalities))

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        self.randomize()
        if not self._do_transform:
            return d
        for key in self.key_iterator(d):
            image = d[key].clone() if isinstance(d[key], torch.Tensor) else np.array(d[key], copy=True)
            image[self.dropped :: self.modalities] = 0
            d[key] = image
        return d
