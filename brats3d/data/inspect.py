"""``brats3d inspect``: what a dataset directory holds and what is wrong with it, before any training."""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brats3d.data.io import check_same_grid, load_case, load_header, read_nifti
from brats3d.data.labels import check_label_values
from brats3d.data.layouts import MODALITIES, Case, DatasetIndex, Layout, discover
from brats3d.errors import BratsInputError


@dataclass
class CaseSummary:
    case_id: str
    shape: tuple[int, ...] | None = None
    spacing: tuple[float, ...] | None = None
    label_values: tuple[int, ...] = ()
    problem: str | None = None


@dataclass
class InspectReport:
    index: DatasetIndex
    cases: list[CaseSummary] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.index.problems + [c.problem for c in self.cases if c.problem]

    def label_values(self) -> list[int]:
        return sorted({v for c in self.cases for v in c.label_values})

    def format(self) -> str:
        idx = self.index
        labelled = len(idx.labelled())
        lines = [
            f"dataset:  {idx.root}",
            f"layout:   {idx.layout.value}: {idx.layout.description}",
            f"cases:    {len(idx.cases)} ({labelled} with labels, {len(idx.cases) - labelled} without)",
            f"channels: {', '.join(MODALITIES)}",
        ]
        for name, values in (("shapes", [c.shape for c in self.cases]), ("spacings", [c.spacing for c in self.cases])):
            counts = Counter(v for v in values if v is not None)
            text = ", ".join(f"{'x'.join(f'{x:g}' for x in k)} ({n})" for k, n in counts.most_common())
            lines.append(f"{name + ':':<9} {text or '-'}")
        lines.append(
            f"labels:   {{{', '.join(str(v) for v in self.label_values())}}} (on disk, {idx.layout.convention.value})"
        )
        problems = self.problems
        lines.append(f"problems: {len(problems)}")
        lines += [f"  - {p}" for p in problems]
        return "\n".join(lines)


def _summarise(case: Case, full: bool) -> CaseSummary:
    summary = CaseSummary(case.case_id)
    try:
        if full:
            loaded = load_case(case, with_label=False)
            summary.shape = loaded.image.shape[1:]
            summary.spacing = tuple(round(s, 3) for s in loaded.spacing)
            ref_affine = loaded.affine
        else:
            headers = [load_header(path) for path in case.images]
            shapes = [h.shape for h in headers]
            if case.layout is Layout.MSD:
                if len(shapes[0]) != 4 or shapes[0][-1] != len(MODALITIES):
                    raise BratsInputError(case.images[0], f"expected 4D with 4 channels, got shape {shapes[0]}")
                shape = shapes[0][:3]
            else:
                for path, s in zip(case.images, shapes):
                    if len([d for d in s if d != 1]) > 3 or len(s) < 3:
                        raise BratsInputError(path, f"must be a 3D volume, got shape {s}")
                shape = shapes[0][:3]
            for path, h in zip(case.images[1:], headers[1:]):
                check_same_grid(path, h.shape[:3], h.affine, case.images[0], shape, headers[0].affine)
            ref_affine = headers[0].affine
            summary.shape = tuple(int(s) for s in shape)
            summary.spacing = tuple(round(float(z), 3) for z in headers[0].header.get_zooms()[:3])
        if case.label is not None:
            vol = read_nifti(case.label)
            arr = np.squeeze(vol.array)
            check_same_grid(case.label, arr.shape, vol.affine, case.images[0], summary.shape, ref_affine)
            values = np.unique(arr)
            summary.label_values = tuple(int(v) for v in values)
            check_label_values(values, case.convention, case.label)
    except BratsInputError as exc:
        summary.problem = str(exc)
    return summary


def summarise_cases(cases: list[Case], full: bool = False) -> list[CaseSummary]:
    """Check cases in parallel threads: headers, file completeness and label maps; every voxel when ``full``."""
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        return list(pool.map(lambda c: _summarise(c, full), cases))


def require_good_cases(cases: list[Case], root: str | Path, full: bool = False) -> None:
    """Raise one BratsInputError that lists every bad case, so a user fixes them all at once."""
    problems = [s.problem for s in summarise_cases(cases, full) if s.problem]
    if problems:
        raise BratsInputError(
            root, f"{len(problems)} bad case(s), fix or remove them and run again: " + "; ".join(problems)
        )


def inspect_dataset(root: str | Path, layout: str | None = None, full: bool = False) -> InspectReport:
    """Index ``root`` and check every case: headers, completeness and label maps always, every voxel when ``full``."""
    index = discover(root, layout)
    return InspectReport(index, summarise_cases(index.cases, full))
