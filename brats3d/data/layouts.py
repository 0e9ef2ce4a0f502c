"""Recognise a dataset directory (Decathlon Task01, BraTS 2018-2021, BraTS 2023+) and list its cases.

Images and labels are always paired by case id parsed from the file name, never by sort order.
"""

from __future__ import annotations

import json
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from brats3d.data.labels import LabelConvention, Layout
from brats3d.errors import BratsInputError

# The one place that knows the modality order: channel c of every image tensor is MODALITIES[c].
# It equals the Decathlon's 4D channel order (FLAIR, T1w, T1gd, T2w).
MODALITIES: tuple[str, ...] = ("flair", "t1", "t1ce", "t2")
NIFTI_SUFFIXES = (".nii.gz", ".nii")


# File-name endings of each per-modality layout, keyed by canonical modality name (plus "seg").
FILE_ENDINGS: dict[Layout, dict[str, str]] = {
    Layout.BRATS2021: {"flair": "_flair", "t1": "_t1", "t1ce": "_t1ce", "t2": "_t2", "seg": "_seg"},
    Layout.BRATS2023: {"flair": "-t2f", "t1": "-t1n", "t1ce": "-t1c", "t2": "-t2w", "seg": "-seg"},
}


@dataclass(frozen=True)
class Case:
    """One subject: its image file(s) in canonical modality order and its label file, if any."""

    case_id: str
    layout: Layout
    images: tuple[Path, ...]  # one 4D file (MSD) or one file per modality in MODALITIES order
    label: Path | None = None

    @property
    def convention(self) -> LabelConvention:
        return self.layout.convention

    def to_dict(self) -> dict:
        """The dictionary a MONAI dataset carries for this case (input of ``LoadCased``)."""
        return {
            "case_id": self.case_id,
            "layout": self.layout.value,
            "image": [str(p) for p in self.images],
            "label": None if self.label is None else str(self.label),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Case:
        return cls(
            case_id=d["case_id"],
            layout=Layout(d["layout"]),
            images=tuple(Path(p) for p in d["image"]),
            label=None if d.get("label") is None else Path(d["label"]),
        )


@dataclass
class DatasetIndex:
    """What was found under a directory: complete cases and, by name, everything that is wrong."""

    root: Path
    layout: Layout
    cases: list[Case] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def labelled(self) -> list[Case]:
        return [c for c in self.cases if c.label is not None]

    def require_clean(self) -> DatasetIndex:
        """Raise if any problem was found: training on a silently partial dataset is worse than stopping."""
        if self.problems:
            more = (
                f" (and {len(self.problems) - 1} more; run `brats3d inspect {self.root}`)"
                if len(self.problems) > 1
                else ""
            )
            raise BratsInputError(self.root, self.problems[0] + more)
        if not self.cases:
            raise BratsInputError(self.root, "no complete cases found")
        return self

    def case(self, case_id: str) -> Case:
        for c in self.cases:
            if c.case_id == case_id:
                return c
        raise BratsInputError(self.root, f"no case with id {case_id!r}")


# BraTS 2017-2019 case ids name the contributing institution: Brats18_<site>_<number>_<n>, e.g. Brats18_CBICA_ABM_1,
# Brats18_TCIA01_201_1, Brats18_2013_11_1 (the 2013 challenge's cases). Later releases number cases without a site.
_SITE_ID = re.compile(r"^Brats\d{2}_(?P<site>[A-Za-z0-9]+)_[A-Za-z0-9]+_\d+$", re.IGNORECASE)


def site_of(case_id: str) -> str | None:
    """The institution a BraTS 2017-2019 case id names (``CBICA``, ``TCIA01``, ``2013``), else None."""
    match = _SITE_ID.match(case_id)
    return match["site"] if match else None


def strip_nifti_suffix(name: str) -> str | None:
    """File name without .nii/.nii.gz, or None when it is not a NIfTI file name."""
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _nifti_files(root: Path) -> list[Path]:
    """NIfTI files under ``root``, following symbolic links to folders and files (the usual way to assemble a
    dataset without copying it); a link that leads back into a folder already walked is not followed again.

    Names starting with "." are skipped: the Decathlon archive ships macOS "._BRATS_001.nii.gz" shadows.
    """
    found, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        stat = os.stat(folder)
        if (stat.st_dev, stat.st_ino) in seen:  # a link loop, or a folder reached twice
            subfolders.clear()
            continue
        seen.add((stat.st_dev, stat.st_ino))
        subfolders.sort()
        for name in names:
            path = Path(folder) / name
            if not name.startswith(".") and strip_nifti_suffix(name) and path.is_file():
                found.append(path)
    return sorted(found)


def parse_modality_file(name: str, layout: Layout) -> tuple[str, str] | None:
    """``(case_id, modality)`` for a per-modality file name, or None if it does not follow the layout."""
    stem = strip_nifti_suffix(name)
    if stem is None:
        return None
    # Longest ending first so that "_t1ce" is not read as "_t1" of a case named "..._t1c".
    for modality, ending in sorted(FILE_ENDINGS[layout].items(), key=lambda kv: -len(kv[1])):
        if stem.endswith(ending) and len(stem) > len(ending):
            return stem[: -len(ending)], modality
    return None


def detect_layout(root: str | Path) -> Layout:
    """Guess the layout of a dataset directory (or of a single case folder)."""
    root = Path(root)
    if not root.exists():
        raise BratsInputError(root, "directory does not exist")
    if not root.is_dir():
        raise BratsInputError(root, "expected a dataset directory, got a file")
    if (root / "dataset.json").is_file() or (root / "imagesTr").is_dir():
        return Layout.MSD
    files = _nifti_files(root)
    if not files:
        raise BratsInputError(root, "no NIfTI (.nii/.nii.gz) files found")
    votes = {
        layout: sum(parse_modality_file(p.name, layout) is not None for p in files)
        for layout in (Layout.BRATS2021, Layout.BRATS2023)
    }
    best = max(votes, key=votes.get)
    if votes[best] == 0:
        raise BratsInputError(
            root,
            "unrecognised layout: expected Decathlon imagesTr/labelsTr, BraTS 2018-2021 "
            "<id>_flair/_t1/_t1ce/_t2.nii.gz or BraTS 2023 <id>-t2f/-t1n/-t1c/-t2w.nii.gz",
        )
    return best


def discover(root: str | Path, layout: Layout | str | None = None) -> DatasetIndex:
    """List the cases under ``root``; problems are collected by name instead of raised one at a time."""
    root = Path(root)
    layout = detect_layout(root) if layout is None else Layout(layout)
    if layout is Layout.MSD:
        return _discover_msd(root)
    return _discover_per_modality(root, layout)


def _discover_per_modality(root: Path, layout: Layout) -> DatasetIndex:
    index = DatasetIndex(root=root, layout=layout)
    found: dict[str, dict[str, list[Path]]] = defaultdict(lambda: defaultdict(list))
    for path in _nifti_files(root):
        parsed = parse_modality_file(path.name, layout)
        if parsed is None:
            index.problems.append(f"{path}: file name does not follow the {layout.value} layout")
            continue
        case_id, modality = parsed
        found[case_id][modality].append(path)
    for case_id in sorted(found):
        files = found[case_id]
        duplicated = [m for m, paths in files.items() if len(paths) > 1]
        if duplicated:
            where = ", ".join(str(p) for m in duplicated for p in files[m])
            index.problems.append(f"case {case_id}: more than one file for {', '.join(duplicated)}: {where}")
            continue
        missing = [m for m in MODALITIES if m not in files]
        if missing:
            endings = FILE_ENDINGS[layout]
            present = next(iter(files.values()))[0]
            if missing == list(MODALITIES):
                index.problems.append(f"{present}: label without image (no modality files for case {case_id})")
            else:
                names = ", ".join(f"{case_id}{endings[m]}.nii.gz" for m in missing)
                index.problems.append(f"case {case_id}: missing modality {', '.join(missing)} (expected {names})")
            continue
        label = files["seg"][0] if "seg" in files else None
        index.cases.append(Case(case_id, layout, tuple(files[m][0] for m in MODALITIES), label))
    return index


def _check_msd_channels(root: Path, index: DatasetIndex) -> None:
    meta_path = root / "dataset.json"
    if not meta_path.is_file():
        return
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        index.problems.append(f"{meta_path}: not valid JSON ({exc})")
        return
    modality = meta.get("modality") or meta.get("channel_names")
    if isinstance(modality, dict):
        names = [str(modality[k]).lower() for k in sorted(modality, key=lambda k: int(k))]
        expected = ["flair", "t1w", "t1gd", "t2w"]
        if names and names != expected:
            index.problems.append(f"{meta_path}: channel order {names} differs from the Task01 order {expected}")


def _discover_msd(root: Path) -> DatasetIndex:
    index = DatasetIndex(root=root, layout=Layout.MSD)
    _check_msd_channels(root, index)

    def by_id(folder: Path) -> dict[str, Path]:
        if not folder.is_dir():
            return {}
        return {
            strip_nifti_suffix(p.name): p
            for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and strip_nifti_suffix(p.name)
        }

    images_tr, labels_tr, images_ts = by_id(root / "imagesTr"), by_id(root / "labelsTr"), by_id(root / "imagesTs")
    if not images_tr and not images_ts:
        index.problems.append(f"{root}: Decathlon layout without images in imagesTr/ or imagesTs/")
    for case_id, path in images_tr.items():
        if case_id not in labels_tr:
            index.problems.append(f"{path}: unpaired image, no labelsTr/{path.name}")
            continue
        index.cases.append(Case(case_id, Layout.MSD, (path,), labels_tr[case_id]))
    for case_id, path in labels_tr.items():
        if case_id not in images_tr:
            index.problems.append(f"{path}: label without image (no imagesTr/{path.name})")
    for case_id, path in images_ts.items():
        index.cases.append(Case(case_id, Layout.MSD, (path,), None))
    return index
