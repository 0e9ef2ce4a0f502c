import csv
import json
import shutil

import nibabel as nib
import numpy as np
import pytest

from brats3d.cli import main
from brats3d.data.labels import from_canonical, to_canonical
from brats3d.errors import BratsInputError
from brats3d.evaluation.evaluate import evaluate_folder


def _copy_labels_as_predictions(ref_root, pred_dir, convert_to=None):
    pred_dir.mkdir()
    for seg in ref_root.glob("*/*_seg.nii.gz"):
        img = nib.load(str(seg))
        data = np.asanyarray(img.dataobj)
        if convert_to:
            data = from_canonical(to_canonical(data, "brats2021"), convert_to)
        nib.save(nib.Nifti1Image(data, img.affine), str(pred_dir / seg.name))


def test_reference_against_itself_scores_perfectly(make_dataset, tmp_path):
    ref = make_dataset("brats2021", cases=2)
    _copy_labels_as_predictions(ref, tmp_path / "pred")
    evaluation = evaluate_folder(tmp_path / "pred", ref)
    for case in evaluation.cases:
        for structure, values in case.scores.items():
            assert values["dice"] == 1.0 and values["hd95"] == 0.0, structure
            assert values["sensitivity"] == 1.0 and values["specificity"] == 1.0


def test_brats2018_reference_against_decathlon_numbered_prediction_scores_dice_1(make_dataset, tmp_path):
    ref = make_dataset("brats2021", cases=1)
    _copy_labels_as_predictions(ref, tmp_path / "pred", convert_to="msd")
    evaluation = evaluate_folder(tmp_path / "pred", ref, pred_convention="msd")
    assert all(v["dice"] == 1.0 for v in evaluation.cases[0].scores.values())
    # read with the reference's numbering, the Decathlon's enhancing label 3 does not exist: a clear error
    with pytest.raises(BratsInputError, match=r"label values \[3\] are not part of the brats2021 convention"):
        evaluate_folder(tmp_path / "pred", ref)


def test_missing_or_stray_predictions_are_named(make_dataset, tmp_path):
    ref = make_dataset("brats2021", cases=2)
    _copy_labels_as_predictions(ref, tmp_path / "pred")
    (tmp_path / "pred" / "BraTS2021_00002_seg.nii.gz").unlink()
    with pytest.raises(BratsInputError, match=r"no prediction for case.*BraTS2021_00002"):
        evaluate_folder(tmp_path / "pred", ref)
    shutil.copy(tmp_path / "pred" / "BraTS2021_00001_seg.nii.gz", tmp_path / "pred" / "BraTS2021_00002_seg.nii.gz")
    shutil.copy(tmp_path / "pred" / "BraTS2021_00001_seg.nii.gz", tmp_path / "pred" / "Other_seg.nii.gz")
    with pytest.raises(BratsInputError, match=r"Other_seg.nii.gz: prediction without a reference"):
        evaluate_folder(tmp_path / "pred", ref)


def test_prediction_on_another_grid_is_refused(make_dataset, tmp_path):
    ref = make_dataset("brats2021", cases=1)
    _copy_labels_as_predictions(ref, tmp_path / "pred")
    path = next((tmp_path / "pred").iterdir())
    img = nib.load(str(path))
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj)[:-1], img.affine), str(path))
    with pytest.raises(BratsInputError, match="grid mismatch: shape"):
        evaluate_folder(tmp_path / "pred", ref)


def test_cli_writes_tables_and_report(make_dataset, tmp_path, capsys):
    ref = make_dataset("brats2021", cases=2)
    _copy_labels_as_predictions(ref, tmp_path / "pred")
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--ref", str(ref), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "WT (whole tumour)" in printed and "1.000 ± 0.000" in printed
    names = {p.name for p in out.iterdir()}
    assert {"per_case.csv", "summary.json", "report.md", "report.html", "dice_per_case.png"} <= names
    assert any(n.startswith("worst_") for n in names) and any(n.startswith("best_") for n in names)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["whole_scan"]["enhancing_tumour"]["dice"]["mean"] == 1.0
    assert summary["cases"] == 2
    rows = (out / "per_case.csv").read_text().splitlines()
    assert rows[0] == (
        "case,structure,dice,sensitivity,specificity,hd95,pred_volume_ml,ref_volume_ml,"
        "lesion_dice,lesion_hd95,lesions,false_positives,missed_lesions"
    )
    assert len(rows) == 1 + 2 * 6
    whole_tumour = next(r.split(",") for r in rows if ",whole_tumour," in r)
    assert whole_tumour[8:10] == ["1", "0"]  # a perfect prediction is perfect lesion-wise too
    edema = next(r.split(",") for r in rows if ",edema," in r)
    assert edema[8:] == [""] * 5  # lesion-wise scores exist for the regions only
    assert summary["whole_scan"]["whole_tumour"]["lesion_dice"]["mean"] == 1.0
    assert "Lesion-wise scores (BraTS 2023)" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert "<table>" in html and 'src="dice_per_case.png"' in html


def test_evaluate_a_checkpoint_with_patch_scores(make_dataset, checkpoint, tmp_path):
    ckpt = checkpoint
    data = make_dataset("msd", cases=1, shape=(40, 40, 24))
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(ckpt),
                "--data",
                str(data),
                "--out",
                str(out),
                "--patches",
                "2",
                "--overlap",
                "0.25",
                "--tta",
                "--min-component",
                "7",
            ]
        )
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["patches"]) == set(summary["whole_scan"])
    assert (out / "predictions" / "BRATS_001_seg.nii.gz").is_file()
    report = (out / "report.md").read_text()
    assert "Patches vs whole scans" in report
    # the numbers depend on how the scans were predicted: the summary and the report say it
    inference = summary["inference"]
    assert inference["checkpoints"] == [str(ckpt)] and inference["overlap"] == 0.25 and inference["tta"] is True
    assert inference["postprocessing"]["min_component"] == 7 and inference["flip_axes"] == [0, 1, 2]
    assert "flip TTA on," in report and "under 7 voxels removed" in report


def test_no_hd95_applies_when_evaluating_a_checkpoint(make_dataset, checkpoint, tmp_path):
    data = make_dataset("msd", cases=1, shape=(40, 40, 24))
    out = tmp_path / "eval"
    args = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--out", str(out), "--no-hd95"]
    assert main(args) == 0
    with open(out / "per_case.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(row["hd95"] in ("", "nan") for row in rows)
