import shutil

import pytest

from brats3d.data.layouts import MODALITIES, Layout, detect_layout, discover, parse_modality_file, site_of
from brats3d.errors import BratsInputError


@pytest.mark.parametrize("layout", ["msd", "brats2021", "brats2023"])
def test_every_layout_is_detected_and_listed(make_dataset, layout):
    root = make_dataset(layout, cases=3)
    index = discover(root)
    assert index.layout is Layout(layout)
    assert len(index.cases) == 3 and not index.problems
    for case in index.cases:
        assert case.label is not None
        expected_images = 1 if layout == "msd" else len(MODALITIES)
        assert len(case.images) == expected_images
        for path in (*case.images, case.label):
            assert case.case_id in path.name


def test_brats2021_modalities_come_in_canonical_order(make_dataset):
    case = discover(make_dataset("brats2021", cases=1)).cases[0]
    assert [p.name.split("_")[-1] for p in case.images] == ["flair.nii.gz", "t1.nii.gz", "t1ce.nii.gz", "t2.nii.gz"]


def test_brats2023_modalities_come_in_canonical_order(make_dataset):
    case = discover(make_dataset("brats2023", cases=1)).cases[0]
    assert [p.name.split("-")[-1] for p in case.images] == ["t2f.nii.gz", "t1n.nii.gz", "t1c.nii.gz", "t2w.nii.gz"]


def test_file_name_parsing_prefers_the_longest_ending():
    assert parse_modality_file("X_t1ce.nii.gz", Layout.BRATS2021) == ("X", "t1ce")
    assert parse_modality_file("X_t1.nii", Layout.BRATS2021) == ("X", "t1")
    assert parse_modality_file("BraTS-GLI-00001-000-t1c.nii.gz", Layout.BRATS2023) == ("BraTS-GLI-00001-000", "t1ce")
    assert parse_modality_file("notes.txt", Layout.BRATS2021) is None


def test_msd_pairs_by_case_id_not_by_sort_order(make_dataset):
    root = make_dataset("msd", cases=3)
    # Remove the first label and add a stray one: sort-order pairing would shift every case by one.
    (root / "labelsTr" / "BRATS_001.nii.gz").unlink()
    shutil.copy(root / "labelsTr" / "BRATS_002.nii.gz", root / "labelsTr" / "BRATS_099.nii.gz")
    index = discover(root)
    assert [(c.case_id, c.label.name) for c in index.cases] == [
        ("BRATS_002", "BRATS_002.nii.gz"),
        ("BRATS_003", "BRATS_003.nii.gz"),
    ]
    assert any("imagesTr/BRATS_001.nii.gz: unpaired image" in p for p in index.problems)
    assert any("BRATS_099.nii.gz: label without image" in p for p in index.problems)


def test_msd_test_images_have_no_label_and_macos_shadows_are_ignored(make_dataset):
    root = make_dataset("msd", cases=2)
    (root / "imagesTs").mkdir()
    shutil.copy(root / "imagesTr" / "BRATS_001.nii.gz", root / "imagesTs" / "BRATS_500.nii.gz")
    (root / "imagesTr" / "._BRATS_001.nii.gz").write_bytes(b"\x00\x05\x16\x07")
    index = discover(root)
    assert not index.problems
    assert [(c.case_id, c.label is None) for c in index.cases] == [
        ("BRATS_001", False),
        ("BRATS_002", False),
        ("BRATS_500", True),
    ]


def test_missing_modality_is_named(make_dataset):
    root = make_dataset("brats2021", cases=2)
    (root / "BraTS2021_00002" / "BraTS2021_00002_t1ce.nii.gz").unlink()
    index = discover(root)
    assert [c.case_id for c in index.cases] == ["BraTS2021_00001"]
    assert index.problems == ["case BraTS2021_00002: missing modality t1ce (expected BraTS2021_00002_t1ce.nii.gz)"]
    with pytest.raises(BratsInputError, match="missing modality t1ce"):
        index.require_clean()


def test_label_without_image_is_reported(make_dataset):
    root = make_dataset("brats2023", cases=1)
    lone = root / "BraTS-GLI-00077-000"
    lone.mkdir()
    shutil.copy(next(root.glob("*/*-seg.nii.gz")), lone / "BraTS-GLI-00077-000-seg.nii.gz")
    problems = discover(root).problems
    assert len(problems) == 1 and "BraTS-GLI-00077-000-seg.nii.gz: label without image" in problems[0]


def test_nested_folders_are_found(make_dataset):
    """BraTS 2018 shipped HGG/ and LGG/ subfolders."""
    root = make_dataset("brats2021", cases=2)
    (root / "HGG").mkdir()
    shutil.move(root / "BraTS2021_00001", root / "HGG" / "BraTS2021_00001")
    assert [c.case_id for c in discover(root).cases] == ["BraTS2021_00001", "BraTS2021_00002"]


def test_unrecognised_and_missing_directories(tmp_path):
    with pytest.raises(BratsInputError, match="does not exist"):
        detect_layout(tmp_path / "nope")
    (tmp_path / "scan.nii.gz").write_bytes(b"")
    with pytest.raises(BratsInputError, match="unrecognised layout"):
        detect_layout(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BratsInputError, match="no NIfTI"):
        detect_layout(empty)


@pytest.mark.parametrize(
    ("case_id", "site"),
    [
        ("Brats18_CBICA_ABM_1", "CBICA"),
        ("Brats18_TCIA01_201_1", "TCIA01"),
        ("Brats18_2013_11_1", "2013"),
        ("Brats19_TMC_30014_1", "TMC"),
        ("BraTS2021_00000", None),  # later releases number cases without naming the institution
        ("BRATS_001", None),
    ],
)
def test_site_of_reads_the_institution_from_brats_2017_2019_ids(case_id, site):
    assert site_of(case_id) == site
