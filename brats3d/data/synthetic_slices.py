"""Synthetic 2D phantoms for the 2D demo and tests: an organ with texture and noise, and a lesion (binary) or a
lesion with a core (three classes), grey or RGB, written in the LGG or the paired-folder layout.

Slices of one patient cut through one ellipsoidal lesion, so neighbouring slices look alike (as real slices do)
and a per-patient score means something.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from brats3d.data.slices import write_mask
from brats3d.files import atomic_path


def make_slice_phantom(
    size: tuple[int, int] = (64, 64),
    channels: int = 3,
    classes: int = 2,
    lesion_radius: float = 0.2,
    centre: tuple[float, float] = (0.1, -0.1),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """One slice: image (H, W, channels) uint8 and class indices (H, W) uint8 (0 background, 1 lesion, 2 core).

    ``lesion_radius`` 0 gives a slice without lesion.
    """
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in size], indexing="ij")
    wobble = ndimage.zoom(rng.uniform(-1, 1, (5, 5)), [s / 5 for s in size], order=1)[: size[0], : size[1]]
    organ = (x / 0.85) ** 2 + (y / 0.75) ** 2 < 1 + 0.05 * wobble
    d = np.sqrt((x - centre[0]) ** 2 + (y - centre[1]) ** 2) * (1 + 0.25 * wobble)
    label = np.zeros(size, dtype=np.uint8)
    if lesion_radius > 0:
        label[(d < lesion_radius) & organ] = 1
        if classes > 2:
            label[(d < lesion_radius * 0.5) & organ] = 2
    # Per-channel means of background, organ, lesion and core, like pre-contrast / FLAIR / post-contrast.
    means = np.array([[0.0, 0.0, 0.0], [0.45, 0.40, 0.42], [0.55, 0.85, 0.50], [0.30, 0.60, 0.80]])
    image = np.zeros((*size, 3), dtype=np.float32)
    image[organ] = means[1]
    for value in range(1, classes):
        image[label == value] = means[1 + value]
    image = ndimage.gaussian_filter(image, sigma=(1.0, 1.0, 0))
    image *= 1 + 0.1 * wobble[..., None]
    image += rng.normal(0, 0.05, image.shape)
    image[~organ] = 0
    image = np.clip(image * 255, 0, 255).astype(np.uint8)
    return (image[..., 1] if channels == 1 else image), label  # grey: the FLAIR-like channel


def _patient_slices(patient: int, slices: int, size, channels, classes, seed) -> list[tuple[np.ndarray, np.ndarray]]:
    """A patient's slices through one ellipsoidal lesion: absent at the ends, largest in the middle."""
    rng = np.random.default_rng(seed * 7919 + patient)
    centre = tuple(rng.uniform(-0.3, 0.3, 2))
    peak, middle, extent = rng.uniform(0.15, 0.3), rng.uniform(0.4, 0.6) * slices, rng.uniform(0.25, 0.4) * slices
    out = []
    for n in range(slices):
        t = (n - middle) / extent
        radius = peak * np.sqrt(max(0.0, 1 - t * t))
        out.append(make_slice_phantom(size, channels, classes, radius, centre, seed=seed * 100_003 + patient * 97 + n))
    return out


def _write_image(path: Path, pixels: np.ndarray) -> None:
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, pixels, extension=path.suffix)


def write_lgg_dataset(
    root: str | Path, patients: int = 4, slices: int = 8, size: tuple[int, int] = (64, 64), seed: int = 0
) -> list[str]:
    """The Kaggle LGG layout: ``<patient>/<patient>_<n>.tif`` (RGB) and ``..._<n>_mask.tif`` (0/255)."""
    root = Path(root)
    ids = []
    for p in range(patients):
        patient = f"TCGA_SY_{p + 1:04d}_20260101"
        for n, (image, label) in enumerate(_patient_slices(p, slices, size, 3, 2, seed), start=1):
            _write_image(root / patient / f"{patient}_{n}.tif", image)
            write_mask(root / patient / f"{patient}_{n}_mask.tif", label, [0, 255])
        ids.append(patient)
    return ids


def write_paired_dataset(
    root: str | Path,
    patients: int = 4,
    slices: int = 6,
    size: tuple[int, int] = (64, 64),
    channels: int = 1,
    classes: int = 2,
    suffix: str = ".png",
    seed: int = 0,
) -> list[str]:
    """``images/`` and ``masks/`` named ``case<p>_<n>``; binary masks 0/255, three classes as 0/1/2."""
    root = Path(root)
    values = [0, 255] if classes == 2 else list(range(classes))
    ids = []
    for p in range(patients):
        for n, (image, label) in enumerate(_patient_slices(p, slices, size, channels, classes, seed)):
            name = f"case{p + 1:03d}_{n:02d}"
            _write_image(root / "images" / f"{name}{suffix}", image)
            write_mask(root / "masks" / f"{name}.png", label, values)
        ids.append(f"case{p + 1:03d}")
    return ids
