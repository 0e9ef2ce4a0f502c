import pytest

from brats3d.errors import BratsInputError
from brats3d.files import atomic_path, ensure_output_dir, settle_outputs


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


def test_a_failed_command_leaves_no_empty_output_folder_but_keeps_what_was_there(tmp_path):
    kept = tmp_path / "existing"
    kept.mkdir()
    ensure_output_dir(kept)
    ensure_output_dir(tmp_path / "new" / "deep")
    ensure_output_dir(tmp_path / "written")
    (tmp_path / "written" / "seg.nii.gz").write_bytes(b"result")
    settle_outputs(failed=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "written"]


def test_a_successful_command_keeps_its_empty_output_folder(tmp_path):
    ensure_output_dir(tmp_path / "out")
    settle_outputs(failed=False)
    settle_outputs(failed=True)  # a later failure in the same process does not reach back
    assert (tmp_path / "out").is_dir()
