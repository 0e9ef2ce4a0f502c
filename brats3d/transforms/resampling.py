"""One voxel spacing for a network, as nnU-Net keeps one: a network trained on 1 mm BraTS voxels has learned the size
of anatomy in voxels, so a 0.5 mm or a 2 mm scan shown to it as it is looks like a brain of another size. Training
resamples cases far from the dataset's median spacing to it (``ResampleToSpacingd``); ``predict`` segments a scan at
the checkpoint's training spacing and brings the probabilities back to the scan's grid.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.transforms import MapTransform

from brats3d.data.brain import brain_mask

# Spacings within 10 % of the training spacing on every axis are predicted as they are (a 0.94 mm in-plane scan
# against 1 mm training data): resampling costs time and blurs, for less than the scale changes the training
# augmentation already shows the network (±10 % in-plane).
SPACING_TOLERANCE = 0.1


def resampling_factors(
    scan_spacing: Sequence[float], training_spacing: Sequence[float] | None, tolerance: float = SPACING_TOLERANCE
) -> tuple[float, float, float] | None:
    """Scan spacing over training spacing per axis (2.0: the scan's voxels are twice as long, so it gets twice the
    voxels), or None when every axis is within ``tolerance`` or the training spacing is unknown (older
    checkpoints)."""
    if training_spacing is None:
        return None
    factors = tuple(float(s) / float(t) for s, t in zip(scan_spacing, training_spacing))
    if all(abs(f - 1.0) <= tolerance for f in factors):
        return None
    return factors


def finer_than(factors: Sequence[float]) -> bool:
    """Whether a scan with these ``resampling_factors`` is at least as fine as the training spacing on every axis
    (within the tolerance): resampling it only averages its voxels together, never invents voxels between them."""
    return all(f <= 1.0 + SPACING_TOLERANCE for f in factors)


def resampled_shape(shape: Sequence[int], factors: Sequence[float]) -> tuple[int, ...]:
    return tuple(max(1, round(n * f)) for n, f in zip(shape, factors))


def resample(volume: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Channel-first ``volume`` (C, X, Y, Z) resampled to ``shape``: trilinear along the axes that grow, then an
    area average along those that shrink, so that fine detail does not alias.

    torch's own interpolation rather than MONAI's ``Resize``: its anti-aliasing smooths with a zero-padded Gaussian,
    which darkens the border of a volume (a constant 0.7 came back as 0.55 at the corners), and an area average needs
    no smoothing at all."""
    target = tuple(int(n) for n in shape)
    x = volume.float()[None]
    grown = tuple(max(n, t) for n, t in zip(x.shape[2:], target))
    if grown != tuple(x.shape[2:]):
        x = F.interpolate(x, size=grown, mode="trilinear", align_corners=False)
    if grown != target:
        x = F.interpolate(x, size=target, mode="area")
    return x[0]


def resample_label(label: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Channel-first label map resampled to ``shape`` by its nearest voxel centre (values never mixed)."""
    out = F.interpolate(label[None].float(), size=tuple(int(n) for n in shape), mode="nearest-exact")
    return out[0].to(label.dtype)


def resampled_affine(affine: np.ndarray, old_shape: Sequence[int], new_shape: Sequence[int]) -> np.ndarray:
    """The voxel-to-world affine of a volume resampled from ``old_shape`` to ``new_shape`` over the same extent:
    each new voxel spans ``old / new`` old voxels, and the first new voxel's centre lies half of that from the
    extent's edge (the voxel-centre convention of ``resample``)."""
    ratio = np.asarray(old_shape, dtype=float) / np.asarray(new_shape, dtype=float)
    voxel_map = np.diag([*ratio, 1.0])
    voxel_map[:3, 3] = (ratio - 1.0) / 2.0
    return np.asarray(affine, dtype=float) @ voxel_map


class ResampleToSpacingd(MapTransform):
    """A loaded case (``LoadCased``: image, label, RAS affine and spacing) resampled to ``spacing`` when any axis is
    over ``SPACING_TOLERANCE`` from it; a case within it passes unchanged.

    Training runs this before the brain crop so that every case shows the network anatomy at one scale, the scale
    ``predict`` later shows it. The image is resampled as ``predict`` resamples scans, the label by nearest voxel,
    and the zero background is kept zero where less than half of a new voxel was brain (interpolation would
    otherwise smear the brain's edge into the background that the brain mask and normalisation rely on).
    Why not MONAI's ``Spacingd``: training should see the interpolation ``predict`` applies (``resample``), and on
    a real BraTS case stored at 1x1x3 mm ``Spacingd`` took 1.8 s against 0.4-0.5 s for this on 2 CPU cores (it
    samples every voxel through a general affine grid; measured while writing this).
    """

    def __init__(self, spacing: Sequence[float], only_finer: bool = False) -> None:
        super().__init__(keys=("image", "label"), allow_missing_keys=True)
        self.spacing = [float(s) for s in spacing]
        self.only_finer = only_finer  # ``predict``: coarser scans are resampled after normalisation instead

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        zoom = resampling_factors(d["spacing"], self.spacing)
        if zoom is None or (self.only_finer and not finer_than(zoom)):
            return d
        image = torch.as_tensor(np.asarray(d["image"], dtype=np.float32))
        old_shape = tuple(image.shape[1:])
        shape = resampled_shape(old_shape, zoom)
        brain = resample(torch.from_numpy(brain_mask(image).astype(np.float32))[None], shape)[0] >= 0.5
        d["image"] = (resample(image, shape) * brain).numpy()
        if d.get("label") is not None:
            d["label"] = resample_label(torch.as_tensor(np.asarray(d["label"])), shape).numpy()
        d["affine"] = resampled_affine(d["affine"], old_shape, shape)
        d["spacing"] = tuple(float(s) * o / n for s, o, n in zip(d["spacing"], old_shape, shape))
        d["spatial_shape"] = shape
        return d
