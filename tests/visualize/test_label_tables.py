"""Viewer label tables: every label value of the written file is named, with the report's colours."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from brats3d.cli import main
from brats3d.data.labels import ENHANCING
from brats3d.visualize.label_tables import itksnap_text, label_entries, slicer_text
from brats3d.visualize.overlays import COLOURS


def parse_itksnap(text: str) -> dict[int, str]:
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {int(r.split()[0]): r.split('"')[1] for r in rows}


def parse_slicer(text: str) -> dict[int, tuple[str, tuple[int, ...]]]:
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert all(len(r) == 6 for r in rows)  # index name R G B A: a name with a space would break the format
    return {int(r[0]): (r[1], tuple(int(v) for v in r[2:])) for r in rows}


@pytest.mark.parametrize(
    ("convention", "values"), [("brats2021", {1, 2, 4}), ("brats2023", {1, 2, 3}), ("msd", {1, 2, 3})]
)
def test_tables_name_the_files_own_label_values(convention, values):
    assert set(parse_itksnap(itksnap_text(convention))) == {0, *values}
    slicer = parse_slicer(slicer_text(convention))
    assert set(slicer) == {0, *values}
    enhancing = {"brats2021": 4}.get(convention, 3)
    assert "enhancing" in slicer[enhancing][0].lower() and "non" not in slicer[enhancing][0].lower()
    assert slicer[enhancing][1] == (*COLOURS[ENHANCING], 255)


def test_label_entries_follow_the_convention():
    assert [v for v, _, _ in label_entries("brats2021")] == [1, 2, 4]
    assert "edema" in dict((v, n) for v, n, _ in label_entries("brats2021"))[2].lower()
    assert "edema" in dict((v, n) for v, n, _ in label_entries("msd"))[1].lower()


def test_predict_writes_both_tables_naming_every_value_in_the_label_map(checkpoint, make_dataset, tmp_path):
    case = next(make_dataset("brats2021", cases=1).iterdir())
    out = tmp_path / "p"
    assert main(["predict", str(case), "--checkpoint", str(checkpoint), "--out", str(out), "--no-pictures"]) == 0
    seg = out / f"{case.name}_seg.nii.gz"
    in_file = set(np.unique(np.asanyarray(nib.load(str(seg)).dataobj)).tolist())
    itksnap = parse_itksnap((out / f"{case.name}_seg.itksnap.txt").read_text())
    slicer = parse_slicer((out / f"{case.name}_seg.ctbl").read_text())
    assert in_file <= set(itksnap) and in_file <= set(slicer)
    assert set(itksnap) == set(slicer) == {0, 1, 2, 4}
