"""Left-right asymmetry channels: each MRI channel minus its mirror image across the brain's mid-sagittal plane.

Why: healthy brains are nearly symmetric and gliomas almost never are, while what differs between sites (a
brighter cerebellum on FLAIR and T2 in the CBICA scans, BENCHMARKS.md "Folds by institution") is symmetric. On the
ten BraTS 2018 cases the healthy inferior brain's standardised FLAIR ranges from -0.70 to +0.37 between sites, its
mirror difference from -0.06 to +0.01, while tumour keeps 0.8-2.7 in both. MONAI has no such transform.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.transforms import MapTransform
from scipy.ndimage import gaussian_filter

from brats3d.data.brain import brain_mask
from brats3d.data.layouts import MODALITIES

MIRROR_AXIS = 0  # RAS left-right: every case is reoriented to RAS on loading (transforms/loading.py)
MIRROR_SMOOTHING = 1.5  # voxels (Gaussian sigma): a plane a voxel or two off leaves edges, not regions, unequal
MIRROR_SEARCH = 6  # the plane is sought this many half-voxel steps either side of the brain's bounding-box centre


def image_channel_names(mirror_difference: bool) -> list[str]:
    """The channels the 3D chain gives a network, in order: the four modalities, then their asymmetries when asked."""
    return list(MODALITIES) + ([f"{m}_mirror_difference" for m in MODALITIES] if mirror_difference else [])


def image_channels(mirror_difference: bool) -> int:
    return len(image_channel_names(mirror_difference))


def _within(mirror: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mirror indices clipped into the array, and which of them were inside it."""
    return np.clip(mirror, 0, size - 1), (mirror >= 0) & (mirror < size)


def mirror_indices(brain: np.ndarray, smoothed: np.ndarray) -> np.ndarray:
    """For each index along the left-right axis, the index of its mirror image (possibly outside the array).

    The plane starts at the brain's bounding-box centre and moves by half voxels to where the mirrored brain
    differs least from itself (sampled on every second voxel): atlas-registered BraTS scans sit within 1.5 voxels
    of their box centre, a head turned a little in the scanner further."""
    along = np.nonzero(brain.any(axis=tuple(a for a in range(brain.ndim) if a != MIRROR_AXIS)))[0]
    centre_sum = int(along[0] + along[-1])
    index = np.arange(brain.shape[MIRROR_AXIS])
    sample = smoothed[:, ::2, ::2, ::2]
    inside = brain[::2, ::2, ::2]

    def asymmetry(plane_sum: int) -> float:
        mirrored, valid = _within(plane_sum - index[::2], brain.shape[MIRROR_AXIS])
        both = inside & brain[mirrored][:, ::2, ::2] & valid[:, None, None]
        if not both.any():
            return np.inf
        difference = np.abs(sample - smoothed[:, mirrored][:, :, ::2, ::2])
        return float(difference[:, both].mean())

    best = min(range(centre_sum - MIRROR_SEARCH, centre_sum + MIRROR_SEARCH + 1), key=asymmetry)
    return best - index


def mirror_differences(image: np.ndarray) -> np.ndarray:
    """(C, X, Y, Z) smoothed signed differences between each channel and its mirror image, 0 outside the brain
    and where the mirror image falls outside it (an asymmetric brain edge says nothing about tumour)."""
    brain = brain_mask(image)
    if not brain.any():
        return np.zeros_like(image, dtype=np.float32)
    smoothed = np.stack([gaussian_filter(c.astype(np.float32), MIRROR_SMOOTHING) for c in image])
    mirror, valid = _within(mirror_indices(brain, smoothed), brain.shape[MIRROR_AXIS])
    both = brain & brain[mirror] & valid[:, None, None]
    return np.where(both, smoothed - smoothed[:, mirror], 0.0).astype(np.float32)


class AddMirrorDifferenced(MapTransform):
    """Append ``mirror_differences`` of a normalised (C, X, Y, Z) image as C more channels (C to 2C).

    Flips and in-plane rotations of a patch act on these channels as on the image: the mirror plane moves with the
    anatomy, so augmentation and flip TTA need nothing special."""

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            img = d[key]
            image = np.asarray(img.numpy() if isinstance(img, torch.Tensor) else img, dtype=np.float32)
            d[key] = np.concatenate([image, mirror_differences(image)])
        return d
