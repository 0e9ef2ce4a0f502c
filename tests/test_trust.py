"""What people do every day with shared checkpoints, half-downloaded datasets and shared folders: each row of the
trust issue reproduced, now handled (one line, exit 2, nothing run, nothing half-written)."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats3d.cli import main
from brats3d.config import load_config
from brats3d.data.io import MAX_VOXELS, load_header
from brats3d.data.layouts import discover
from brats3d.files import atomic_path


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def evil(tmp_path) -> tuple[Path, Path]:
    """A pickle whose loading runs a shell command that creates ``marker``."""
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "brats3d-checkpoint-v2", "payload": _RunsCode(marker)}, path)
    return path, marker


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_malicious_checkpoint_runs_nothing_in_predict_evaluate_or_resume(evil, make_dataset, tmp_path, capsys):
    path, marker = evil
    data = make_dataset("brats2021", cases=1)
    case = next(data.iterdir())
    assert main(["predict", str(case), "--checkpoint", str(path), "--out", str(tmp_path / "p")]) == 2
    assert main(["evaluate", "--checkpoint", str(path), "--data", str(data), "--out", str(tmp_path / "e")]) == 2
    run = tmp_path / "run"
    run.mkdir()
    load_config("demo").save(run / "config.yaml")
    shutil.copy(path, run / "last.pt")
    assert main(["train", "--resume", str(run), "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert err.count("refused: the file asks to run or build Python object") == 3
    assert not marker.exists()


def test_a_bare_pickle_or_truncated_checkpoint_is_refused_unread(evil, make_dataset, tmp_path, capsys):
    import pickle

    path, marker = evil
    bare = tmp_path / "bare.pt"  # what pickle.dump or torch.save(..., _use_new_zipfile_serialization=False) writes
    bare.write_bytes(pickle.dumps(_RunsCode(marker)))
    half = tmp_path / "half.pt"
    shutil.copy(path, half)
    _truncate(half)
    case = next(make_dataset("brats2021", cases=1).iterdir())
    for bad in (bare, half):
        assert main(["predict", str(case), "--checkpoint", str(bad), "--out", str(tmp_path / "p")]) == 2
        err = capsys.readouterr().err.strip()
        assert (
            err == f"brats3d predict: error: {bad}: not a readable checkpoint (not a PyTorch zip archive: "
            "truncated, or a bare or legacy pickle, which brats3d does not unpickle)"
        )
    assert not marker.exists() and not (tmp_path / "p").exists()


def test_inspect_finds_a_truncated_file_without_reading_voxels(make_dataset, capsys):
    root = make_dataset("brats2021", cases=4, shape=(32, 32, 16))
    t1ce = sorted(root.glob("*/*_t1ce.nii.gz"))[2]
    _truncate(t1ce)
    assert main(["inspect", str(root)]) == 1
    out = capsys.readouterr().out
    assert "problems: 1" in out and f"{t1ce}: file is truncated" in out


def test_training_on_a_dataset_with_bad_cases_lists_them_all_and_writes_no_run(make_dataset, tmp_path, capsys):
    root = make_dataset("brats2021", cases=4, shape=(32, 32, 16))
    bad = [sorted(root.glob("*/*_t1ce.nii.gz"))[1], sorted(root.glob("*/*_flair.nii.gz"))[3]]
    for path in bad:
        _truncate(path)
    run = tmp_path / "run"
    assert main(["train", "--config", "demo", "--data", str(root), "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "2 bad case(s)" in err
    assert all(str(path) in err for path in bad)
    assert not run.exists()


def test_a_bad_voxel_found_while_caching_is_one_line(make_dataset, tmp_path, capsys):
    root = make_dataset("brats2021", cases=3, shape=(32, 32, 16))
    label = sorted(root.glob("*/*_seg.nii.gz"))[1]
    img = nib.load(str(label))
    data = np.asanyarray(img.dataobj).copy()
    data[0, 0, 0] = 7  # not a BraTS label
    nib.save(nib.Nifti1Image(data, img.affine, img.header), str(label))
    assert main(["train", "--config", "demo", "--data", str(root), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{label}: label values [7]" in err


@pytest.mark.parametrize("where", ["under_a_file", "under_proc"])
def test_an_output_folder_that_cannot_be_made_is_one_line_before_any_work(
    where, checkpoint, make_dataset, tmp_path, capsys
):
    case = next(make_dataset("brats2021", cases=1).iterdir())
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "sub" if where == "under_a_file" else Path("/proc/brats3d-test/sub")
    assert main(["predict", str(case), "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot" in err and str(out) in err


def test_outputs_follow_the_users_umask(checkpoint, make_dataset, tmp_path):
    case = next(make_dataset("brats2021", cases=1).iterdir())
    old = os.umask(0o022)
    try:
        assert main(["predict", str(case), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "p")]) == 0
    finally:
        os.umask(old)
    written = list((tmp_path / "p").iterdir())
    assert {p.suffix for p in written} >= {".gz", ".gif", ".png"}
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path


def test_a_killed_writers_temporary_file_is_removed_by_the_next_run(tmp_path):
    target = tmp_path / "case_axial.gif"
    stale = tmp_path / ".case_axial.gif.999999999.abc123.tmp.gif"  # no such process
    stale.write_bytes(b"half a gif")
    live = tmp_path / f".case_axial.gif.{os.getppid()}.def456.tmp.gif"  # a writer still at work
    live.write_bytes(b"in progress")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"GIF89a")
    assert target.read_bytes() == b"GIF89a"
    assert not stale.exists() and live.exists()


def test_symbolic_links_to_case_folders_and_files_are_followed(make_dataset, tmp_path):
    source = make_dataset("brats2021", cases=2, shape=(24, 24, 16))
    linked = tmp_path / "linked"
    linked.mkdir()
    first, second = sorted(source.iterdir())
    (linked / first.name).symlink_to(first, target_is_directory=True)
    (linked / second.name).mkdir()
    for f in second.iterdir():
        (linked / second.name / f.name).symlink_to(f)
    (linked / "loop").symlink_to(linked, target_is_directory=True)  # a loop must not hang discovery
    index = discover(linked)
    assert [c.case_id for c in index.cases] == [first.name, second.name] and not index.problems


def test_predict_works_as_typed_after_train(checkpoint, make_dataset, tmp_path, monkeypatch, capsys):
    scan = next(make_dataset("msd", cases=1).glob("imagesTr/*.nii.gz"))
    monkeypatch.chdir(tmp_path)
    assert main(["predict", str(scan)]) == 2
    assert "runs/latest/best.pt: no checkpoint here: train one" in capsys.readouterr().err
    (tmp_path / "runs" / "latest").mkdir(parents=True)
    shutil.copy(checkpoint, tmp_path / "runs" / "latest" / "best.pt")
    assert main(["predict", str(scan)]) == 0
    assert (tmp_path / "predictions" / f"{scan.name.split('.')[0]}_seg.nii.gz").is_file()


def test_train_works_as_typed_with_the_packaged_default(make_dataset, tmp_path, monkeypatch, capsys):
    root = make_dataset("brats2021", cases=2, shape=(48, 48, 24))
    monkeypatch.chdir(tmp_path)
    args = ["train", "--data", str(root), "--set", "train.epochs=1", "--set", "train.steps_per_epoch=1"]
    assert main(args) == 0
    saved = load_config(tmp_path / "runs" / "latest" / "config.yaml")
    assert saved.model.network == "unet3d" and saved.data.patch_size == [160, 160, 16]
    assert (tmp_path / "runs" / "latest" / "best.pt").is_file()
    assert load_config("configs/unet3d.yaml") == load_config("unet3d") == saved.__class__(**vars(load_config("unet3d")))


def test_every_config_ships_inside_the_package_once():
    from brats3d.config import PACKAGED_CONFIGS, packaged_configs

    assert set(packaged_configs()) >= {"demo", "unet3d", "vnet", "gpu_full_data"}
    assert not any(p.is_symlink() for p in PACKAGED_CONFIGS.iterdir())
    assert not (Path(__file__).resolve().parents[1] / "configs").exists()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"brats3d" = ["configs/*.yaml"]' in pyproject


def test_an_absurd_header_is_refused_before_any_allocation(tmp_path):
    path = tmp_path / "huge.nii.gz"
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    img.header.set_data_shape((4000, 4000, 4000))  # 64 G voxels promised by a 100-byte file
    with gzip.open(path, "wb") as fh:
        fh.write(img.header.binaryblock + b"\0" * 4)
    with pytest.raises(Exception, match=rf"4000x4000x4000 = 64000 M voxels, over the {MAX_VOXELS // 10**6} M"):
        load_header(path)


def test_predict_over_a_folder_goes_on_past_a_bad_case(checkpoint, make_dataset, tmp_path, capsys):
    root = make_dataset("brats2021", cases=3, shape=(40, 40, 24))
    bad = sorted(root.glob("*/*_t2.nii.gz"))[1]
    _truncate(bad)
    out = tmp_path / "p"
    assert main(["predict", str(root), "--checkpoint", str(checkpoint), "--out", str(out), "--no-pictures"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: file is truncated" in err and "1 of 3 cases failed (listed above); the others are done" in err
    assert len(list(out.glob("*_seg.nii.gz"))) == 2 and not list(out.glob(".*"))


def test_a_failed_single_case_predict_leaves_no_output_folder(checkpoint, make_dataset, tmp_path, capsys):
    root = make_dataset("brats2021", cases=1, shape=(40, 40, 24))
    case = next(root.iterdir())
    _truncate(next(case.glob("*_t1.nii.gz")))
    out = tmp_path / "new" / "predictions"
    assert main(["predict", str(case), "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    bad = next(case.glob("*_t1.nii.gz"))
    (line,) = captured.err.splitlines()  # one line: the file and what is wrong
    assert line.startswith(f"brats3d predict: error: {bad}: file is truncated")
    assert "wrote" not in captured.out  # no claim about a folder that is not there
    assert not (tmp_path / "new").exists()


def test_evaluate_over_a_folder_scores_the_good_cases_and_lists_the_bad(make_dataset, tmp_path, capsys):
    ref = make_dataset("brats2021", cases=3, shape=(32, 32, 16))
    pred = tmp_path / "pred"
    pred.mkdir()
    for seg in sorted(ref.glob("*/*_seg.nii.gz")):
        shutil.copy(seg, pred / seg.name)
    bad = sorted(pred.iterdir())[1]
    _truncate(bad)
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(pred), "--ref", str(ref), "--out", str(out), "--no-hd95"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: file is truncated" in err and "1 of 3 cases failed (listed above); the others are done" in err
    rows = (out / "per_case.csv").read_text().splitlines()
    assert len({row.split(",")[0] for row in rows[1:]}) == 2 and bad.name.split("_seg")[0] not in "".join(rows)
