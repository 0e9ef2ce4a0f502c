import subprocess
import sys

import pytest

from brats3d.cli import main


def test_help_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("inspect", "synth"):
        assert command in out


@pytest.mark.parametrize("layout", ["msd", "brats2021", "brats2023"])
def test_synth_then_inspect(tmp_path, capsys, layout):
    out = tmp_path / "data"
    assert main(["synth", str(out), "--cases", "2", "--layout", layout, "--shape", "40x40x24"]) == 0
    assert main(["inspect", str(out), "--full"]) == 0
    text = capsys.readouterr().out
    assert f"layout:   {layout}" in text
    assert "cases:    2 (2 with labels, 0 without)" in text
    assert "shapes:   40x40x24 (2)" in text
    expected = "{0, 1, 2, 4}" if layout == "brats2021" else "{0, 1, 2, 3}"
    assert f"labels:   {expected}" in text
    assert "problems: 0" in text


def test_synth_refuses_a_non_empty_directory(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["synth", str(tmp_path), "--cases", "1", "--shape", "24x24x16"]) == 2
    assert "output directory is not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_inspect_reports_problems_by_name_and_exits_non_zero(make_dataset, capsys):
    root = make_dataset("brats2021", cases=2)
    (root / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz").unlink()
    assert main(["inspect", str(root)]) == 1
    out = capsys.readouterr().out
    assert "cases:    1" in out
    assert "case BraTS2021_00001: missing modality t2" in out


def test_bad_input_is_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "brats3d.cli", "inspect", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "missing: directory does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "brats3d.cli", "--debug", "inspect", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_the_enhancing_contrast_option_takes_a_z_score_or_off(capsys):
    from brats3d.cli import _predict_options, build_parser

    parser = build_parser()
    assert (
        _predict_options(parser.parse_args(["predict", "x.nii.gz", "--enhancing-contrast", "0.5"])).enhancing_contrast
        == 0.5
    )
    assert (
        _predict_options(parser.parse_args(["predict", "x.nii.gz", "--enhancing-contrast", "OFF"])).enhancing_contrast
        == "off"
    )
    assert (
        _predict_options(parser.parse_args(["evaluate", "--checkpoint", "a.pt", "--data", "d"])).enhancing_contrast
        is None
    )
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["predict", "x.nii.gz", "--enhancing-contrast", "bright"])
    assert exit_info.value.code == 2
    assert "expected a z-score or 'off', got 'bright'" in capsys.readouterr().err
