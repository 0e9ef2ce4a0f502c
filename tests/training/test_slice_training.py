"""2D training end to end on tiny phantoms: it learns, splits by patient, resumes exactly, and the same CLI runs
inspect -> train -> predict -> evaluate on both 2D layouts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brats3d.cli import main
from brats3d.config import load_config
from brats3d.data.slices import discover_slices
from brats3d.data.synthetic_slices import write_lgg_dataset, write_paired_dataset
from brats3d.models.checkpoint import load_checkpoint
from brats3d.training.trainer import train

TINY = [
    "data.image_size=[32,32]",
    "data.num_workers=0",
    "model.kwargs={channels: [8, 16, 32, 64, 128]}",
    "train.batch_size=8",
    "train.lr=0.003",
    "train.steps_per_epoch=8",
]


@pytest.fixture(scope="module")
def lgg(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lgg") / "data"
    write_lgg_dataset(root, patients=5, slices=8, size=(32, 32), seed=3)
    return root


@pytest.fixture(scope="module")
def trained(lgg, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("run") / "run"
    config = load_config("lgg2d", [*TINY, "train.epochs=8", "data.val_cases=[TCGA_SY_0005_20260101]"])
    train(config, run, data_dir=lgg, log=lambda _: None)
    return run


def test_training_learns_the_lesion_and_splits_by_patient(trained, lgg):
    split = json.loads((trained / "split.json").read_text())
    assert split["validation"] == ["TCGA_SY_0005_20260101"] and "TCGA_SY_0005_20260101" not in split["train"]
    with open(trained / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8 and float(rows[-1]["mean_dice"]) > 0.7  # per-patient DSC on the held-out patient
    payload = load_checkpoint(trained / "best.pt")
    assert payload["kind"] == "slices2d" and payload["class_values"] == [0, 255] and payload["in_channels"] == 3
    stats = payload["config"]["data"]
    assert len(stats["channel_mean"]) == 3 and all(s > 0 for s in stats["channel_std"])


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_continues_exactly(lgg, tmp_path, ema):
    """Also with weight averaging, whose average includes the batch-norm statistics of the 2D networks."""
    constant = [*TINY, "train.scheduler=none", "train.warmup_epochs=0", "data.val_fraction=0.2"]
    constant.append(f"train.ema_decay={ema}")
    train(load_config("lgg2d", [*constant, "train.epochs=2"]), tmp_path / "whole", data_dir=lgg, log=lambda _: None)
    train(load_config("lgg2d", [*constant, "train.epochs=1"]), tmp_path / "split", data_dir=lgg, log=lambda _: None)
    train(run_dir=tmp_path / "split", resume=True, overrides=["train.epochs=2"], log=lambda _: None)
    whole, resumed = (load_checkpoint(tmp_path / r / "last.pt") for r in ("whole", "split"))
    for weights in ("model", *(["train_model"] if ema else [])):
        assert all(torch.equal(whole[weights][k], resumed[weights][k]) for k in whole[weights]), weights


def test_predict_writes_masks_of_the_input_size_and_type_with_pictures(trained, lgg, tmp_path):
    patient = lgg / "TCGA_SY_0005_20260101"
    big = tmp_path / "big.png"
    Image.open(patient / "TCGA_SY_0005_20260101_4.tif").resize((50, 41)).save(big)
    assert (
        main(
            ["predict", str(patient), str(big), "--checkpoint", str(trained / "best.pt"), "--out", str(tmp_path / "p")]
        )
        == 0
    )
    masks = sorted((tmp_path / "p" / "TCGA_SY_0005_20260101").glob("*_mask.tif"))
    assert len(masks) == 8
    mask = np.asarray(Image.open(masks[0]))  # an ordinary image reader opens it
    assert mask.shape == (32, 32) and set(np.unique(mask)) <= {0, 255}
    other = np.asarray(Image.open(tmp_path / "p" / "big_mask.png"))
    assert other.shape == (41, 50)  # the input's own size, not the network's
    assert (tmp_path / "p" / "TCGA_SY_0005_20260101" / "TCGA_SY_0005_20260101.gif").is_file()
    assert (tmp_path / "p" / "TCGA_SY_0005_20260101" / "TCGA_SY_0005_20260101_4_overlay.png").is_file()


def test_evaluate_scores_per_image_and_per_patient_with_a_report(trained, lgg, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["evaluate", "--checkpoint", str(trained / "best.pt"), "--data", str(lgg), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["foreground_dsc_per_patient"]["n"] == 5 and summary["foreground_dsc_per_image"]["n"] == 40
    for name in ("per_image.csv", "per_patient.csv", "report.md", "report.html", "dsc.png"):
        assert (out / name).is_file()
    assert list(out.glob("worst_*.png")) and list(out.glob("best_*.png"))
    assert "foreground_dsc_per_patient" in capsys.readouterr().out


def test_export_of_a_slice_model_is_a_one_line_refusal(trained, tmp_path, capsys):
    checkpoint = trained / "best.pt"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"brats3d export: error: {checkpoint}: a 2D slice model: export covers the 3D scan networks only (their "
        "inputs and outputs are what metadata.json and the MONAI bundle describe)"
    )
    assert not (tmp_path / "x").exists()


def test_paired_layout_end_to_end_on_the_cli(tmp_path, capsys):
    data = tmp_path / "us"
    write_paired_dataset(data, patients=4, slices=5, size=(32, 32), channels=1, seed=2)
    assert main(["inspect", str(data), "--patient-pattern", r"^(case\d+)_"]) == 0
    assert "patients: 4" in capsys.readouterr().out
    sets = [a for o in [*TINY, "train.epochs=2", r"data.patient_pattern=^(case\d+)_"] for a in ("--set", o)]
    run = tmp_path / "run"
    assert main(["train", "--config", "binary2d", "--data", str(data), "--out", str(run), *sets]) == 0
    assert (
        main(
            [
                "predict",
                str(data / "images"),
                "--checkpoint",
                str(run / "best.pt"),
                "--out",
                str(tmp_path / "p"),
                "--min-component",
                "3",
                "--opening",
                "1",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "p").glob("*_mask.png"))) == 20
    assert main(["evaluate", "--pred", str(tmp_path / "p"), "--ref", str(data), "--out", str(tmp_path / "ev")]) == 0
    with open(tmp_path / "ev" / "per_image.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 20 and all(0 <= float(r["foreground_dsc"]) <= 1 for r in rows)


def test_a_bad_mask_stops_training_with_one_line_naming_it(tmp_path, capsys):
    data = tmp_path / "d"
    write_paired_dataset(data, patients=3, slices=3, size=(32, 32), seed=1)
    Image.fromarray(np.full((32, 32), 7, np.uint8)).save(data / "masks" / "case002_01.png")
    sets = [a for o in [*TINY, "train.epochs=1"] for a in ("--set", o)]
    assert main(["train", "--config", "binary2d", "--data", str(data), "--out", str(tmp_path / "r"), *sets]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "case002_01.png" in err[0] and "unexpected values 7" in err[0]
    assert not (tmp_path / "r").exists()
    assert len(discover_slices(data).slices) == 9  # the inputs are untouched


def test_folds_train_by_patient_and_evaluate_out_of_fold(lgg, tmp_path):
    sets = [a for o in [*TINY, "train.epochs=1"] for a in ("--set", o)]
    run = tmp_path / "cv"
    assert main(["train", "--config", "lgg2d", "--data", str(lgg), "--out", str(run), "--folds", "5", *sets]) == 0
    held = [json.loads((run / f"fold_{k}" / "split.json").read_text())["validation"] for k in range(5)]
    assert sorted(p for h in held for p in h) == sorted(p.name for p in lgg.iterdir())  # each patient once
    assert main(["evaluate", "--cv", str(run), "--data", str(lgg)]) == 0
    summary = json.loads((run / "out_of_fold" / "summary.json").read_text())
    assert summary["foreground_dsc_per_patient"]["n"] == 5 and summary["foreground_dsc_per_image"]["n"] == 40
