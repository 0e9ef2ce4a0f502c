"""Pictures of 2D predictions: an overlay PNG per image (predicted mask filled, true outline when known) and a
GIF through a patient's slices."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from brats3d.files import atomic_path

CLASS_COLOURS = np.array([(0, 0, 0), (250, 60, 40), (40, 200, 60), (250, 220, 30), (60, 120, 250)], dtype=np.float32)
TRUE_OUTLINE = (0, 230, 255)
ALPHA = 0.45


def _display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) raw image -> (H, W, 3) float in [0, 1], each channel windowed to its 1st..99th percentile."""
    rgb = image if image.shape[0] == 3 else np.repeat(image[:1], 3, axis=0)
    lo = np.percentile(rgb, 1, axis=(1, 2), keepdims=True)
    hi = np.percentile(rgb, 99, axis=(1, 2), keepdims=True)
    return np.moveaxis(np.clip((rgb - lo) / np.maximum(hi - lo, 1e-6), 0, 1), 0, -1)


def overlay(image: np.ndarray, classes: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8: the image with predicted classes filled in colour and the true mask's outline."""
    rgb = _display(image) * 255
    colours = CLASS_COLOURS[np.minimum(classes, len(CLASS_COLOURS) - 1)]
    filled = classes > 0
    rgb[filled] = (1 - ALPHA) * rgb[filled] + ALPHA * colours[filled]
    if truth is not None:
        edge = (truth > 0) & ~ndimage.binary_erosion(truth > 0)
        rgb[edge] = TRUE_OUTLINE
    return rgb.astype(np.uint8)


def write_png(path: str | Path, picture: np.ndarray) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(picture).save(tmp, format="PNG")
    return path


def write_gif(path: str | Path, frames: Sequence[np.ndarray], frame_ms: int = 150) -> Path:
    """An animated GIF of equally sized RGB frames (a patient's slices in order)."""
    path = Path(path)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path
