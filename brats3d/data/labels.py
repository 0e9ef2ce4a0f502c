"""The one label scheme used inside brats3d, and exact conversions to and from each dataset's convention.

Canonical labels (the Decathlon numbering, ordered as the evaluation reports them):
0 background, 1 edema (ED), 2 non-enhancing / necrotic tumour core (NCR/NET), 3 enhancing tumour (ET).
BraTS regions: whole tumour WT = {1,2,3}, tumour core TC = {2,3}, enhancing tumour ET = {3}.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch

from brats3d.errors import BratsInputError

BACKGROUND, EDEMA, NON_ENHANCING, ENHANCING = 0, 1, 2, 3
CLASS_NAMES: tuple[str, ...] = ("edema", "non_enhancing", "enhancing")
REGION_NAMES: tuple[str, ...] = ("whole_tumour", "tumour_core", "enhancing_tumour")
REGION_SHORT: dict[str, str] = {"whole_tumour": "WT", "tumour_core": "TC", "enhancing_tumour": "ET"}
# Canonical labels that make up each region, in REGION_NAMES order (nested: ET ⊂ TC ⊂ WT).
REGION_LABELS: tuple[tuple[int, ...], ...] = (
    (EDEMA, NON_ENHANCING, ENHANCING),
    (NON_ENHANCING, ENHANCING),
    (ENHANCING,),
)


class Layout(str, Enum):
    """A dataset kind: it fixes how files are named and arranged (``data/layouts.py``) and how labels are numbered
    on disk (the tables below), so one enum names both; ``LabelConvention`` is the same enum, read as a numbering."""

    MSD = "msd"  # Decathlon Task01: 1 edema, 2 non-enhancing, 3 enhancing
    BRATS2021 = "brats2021"  # BraTS 2018-2021: 1 necrotic/non-enhancing core, 2 edema, 4 enhancing
    BRATS2023 = "brats2023"  # BraTS 2023+: 1 non-enhancing core, 2 edema, 3 enhancing

    @property
    def convention(self) -> Layout:
        """The label numbering of this layout (the layout itself, named as a convention)."""
        return self

    @property
    def description(self) -> str:
        return {
            Layout.MSD: "Medical Segmentation Decathlon Task01 (4D NIfTI, labels 1 ED / 2 NET / 3 ET)",
            Layout.BRATS2021: "BraTS 2018-2021 (one file per modality, labels 1 NCR / 2 ED / 4 ET)",
            Layout.BRATS2023: "BraTS 2023+ (one file per modality, labels 1 NCR / 2 ED / 3 ET)",
        }[self]


LabelConvention = Layout  # how a dataset numbers its labels on disk: named by its layout


@dataclass(frozen=True)
class _Table:
    to_canonical: dict[int, int]

    @property
    def from_canonical(self) -> dict[int, int]:
        return {c: d for d, c in self.to_canonical.items()}


_TABLES: dict[LabelConvention, _Table] = {
    LabelConvention.MSD: _Table({0: 0, 1: EDEMA, 2: NON_ENHANCING, 3: ENHANCING}),
    LabelConvention.BRATS2021: _Table({0: 0, 1: NON_ENHANCING, 2: EDEMA, 4: ENHANCING}),
    LabelConvention.BRATS2023: _Table({0: 0, 1: NON_ENHANCING, 2: EDEMA, 3: ENHANCING}),
}


def allowed_values(convention: LabelConvention | str) -> tuple[int, ...]:
    """Label values a file in this convention may contain."""
    return tuple(sorted(_TABLES[LabelConvention(convention)].to_canonical))


def _lookup(mapping: dict[int, int]) -> np.ndarray:
    lut = np.full(max(mapping) + 1, 255, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut


def check_label_values(values: np.ndarray, convention: LabelConvention | str, path: object = None) -> None:
    """Raise a BratsInputError naming the values that the convention does not define."""
    convention = LabelConvention(convention)
    bad = sorted(set(np.unique(values).tolist()) - set(allowed_values(convention)))
    if bad:
        raise BratsInputError(
            path,
            f"label values {bad} are not part of the {convention.value} convention "
            f"(allowed: {list(allowed_values(convention))})",
        )


def to_canonical(label: np.ndarray, convention: LabelConvention | str, path: object = None) -> np.ndarray:
    """Dataset labels -> canonical uint8 labels; unknown values are an error, never silently dropped."""
    convention = LabelConvention(convention)
    arr = np.asarray(label)
    if np.issubdtype(arr.dtype, np.floating) and (not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr))):
        raise BratsInputError(path, "label map holds non-integer or non-finite values")
    ints = arr.astype(np.int64, copy=False)
    lut = _lookup(_TABLES[convention].to_canonical)
    if ints.size and (ints.min() < 0 or ints.max() >= lut.size):
        check_label_values(ints, convention, path)
    out = lut[ints]
    if np.any(out == 255):
        check_label_values(ints, convention, path)
    return out


def from_canonical(label: np.ndarray, convention: LabelConvention | str) -> np.ndarray:
    """Canonical labels -> the dataset's numbering (uint8), e.g. enhancing back to 4 for BraTS 2018-2021."""
    convention = LabelConvention(convention)
    arr = np.asarray(label).astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() > ENHANCING):
        raise ValueError(f"canonical labels must lie in 0..{ENHANCING}, got {np.unique(arr).tolist()}")
    return _lookup(_TABLES[convention].from_canonical)[arr]


def labels_to_regions(label: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Canonical labels (..., X, Y, Z) -> binary regions WT/TC/ET stacked on a new leading channel axis."""
    if isinstance(label, torch.Tensor):
        return torch.stack([label >= EDEMA, label >= NON_ENHANCING, label == ENHANCING]).to(torch.float32)
    label = np.asarray(label)
    return np.stack([label >= EDEMA, label >= NON_ENHANCING, label == ENHANCING]).astype(np.float32)


def regions_to_labels(regions: np.ndarray | torch.Tensor) -> np.ndarray:
    """Binary WT/TC/ET channels -> canonical labels, enforcing ET ⊂ TC ⊂ WT.

    ET counts only inside TC and TC only inside WT, so a voxel is enhancing only when all three agree;
    a TC voxel outside WT is dropped rather than promoting WT.
    """
    if isinstance(regions, torch.Tensor):
        regions = regions.detach().cpu().numpy()
    wt, tc, et = (np.asarray(regions[i]).astype(bool) for i in range(3))
    tc &= wt
    et &= tc
    out = np.zeros(wt.shape, dtype=np.uint8)
    out[wt] = EDEMA
    out[tc] = NON_ENHANCING
    out[et] = ENHANCING
    return out


def classes_to_labels(scores: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per-class scores (4, X, Y, Z: background + 3 classes) -> canonical labels by argmax."""
    if isinstance(scores, torch.Tensor):
        return scores.argmax(0).to(torch.uint8).cpu().numpy()
    return np.asarray(scores).argmax(0).astype(np.uint8)
