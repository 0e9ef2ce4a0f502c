"""Label tables that make a predicted label map open with names and the report's colours in a viewer.

Two small text files sit next to each ``<case>_seg.nii.gz``: an ITK-SNAP label description file
(``<case>_seg.itksnap.txt``; ``itksnap -g scan.nii.gz -s <case>_seg.nii.gz -l <case>_seg.itksnap.txt``) and a
3D Slicer colour table (``<case>_seg.ctbl``; load it with the label map, then pick it as the map's lookup table).
Both list the file's own label values (1/2/4 for BraTS 2018-2021, 1/2/3 otherwise), never brats3d's internal ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brats3d.data.labels import EDEMA, ENHANCING, NON_ENHANCING, LabelConvention, from_canonical
from brats3d.files import atomic_path
from brats3d.visualize.overlays import COLOURS

LABEL_TITLES = {
    EDEMA: "Peritumoral edema (ED)",
    NON_ENHANCING: "Necrotic / non-enhancing tumour core (NCR/NET)",
    ENHANCING: "GD-enhancing tumour (ET)",
}
ITKSNAP_SUFFIX, SLICER_SUFFIX = ".itksnap.txt", ".ctbl"


def label_entries(convention: LabelConvention | str) -> list[tuple[int, str, tuple[int, int, int]]]:
    """(value in the file, name, RGB) for every tumour label of ``convention``, in file-value order."""
    entries = []
    for label, title in LABEL_TITLES.items():
        value = int(from_canonical(np.array([label]), convention)[0])
        entries.append((value, title, COLOURS[label]))
    return sorted(entries)


def itksnap_text(convention: LabelConvention | str) -> str:
    """ITK-SNAP label descriptions: IDX R G B A VIS MESH "NAME" per line, 0 being the clear label."""
    lines = [
        "# ITK-SNAP label descriptions written by brats3d",
        "# columns: value, red, green, blue (0-255), opacity (0-1), visible, in 3D mesh, name",
        '    0     0    0    0        0  0  0    "Clear Label"',
    ]
    for value, title, (r, g, b) in label_entries(convention):
        lines.append(f'{value:5d} {r:5d} {g:4d} {b:4d}        1  1  1    "{title}"')
    return "\n".join(lines) + "\n"


def slicer_text(convention: LabelConvention | str) -> str:
    """3D Slicer discrete colour table: index name R G B A (0-255), names without spaces."""
    entries = label_entries(convention)
    lines = ["# Color table file written by brats3d", f"# {len(entries) + 1} values", "0 Background 0 0 0 0"]
    for value, title, (r, g, b) in entries:
        name = "".join(c if c.isalnum() else "_" for c in title).strip("_")
        while "__" in name:
            name = name.replace("__", "_")
        lines.append(f"{value} {name} {r} {g} {b} 255")
    return "\n".join(lines) + "\n"


def write_label_tables(seg_path: str | Path, convention: LabelConvention | str) -> list[Path]:
    """Write both tables beside ``seg_path`` (a ``.nii.gz`` label map) and return their paths."""
    seg_path = Path(seg_path)
    stem = seg_path.name.removesuffix(".gz").removesuffix(".nii")
    written = []
    for suffix, text in ((ITKSNAP_SUFFIX, itksnap_text(convention)), (SLICER_SUFFIX, slicer_text(convention))):
        path = seg_path.with_name(stem + suffix)
        with atomic_path(path) as tmp:
            tmp.write_text(text)
        written.append(path)
    return written
