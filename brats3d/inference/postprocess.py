"""Post-processing of predicted label maps."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def remove_small_components(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Drop tumour components (26-connected, whole-tumour mask) smaller than ``min_voxels``, with all their labels.

    Written with scipy rather than MONAI's ``RemoveSmallObjects`` because that one needs scikit-image, which would
    be a large dependency for one call.
    """
    if min_voxels <= 0:
        return labels
    components, count = ndimage.label(labels > 0, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return labels
    sizes = np.bincount(components.ravel())
    small = sizes < min_voxels
    small[0] = False
    out = labels.copy()
    out[small[components]] = 0
    return out


def restrict_to_brain(labels: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Zero every label outside the brain (voxels where all channels are zero).

    BraTS and Decathlon scans are skull-stripped, so tumour outside the brain is always a false positive; without
    this, windows that hang over the background produce blobs in empty space.
    """
    brain = np.asarray(image != 0).any(axis=0)
    return np.where(brain, labels, 0).astype(labels.dtype)
