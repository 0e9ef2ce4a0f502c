import pytest

from brats3d.errors import BratsInputError
from brats3d.files import atomic_path


def test_output_appears_only_when_complete(tmp_path):
    target = tmp_path / "sub" / "result.nii.gz"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == target.parent
        tmp.write_bytes(b"half")
        raise RuntimeError("killed mid-write")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_existing_output_survives_a_failed_rewrite(tmp_path):
    target = tmp_path / "report.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new but broken")
        raise RuntimeError
    assert target.read_text() == "old"
    with atomic_path(target) as tmp:
        tmp.write_text("new")
    assert target.read_text() == "new"


def test_an_input_is_never_overwritten(tmp_path):
    scan = tmp_path / "scan.nii.gz"
    scan.write_bytes(b"precious")
    with pytest.raises(BratsInputError, match="refusing to overwrite an input"), atomic_path(scan, protect=[scan]):
        pass
    assert scan.read_bytes() == b"precious"
