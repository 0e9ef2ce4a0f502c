"""2D slice datasets: the Kaggle LGG layout and a generic paired-folder layout, read into (C, H, W) images and
(H, W) class-index masks, with every problem named by file.

- ``lgg``: ``<patient>/<patient>_<n>.tif`` and ``<patient>/<patient>_<n>_mask.tif`` (the Kaggle "LGG
  segmentation" set: 256x256x3 pre-contrast / FLAIR / post-contrast, binary masks); slices ordered by ``n``.
- ``paired``: ``images/<name>.<ext>`` and ``masks/<name>.<ext>`` with the same name (the extension may differ);
  PNG, TIFF or JPEG, grey or RGB. A patient id comes from a regular expression on the name (its first group), so
  splits keep every slice of a patient on one side; without one, each image is its own patient.

Masks hold 0/255 or 0/1 (binary) or a small set of class values; a mask with any other value is an error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np

from brats3d.errors import BratsInputError

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg")
LGG_SLICE = re.compile(r"^(?P<patient>.+)_(?P<n>\d+)$")
MAX_CLASSES = 16  # more distinct values than this is an image, not a label mask


class SliceLayout(str, Enum):
    LGG = "lgg"
    PAIRED = "paired"


@dataclass(frozen=True)
class Slice:
    """One 2D image and its mask (None when unlabelled), with the patient it belongs to and its order there."""

    image: Path
    mask: Path | None
    patient: str
    index: int

    @property
    def slice_id(self) -> str:
        return self.image.stem


@dataclass
class SliceIndex:
    layout: SliceLayout
    root: Path
    slices: list[Slice] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one line per file that cannot be used

    def labelled(self) -> list[Slice]:
        return [s for s in self.slices if s.mask is not None]

    def patients(self) -> dict[str, list[Slice]]:
        """Slices grouped by patient, each patient's slices in order."""
        groups: dict[str, list[Slice]] = {}
        for s in sorted(self.slices, key=lambda s: (s.patient, s.index, s.image.name)):
            groups.setdefault(s.patient, []).append(s)
        return groups

    def require_clean(self) -> SliceIndex:
        if self.problems:
            more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
            raise BratsInputError(None, self.problems[0] + more)
        if not self.slices:
            raise BratsInputError(self.root, f"no images found in the {self.layout.value} layout")
        return self


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def detect_slice_layout(root: str | Path) -> SliceLayout | None:
    """The 2D layout of ``root``, or None when it is not a 2D dataset."""
    root = Path(root)
    if not root.is_dir():
        return None
    if (root / "images").is_dir():
        return SliceLayout.PAIRED
    for sub in sorted(p for p in root.iterdir() if p.is_dir())[:5]:
        if any(p.stem.endswith("_mask") for p in _images(sub)):
            return SliceLayout.LGG
    return None


def is_slice_dataset(path: str | Path) -> bool:
    return detect_slice_layout(path) is not None


def _discover_lgg(root: Path, index: SliceIndex) -> None:
    patient_dirs = [p for p in sorted(root.iterdir()) if p.is_dir()]
    folders = patient_dirs or [root]  # a single patient folder also works
    for folder in folders:
        files = _images(folder)
        masks = {p.stem.removesuffix("_mask"): p for p in files if p.stem.endswith("_mask")}
        for image in (p for p in files if not p.stem.endswith("_mask")):
            match = LGG_SLICE.match(image.stem)
            if match is None:
                index.problems.append(f"{image}: expected <patient>_<n>{image.suffix} (the LGG layout)")
                continue
            mask = masks.pop(image.stem, None)
            if mask is None:
                index.problems.append(f"{image}: no mask {image.stem}_mask{image.suffix} beside it")
                continue
            index.slices.append(Slice(image, mask, match["patient"], int(match["n"])))
        index.problems += [f"{m}: mask without its image {stem}{m.suffix}" for stem, m in masks.items()]


def _discover_paired(root: Path, index: SliceIndex, patient_pattern: str | None) -> None:
    pattern = re.compile(patient_pattern) if patient_pattern else None
    masks_dir = root / "masks"
    masks = {p.stem: p for p in _images(masks_dir)} if masks_dir.is_dir() else {}
    for order, image in enumerate(_images(root / "images")):
        patient = image.stem
        if pattern is not None:
            match = pattern.search(image.stem)
            if match is None or not match.groups():
                index.problems.append(f"{image}: name does not match data.patient_pattern {pattern.pattern!r}")
                continue
            patient = match.group(1)
        mask = masks.pop(image.stem, None)
        if mask is None and masks_dir.is_dir():
            index.problems.append(f"{image}: no mask of the same name in {masks_dir}")
            continue
        number = re.findall(r"\d+", image.stem)
        index.slices.append(Slice(image, mask, patient, int(number[-1]) if number else order))
    index.problems += [f"{m}: mask without an image of the same name in {root / 'images'}" for m in masks.values()]


def discover_slices(
    root: str | Path, layout: SliceLayout | str | None = None, patient_pattern: str | None = None
) -> SliceIndex:
    """Index a 2D dataset (or a single LGG patient folder); problems are collected, not raised."""
    root = Path(root)
    if not root.is_dir():
        raise BratsInputError(root, "not a folder")
    found = SliceLayout(layout) if layout else detect_slice_layout(root)
    if found is None and _images(root):
        found = SliceLayout.LGG  # a patient folder: its images directly inside
    if found is None:
        raise BratsInputError(root, "no 2D layout found (expected images/ + masks/, or <patient>/<patient>_<n>.tif)")
    index = SliceIndex(found, root)
    if found is SliceLayout.LGG:
        _discover_lgg(root, index)
    else:
        _discover_paired(root, index, patient_pattern)
    return index


def read_image(path: str | Path) -> np.ndarray:
    """An image as (C, H, W) float32 (grey: C = 1; RGB: 3; an alpha channel is dropped)."""
    import imageio.v3 as iio

    path = Path(path)
    try:
        data = np.asarray(iio.imread(path, extension=path.suffix.lower()))  # the plugin of its type, no guessing
    except Exception as exc:
        raise BratsInputError(path, f"unreadable image ({type(exc).__name__})") from exc
    if data.ndim == 2:
        data = data[None]
    elif data.ndim == 3 and data.shape[-1] in (3, 4):
        data = np.moveaxis(data[..., :3], -1, 0)
    else:
        raise BratsInputError(path, f"expected a grey or RGB image, got an array of shape {data.shape}")
    return data.astype(np.float32)


def read_mask(path: str | Path, class_values: Sequence[int] | None = None) -> np.ndarray:
    """A mask as (H, W) uint8 class indices: the index of each pixel's value in ``class_values`` (default: binary,
    0 and 255 or 0 and 1). Any other value is a BratsInputError naming the file and the values."""
    data = read_image(path)
    if data.shape[0] == 3 and not ((data[0] == data[1]).all() and (data[0] == data[2]).all()):  # RGB-saved mask
        raise BratsInputError(path, "RGB mask whose channels differ; expected a grey mask")
    values = np.unique(data[0])
    allowed = np.asarray(class_values if class_values is not None else _binary_values(values), dtype=np.float32)
    unexpected = np.setdiff1d(values, allowed)
    if unexpected.size:
        shown = ", ".join(f"{v:g}" for v in unexpected[:5])
        raise BratsInputError(
            path, f"mask holds unexpected values {shown} (expected {', '.join(f'{v:g}' for v in allowed)})"
        )
    return np.searchsorted(allowed, data[0]).astype(np.uint8)


def _binary_values(values: np.ndarray) -> list[int]:
    return [0, 1] if values.max(initial=0) <= 1 else [0, 255]


def mask_values(slices: Sequence[Slice], sample: int = 50) -> list[int]:
    """The class values of a dataset's masks, from up to ``sample`` of them: 0/255 or 0/1 (binary), or the
    consecutive classes 0..K-1. Any other value is a BratsInputError naming a mask that holds it (set
    ``data.class_values`` for a dataset with other values)."""
    first_seen: dict[int, Path] = {}
    step = max(1, len(slices) // sample)
    for s in list(slices)[::step]:
        for v in np.unique(read_image(s.mask)[0]).astype(int).tolist():
            first_seen.setdefault(v, s.mask)
    values = sorted(set(first_seen) | {0})
    if 255 in values:
        expected = [0, 255]
    elif values[-1] <= 1:
        expected = [0, 1]
    else:
        expected = list(range(min(values[-1] + 1, MAX_CLASSES)))
    odd = [v for v in values if v not in expected]
    if odd:
        shown = ", ".join(map(str, odd[:5]))
        raise BratsInputError(
            first_seen[odd[0]],
            f"mask holds unexpected values {shown} (expected {'/'.join(map(str, expected))}; "
            "set data.class_values if these are classes)",
        )
    return expected


def check_pair(image: np.ndarray, mask: np.ndarray, image_path: str | Path, mask_path: str | Path) -> None:
    """A BratsInputError naming the mask when its size differs from its image's."""
    if image.shape[1:] != mask.shape:
        raise BratsInputError(
            mask_path, f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image's "
            f"{image.shape[2]}x{image.shape[1]} ({Path(image_path).name})"
        )  # fmt: skip


def mask_suffix(image: Path) -> str:
    """A mask keeps its image's file type, except JPEG: its lossy compression would blur a label mask, so PNG."""
    return ".png" if image.suffix.lower() in (".jpg", ".jpeg") else image.suffix


def write_mask(path: str | Path, classes: np.ndarray, class_values: Sequence[int]) -> None:
    """Write (H, W) class indices as the dataset's values (0/255 for binary), atomically."""
    import imageio.v3 as iio

    from brats3d.files import atomic_path

    values = np.asarray(class_values)
    pixels = values[classes].astype(np.uint8 if values.max() <= 255 else np.uint16)
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, pixels, extension=path.suffix)


@dataclass
class SliceReport:
    """``brats3d inspect`` of a 2D dataset: layout, patients, sizes, channels, mask values and problems."""

    index: SliceIndex
    sizes: dict[str, int] = field(default_factory=dict)  # "HxW, C channel(s)" -> images
    values: list[int] = field(default_factory=list)
    read_problems: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.index.problems + self.read_problems

    def format(self) -> str:
        idx = self.index
        lines = [
            f"dataset:  {idx.root}",
            f"layout:   {idx.layout.value} (2D slices)",
            f"patients: {len(idx.patients())}",
            f"images:   {len(idx.slices)} ({len(idx.labelled())} with masks)",
            f"sizes:    {', '.join(f'{k} ({n})' for k, n in self.sizes.items()) or '-'}",
            f"masks:    values {{{', '.join(map(str, self.values))}}}",
            f"problems: {len(self.problems)}",
        ]
        return "\n".join(lines + [f"  - {p}" for p in self.problems])


def inspect_slices(
    root: str | Path, layout: SliceLayout | str | None = None, patient_pattern: str | None = None, full: bool = False
) -> SliceReport:
    """Index a 2D dataset and read a sample of it (every image and mask with ``full``): unreadable files, masks
    whose size differs from the image's and masks with unexpected values are listed by file."""
    report = SliceReport(discover_slices(root, layout, patient_pattern))
    labelled = report.index.labelled()
    chosen = labelled if full else labelled[:: max(1, len(labelled) // 50)]
    try:
        report.values = mask_values(labelled) if labelled else []
    except BratsInputError as exc:
        report.read_problems.append(str(exc))
    for item in chosen:
        try:
            image = read_image(item.image)
            mask = read_mask(item.mask, report.values or None)
            check_pair(image, mask, item.image, item.mask)
        except BratsInputError as exc:
            report.read_problems.append(str(exc))
            continue
        key = f"{image.shape[2]}x{image.shape[1]}, {image.shape[0]} channel(s)"
        report.sizes[key] = report.sizes.get(key, 0) + 1
    return report
