"""A scan whose voxels are not the size the network trained on is predicted at the training spacing and its
probabilities brought back to the scan's grid, as nnU-Net does: a network trained on 1 mm BraTS voxels has learned
the size of anatomy in voxels, so a 0.5 mm or a 2 mm scan shown to it as it is looks like a brain of another size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

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
