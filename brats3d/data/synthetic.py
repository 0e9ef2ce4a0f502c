"""Synthetic BraTS-like phantoms: a brain with four MRI contrasts and a glioma (edema, core, enhancing rim).

Real data cannot be fetched at run time, so these phantoms are the default for the demo and the tests. They are
made so that the segmentation task is learnable but not trivial: contrasts overlap between tissues, the tumour
shape is irregular, and each case has its own bias field, noise and scanner scale.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from brats3d.data.labels import EDEMA, ENHANCING, NON_ENHANCING, from_canonical
from brats3d.data.layouts import FILE_ENDINGS, MODALITIES, Layout
from brats3d.files import atomic_path

# Mean intensity of each tissue in (FLAIR, T1, T1ce, T2), roughly as the tissues look on real scans.
_TISSUE = {
    "csf": (0.15, 0.25, 0.25, 1.00),
    "grey": (0.55, 0.55, 0.55, 0.60),
    "white": (0.45, 0.80, 0.80, 0.40),
    "edema": (0.95, 0.45, 0.45, 0.85),
    "core": (0.65, 0.30, 0.30, 0.90),
    "enhancing": (0.75, 0.50, 1.30, 0.70),
}
# Affine of the real BraTS releases (1 mm, x and y flipped, origin offset), so phantoms exercise the same paths.
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239.0], [0, 0, 1.0, 0], [0, 0, 0, 1]])


def _smooth_field(shape: tuple[int, ...], rng: np.random.Generator, coarse: int = 4) -> np.ndarray:
    """A smooth random field in [-1, 1]: coarse noise upsampled by linear interpolation."""
    small = rng.uniform(-1, 1, size=(coarse,) * len(shape))
    field = ndimage.zoom(small, [s / coarse for s in shape], order=1, mode="nearest")
    field = field[tuple(slice(0, s) for s in shape)]
    return np.clip(field / max(np.abs(field).max(), 1e-6), -1, 1).astype(np.float32)


def make_phantom(shape: tuple[int, int, int] = (96, 96, 64), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One case: image (4, X, Y, Z) float32 in MODALITIES order and canonical labels (X, Y, Z) uint8."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij"))
    wobble = _smooth_field(shape, rng)

    def ellipsoid(centre, radii):
        d = sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3))
        return np.sqrt(d)

    brain_d = ellipsoid((0, 0, 0), (0.82, 0.9, 0.85)) * (1 + 0.04 * wobble)
    brain = brain_d < 1
    white = ellipsoid((0, 0, 0), (0.6, 0.7, 0.6)) * (1 + 0.12 * wobble) < 1
    ventricles = (ellipsoid((-0.15, 0.0, 0.05), (0.08, 0.3, 0.15)) < 1) | (
        ellipsoid((0.15, 0.0, 0.05), (0.08, 0.3, 0.15)) < 1
    )
    sulci = brain & (brain_d > 0.93)

    tissue = np.zeros((4, *shape), dtype=np.float32)
    tissue[:, brain] = np.array(_TISSUE["grey"])[:, None]
    tissue[:, white & brain] = np.array(_TISSUE["white"])[:, None]
    tissue[:, ventricles | sulci] = np.array(_TISSUE["csf"])[:, None]

    # Tumour: an irregular blob inside one hemisphere, with edema spreading further than the core.
    centre = rng.uniform(-0.35, 0.35, size=3) * np.array([1, 1, 0.8])
    radius = rng.uniform(0.16, 0.26)
    shape_noise = _smooth_field(shape, rng, coarse=5)
    d = ellipsoid(centre, (radius,) * 3) * (1 + 0.3 * shape_noise)
    core_edge, rim_edge = rng.uniform(0.5, 0.7), rng.uniform(0.85, 1.0)
    edema_edge = rng.uniform(1.4, 1.9)
    label = np.zeros(shape, dtype=np.uint8)
    label[(d < edema_edge) & brain & ~ventricles] = EDEMA
    label[(d < rim_edge) & brain] = ENHANCING
    if rng.uniform() < 0.85:  # most gliomas in BraTS have a necrotic / non-enhancing centre
        label[(d < core_edge) & brain] = NON_ENHANCING
    else:
        label[(d < rim_edge * 0.8) & brain] = NON_ENHANCING
        label[(d < rim_edge * 0.5) & brain] = ENHANCING
    for name, value in (("edema", EDEMA), ("core", NON_ENHANCING), ("enhancing", ENHANCING)):
        mask = label == value
        tissue[:, mask] = np.array(_TISSUE[name])[:, None]

    # Texture, partial volume, bias field, noise and a per-modality scanner scale.
    texture = _smooth_field(shape, rng, coarse=12)
    image = tissue * (1 + 0.08 * texture)
    image = ndimage.gaussian_filter(image, sigma=(0, 0.8, 0.8, 0.8))
    bias = 1 + 0.15 * _smooth_field(shape, rng, coarse=3)
    image *= bias
    image += rng.normal(0, 0.04, size=image.shape).astype(np.float32)
    image = np.clip(image, 0, None)
    image *= rng.uniform(300, 1200, size=(4, 1, 1, 1)).astype(np.float32)
    image[:, ~brain] = 0  # skull-stripped, as in BraTS
    return image.astype(np.float32), label


def _nifti(data: np.ndarray, affine: np.ndarray, dtype) -> nib.Nifti1Image:
    img = nib.Nifti1Image(data.astype(dtype), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def _save(img: nib.Nifti1Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))


def write_case(
    root: str | Path, case_id: str, image: np.ndarray, label: np.ndarray | None, layout: Layout | str
) -> list[Path]:
    """Write one case in the chosen layout with the label numbering of that layout; returns the files written."""
    root, layout = Path(root), Layout(layout)
    written: list[Path] = []
    if layout is Layout.MSD:
        affine = np.eye(4)
        path = root / ("imagesTr" if label is not None else "imagesTs") / f"{case_id}.nii.gz"
        _save(_nifti(np.moveaxis(image, 0, -1), affine, np.float32), path)
        written.append(path)
        if label is not None:
            path = root / "labelsTr" / f"{case_id}.nii.gz"
            _save(_nifti(from_canonical(label, layout.convention), affine, np.uint8), path)
            written.append(path)
        return written
    endings = FILE_ENDINGS[layout]
    folder = root / case_id
    for c, modality in enumerate(MODALITIES):
        path = folder / f"{case_id}{endings[modality]}.nii.gz"
        _save(_nifti(np.round(image[c]), BRATS_AFFINE, np.int16), path)
        written.append(path)
    if label is not None:
        path = folder / f"{case_id}{endings['seg']}.nii.gz"
        _save(_nifti(from_canonical(label, layout.convention), BRATS_AFFINE, np.uint8), path)
        written.append(path)
    return written


def case_id_for(layout: Layout | str, index: int) -> str:
    """Case ids that look like the real ones of each layout."""
    layout = Layout(layout)
    return {
        Layout.MSD: f"BRATS_{index + 1:03d}",
        Layout.BRATS2021: f"BraTS2021_{index + 1:05d}",
        Layout.BRATS2023: f"BraTS-GLI-{index + 1:05d}-000",
    }[layout]


def write_dataset(
    root: str | Path,
    cases: int,
    layout: Layout | str = Layout.MSD,
    shape: tuple[int, int, int] = (96, 96, 64),
    seed: int = 0,
) -> list[str]:
    """Write ``cases`` labelled phantoms (plus dataset.json for the Decathlon layout); returns the case ids."""
    root, layout = Path(root), Layout(layout)
    ids = []
    for i in range(cases):
        image, label = make_phantom(shape, seed=seed * 100_003 + i)
        case_id = case_id_for(layout, i)
        write_case(root, case_id, image, label, layout)
        ids.append(case_id)
    if layout is Layout.MSD:
        meta = {
            "name": "BRATS (synthetic phantoms by brats3d)",
            "tensorImageSize": "4D",
            "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
            "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
            "numTraining": len(ids),
            "numTest": 0,
            "training": [{"image": f"./imagesTr/{i}.nii.gz", "label": f"./labelsTr/{i}.nii.gz"} for i in ids],
            "test": [],
        }
        with atomic_path(root / "dataset.json") as tmp:
            tmp.write_text(json.dumps(meta, indent=2))
    return ids
