"""2D layouts: detection, patient grouping, reading, and one clear line per bad file."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest

from brats3d.data.slices import (
    SliceLayout,
    detect_slice_layout,
    discover_slices,
    inspect_slices,
    mask_values,
    read_image,
    read_mask,
)
from brats3d.data.synthetic_slices import write_lgg_dataset, write_paired_dataset
from brats3d.errors import BratsInputError


@pytest.fixture
def lgg(tmp_path):
    write_lgg_dataset(tmp_path / "lgg", patients=3, slices=5, size=(32, 32))
    return tmp_path / "lgg"


@pytest.fixture
def paired(tmp_path):
    write_paired_dataset(tmp_path / "paired", patients=3, slices=4, size=(32, 40), channels=1)
    return tmp_path / "paired"


def test_lgg_layout_groups_slices_by_patient_in_slice_order(lgg):
    index = discover_slices(lgg)
    assert index.layout is SliceLayout.LGG and not index.problems
    patients = index.patients()
    assert len(patients) == 3 and all(len(s) == 5 for s in patients.values())
    first = next(iter(patients.values()))
    assert [s.index for s in first] == [1, 2, 3, 4, 5]  # numeric order, not 1, 10, 2 ...
    assert all(s.mask.name == f"{s.image.stem}_mask.tif" for s in first)


def test_paired_layout_takes_patients_from_the_pattern(paired):
    assert detect_slice_layout(paired) is SliceLayout.PAIRED
    by_image = discover_slices(paired).patients()
    assert len(by_image) == 12  # without a pattern each image is its own patient
    by_patient = discover_slices(paired, patient_pattern=r"^(case\d+)_").patients()
    assert sorted(by_patient) == ["case001", "case002", "case003"]


def test_images_and_masks_read_as_channels_and_class_indices(lgg, paired):
    item = discover_slices(lgg).slices[0]
    image, mask = read_image(item.image), read_mask(item.mask)
    assert image.shape == (3, 32, 32) and image.dtype == np.float32
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 1}
    grey = discover_slices(paired).slices[0]
    assert read_image(grey.image).shape == (1, 32, 40)
    assert mask_values(discover_slices(lgg).labelled()) == [0, 255]


def test_multi_class_masks_map_values_to_classes(tmp_path):
    write_paired_dataset(tmp_path / "d", patients=2, slices=4, size=(32, 32), classes=3)
    slices = discover_slices(tmp_path / "d").labelled()
    values = mask_values(slices)
    assert values == [0, 1, 2]
    assert set(np.unique(np.concatenate([read_mask(s.mask, values).ravel() for s in slices]))) == {0, 1, 2}


def test_unpaired_files_are_named(lgg, paired):
    patient = next(p for p in lgg.iterdir() if p.is_dir())
    orphan = sorted(patient.glob("*_mask.tif"))[0]
    orphan.with_name(orphan.name.replace("_mask", "")).unlink()
    (paired / "masks" / "case001_00.png").unlink()
    problems = discover_slices(lgg).problems + discover_slices(paired).problems
    assert any(orphan.name in p and "without its image" in p for p in problems)
    assert any("case001_00.png" in p and "no mask" in p for p in problems)
    with pytest.raises(BratsInputError, match="case001_00"):
        discover_slices(paired).require_clean()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("values", "unexpected values 7"),
        ("size", "differs from its image"),
        ("junk", "unreadable image"),
    ],
)
def test_bad_masks_are_named_with_what_is_wrong(paired, damage, message):
    mask = paired / "masks" / "case002_01.png"
    if damage == "values":
        pixels = iio.imread(mask).copy()
        pixels[0, 0] = 7
        iio.imwrite(mask, pixels)
    elif damage == "size":
        iio.imwrite(mask, np.zeros((16, 16), np.uint8))
    else:
        mask.write_bytes(b"not a png")
    report = inspect_slices(paired, full=True)
    assert any("case002_01.png" in p and message in p for p in report.problems), report.problems
