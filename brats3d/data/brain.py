"""The brain mask: BraTS and Decathlon scans are skull-stripped with a zero background, so brain voxels are the
voxels where any channel is non-zero. The one definition used for cropping, sampling and prediction."""

from __future__ import annotations

import numpy as np
import torch


def is_brain(x: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Voxel-wise test on one or more channels (MONAI ``select_fn``; MONAI then takes any over channels)."""
    return x != 0


def brain_mask(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """(X, Y, Z) bool mask of a channel-first image (C, X, Y, Z): any channel non-zero."""
    image = image.numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return np.any(is_brain(image), axis=0)
