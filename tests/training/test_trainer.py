"""Training end to end on tiny phantoms: it learns, it resumes exactly after SIGKILL, and it runs under torchrun."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from brats3d.config import load_config
from brats3d.data.layouts import discover
from brats3d.data.synthetic import write_dataset
from brats3d.errors import BratsInputError
from brats3d.models import build_network
from brats3d.models.checkpoint import load_checkpoint, model_from_checkpoint
from brats3d.training.cache import first_random
from brats3d.training.data import build_datasets, split_cases
from brats3d.training.trainer import Trainer, lr_factor, train, validate

TINY = [
    "data.patch_size=[32,32,16]",
    "data.patches_per_case=2",
    "data.num_workers=0",
    "data.unbiased_fraction=0.3",
    "data.val_fraction=0.34",
    "model.kwargs={channels: [8, 16, 32, 64, 128]}",
    "train.batch_size=4",
    "train.lr=0.003",
    "validation.overlap=0.25",
]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "data"
    write_dataset(root, 6, layout="brats2021", shape=(48, 48, 32), seed=11)
    return root


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "brats3d.cli", *args]


def _rows(run: Path) -> list[dict]:
    with open(run / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_training_beats_an_untrained_model_on_whole_scans(tiny_data, tmp_path):
    config = load_config(None, [*TINY, "train.epochs=10", "train.steps_per_epoch=8", "validation.every=10"])
    config.data.root = str(tiny_data)
    torch.manual_seed(config.seed)
    train_cases, val_cases = split_cases(discover(tiny_data).labelled(), config)
    _, val_ds, _ = build_datasets(train_cases, val_cases, config, tmp_path / "cache")
    untrained = build_network("unet3d", config.data.patch_size, "regions", config.model.kwargs)
    before = validate(untrained, val_ds, config, torch.device("cpu"))["dice_whole_tumour"]

    result = train(config, tmp_path / "run", log=lambda _: None)
    after = result.history[-1]["dice_whole_tumour"]
    assert after > before + 0.25, (before, after)
    assert after > 0.5
    for name in ("best.pt", "last.pt", "config.yaml", "split.json", "metrics.csv"):
        assert (tmp_path / "run" / name).is_file()
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def test_a_deeply_supervised_network_trains_and_its_checkpoint_predicts_one_output(tiny_data, tmp_path):
    overrides = ["model.network=dynunet", "model.kwargs={filters: [4, 8, 16, 32, 64]}", "validation.max_cases=1"]
    config = load_config(None, [*TINY, *overrides, "train.epochs=1", "train.steps_per_epoch=2"])
    result = train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)
    assert np.isfinite(result.history[-1]["train_loss"]) and result.history[-1]["dice_whole_tumour"] >= 0
    model, _ = model_from_checkpoint(load_checkpoint(tmp_path / "run" / "best.pt"))
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 4, 32, 32, 16)).shape == (1, 3, 32, 32, 16)


def test_checkpoint_is_self_describing(tiny_data, tmp_path):
    config = load_config(None, [*TINY, "train.epochs=1", "train.steps_per_epoch=1", "validation.max_cases=1"])
    train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)
    payload = load_checkpoint(tmp_path / "run" / "best.pt")
    assert payload["network"] == "unet3d" and payload["target"] == "regions"
    assert payload["modalities"] == ["flair", "t1", "t1ce", "t2"]
    assert payload["label_convention"] == "brats2021"
    assert payload["patch_size"] == [32, 32, 16] and payload["normalisation"] == "brain"
    model, saved_config = model_from_checkpoint(payload)
    assert saved_config.model.kwargs == {"channels": [8, 16, 32, 64, 128]}
    assert model(torch.zeros(1, 4, 32, 32, 16)).shape == (1, 3, 32, 32, 16)
    assert payload["mirror_difference"] is False


def test_a_run_with_asymmetry_channels_trains_and_validates_on_eight_and_says_so(tiny_data, tmp_path):
    overrides = [*TINY, "train.epochs=1", "train.steps_per_epoch=1", "validation.max_cases=1"]
    train(load_config(None, [*overrides, "data.mirror_difference=true"]), tmp_path / "run", data_dir=tiny_data)
    payload = load_checkpoint(tmp_path / "run" / "best.pt")
    assert payload["mirror_difference"] is True
    model, _ = model_from_checkpoint(payload)
    assert model(torch.zeros(1, 8, 32, 32, 16)).shape == (1, 3, 32, 32, 16)
    assert "mean_dice" in (tmp_path / "run" / "metrics.csv").read_text()


def test_a_checkpoint_from_before_asymmetry_channels_loads_as_without_them(checkpoint, tmp_path):
    payload = load_checkpoint(checkpoint)
    del payload["mirror_difference"]
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["mirror_difference"] is False
    payload["mirror_difference"] = "yes"
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(BratsInputError, match="mirror_difference"):
        load_checkpoint(tmp_path / "odd.pt")


def test_an_existing_run_is_not_overwritten(tiny_data, tmp_path):
    config = load_config(None, [*TINY, "train.epochs=1", "train.steps_per_epoch=1", "validation.max_cases=1"])
    train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)
    with pytest.raises(BratsInputError, match="already holds a run"):
        train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)


# The mmap run also samples hard negatives, whose pool (state carried from epoch to epoch) must survive the kill.
@pytest.mark.parametrize("cache, hard, ema", [("memory", 0.0, 0.0), ("mmap", 0.5, 0.9)])
def test_sigkill_then_resume_finishes_exactly_like_an_uninterrupted_run(tiny_data, tmp_path, cache, hard, ema):
    overrides = [*TINY, "train.epochs=6", "train.steps_per_epoch=6", "validation.max_cases=1", f"data.cache={cache}"]
    overrides += [f"data.hard_negative_fraction={hard}", f"train.ema_decay={ema}"]
    sets = [a for o in overrides for a in ("--set", o)]
    config_file = tmp_path / "c.yaml"
    config_file.write_text("seed: 3\n")
    run = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli("train", "--config", str(config_file), "--data", str(tiny_data), "--out", str(run), *sets),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while not (run / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # into the next epoch
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # last.pt is never corrupt, whenever the kill landed, and it is what a resume starts from. metrics.csv is
    # written just after it and may lag one epoch when the kill lands between the two; the resume rebuilds it.
    done_before = load_checkpoint(run / "last.pt")["epoch"]
    assert 1 <= done_before < 6, "the kill should land mid-run"
    logged = [int(r["epoch"]) for r in _rows(run)]
    assert (logged[-1] if logged else 0) in (done_before - 1, done_before)

    resumed = subprocess.run(_cli("train", "--resume", str(run)), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} after epoch {done_before}" in resumed.stdout
    assert [int(r["epoch"]) for r in _rows(run)] == [1, 2, 3, 4, 5, 6]

    straight = tmp_path / "straight"
    subprocess.run(
        _cli("train", "--config", str(config_file), "--data", str(tiny_data), "--out", str(straight), *sets),
        check=True,
        capture_output=True,
    )
    a, b = load_checkpoint(run / "last.pt"), load_checkpoint(straight / "last.pt")
    for weights in ("model", *(["train_model"] if ema else [])):  # with averaging, the average and the trained
        for key in a[weights]:
            torch.testing.assert_close(a[weights][key], b[weights][key], rtol=0, atol=0, msg=f"{weights}: {key}")
    model_from_checkpoint(load_checkpoint(run / "best.pt"))
    np.testing.assert_allclose(
        [float(r["train_loss"]) for r in _rows(run)], [float(r["train_loss"]) for r in _rows(straight)]
    )


def test_torchrun_two_processes_on_cpu(tiny_data, tmp_path):
    run = tmp_path / "ddp"
    overrides = [*TINY, "train.epochs=2", "train.steps_per_epoch=2", "data.hard_negative_fraction=0.5"]
    sets = [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            "-m",
            "brats3d.cli",
            "train",
            "--config",
            "demo",
            "--data",
            str(tiny_data),
            "--out",
            str(run),
            *sets,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "world size 2" in result.stdout
    assert result.stdout.count("epoch 2/2") == 1, "only rank 0 reports"
    assert [int(r["epoch"]) for r in _rows(run)] == [1, 2]
    model_from_checkpoint(load_checkpoint(run / "best.pt"))
    pools = load_checkpoint(run / "last.pt")["hard_patches"]  # each rank's hard patches, of its own cases
    assert len(pools) == 2 and pools[0] and pools[1] and not set(pools[0]) & set(pools[1])


def test_schedule_warms_up_then_anneals_to_zero_at_the_epoch_limit_or_the_budget():
    config = load_config(None, ["train.epochs=101", "train.warmup_epochs=1"])
    assert lr_factor(config, 0) == pytest.approx(0.5)
    assert lr_factor(config, 1) == pytest.approx(1.0)
    assert lr_factor(config, 51) == pytest.approx(0.5)
    assert lr_factor(config, 101) == pytest.approx(0.0)
    # Half the wall-clock budget spent at epoch 1: the cosine is half way, whatever train.epochs says.
    assert lr_factor(config, 1, budget_used=0.5) == pytest.approx(0.5)
    assert lr_factor(config, 1, budget_used=1.2) == pytest.approx(0.0)


def test_poly_schedule_is_below_the_cosine_early_above_it_late_and_ends_at_zero():
    cosine = load_config(None, ["train.epochs=101", "train.warmup_epochs=1"])
    poly = load_config(None, ["train.epochs=101", "train.warmup_epochs=1", "train.scheduler=poly"])
    assert lr_factor(poly, 0) == pytest.approx(0.5)  # the same warm-up
    assert lr_factor(poly, 51) == pytest.approx(0.5**0.9)
    assert lr_factor(poly, 26) < lr_factor(cosine, 26)
    for epoch in (76, 96):
        assert lr_factor(poly, epoch) > lr_factor(cosine, epoch)
    assert lr_factor(poly, 101) == pytest.approx(0.0)
    assert lr_factor(poly, 1, budget_used=1.2) == pytest.approx(0.0)


def test_time_budget_counts_across_resume(tiny_data, tmp_path):
    config = load_config(None, [*TINY, "train.epochs=2", "train.steps_per_epoch=1", "validation.max_cases=1"])
    run = tmp_path / "run"
    train(config, run, data_dir=tiny_data, log=lambda _: None)
    spent = load_checkpoint(run / "last.pt")["train_seconds"]
    assert spent > 0
    lines: list[str] = []
    # A budget the first two epochs already used up: the resumed run does one epoch at the end of the schedule.
    result = train(
        run_dir=run, resume=True, overrides=["train.epochs=10", f"train.max_minutes={spent / 60}"], log=lines.append
    )
    assert result.epochs_done == 3
    assert result.history[-1]["lr"] == 0.0
    assert any("time budget" in line for line in lines)


def test_cli_trains_each_fold_and_a_killed_fold_resumes(tiny_data, tmp_path):
    """`--folds 3 --fold k` trains fold k into OUT/fold_k, with the split saved; `--resume` continues it."""
    sets = [a for o in [*TINY, "train.epochs=1", "train.steps_per_epoch=1"] for a in ("--set", o)]
    out = tmp_path / "cv"
    for k in (0, 1):
        result = subprocess.run(
            _cli(
                "train",
                "--config",
                "demo",
                "--data",
                str(tiny_data),
                "--out",
                str(out),
                "--folds",
                "3",
                "--fold",
                str(k),
                *sets,
            ),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr[-2000:]
    splits = [json.loads((out / f"fold_{k}" / "split.json").read_text()) for k in (0, 1)]
    assert splits[0]["folds"] == splits[1]["folds"] and len(splits[0]["folds"]) == 3
    assert not set(splits[0]["validation"]) & set(splits[1]["validation"])
    resumed = subprocess.run(
        _cli("train", "--resume", str(out / "fold_1"), "--set", "train.epochs=2"), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "fold_1" / "split.json").read_text()) == splits[1]
    assert [int(r["epoch"]) for r in _rows(out / "fold_1")] == [1, 2]


def test_weight_averaging_is_what_validation_and_checkpoints_predict_with(tiny_data, tmp_path):
    """With train.ema_decay, the validated Dice and best.pt/last.pt are the moving average's, not the last step's;
    last.pt keeps the trained weights too, for resume."""
    steps = ["train.epochs=2", "train.steps_per_epoch=3", "validation.every=2", "validation.max_cases=1"]
    config = load_config(None, [*TINY, *steps, "train.ema_decay=0.8"])
    result = train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)
    last, best = load_checkpoint(tmp_path / "run" / "last.pt"), load_checkpoint(tmp_path / "run" / "best.pt")
    assert last["ema_updates"] == 6
    assert any(not torch.equal(last["model"][k], last["train_model"][k]) for k in last["model"])
    for key in last["model"]:
        torch.testing.assert_close(best["model"][key], last["model"][key], rtol=0, atol=0)
    _, val_cases = split_cases(discover(tiny_data).labelled(), config)
    _, val_ds, _ = build_datasets([], val_cases, config, tmp_path / "cache")
    averaged, _ = model_from_checkpoint(last)
    scores = validate(averaged, val_ds, config, torch.device("cpu"))
    assert scores["mean_dice"] == pytest.approx(result.history[-1]["mean_dice"], abs=1e-6)


def test_averaging_can_be_switched_on_when_resuming(tiny_data, tmp_path):
    config = load_config(None, [*TINY, "data.val_fraction=0", "train.epochs=1", "train.steps_per_epoch=2"])
    train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)
    averaging = ["train.epochs=2", "train.ema_decay=0.9"]
    train(run_dir=tmp_path / "run", resume=True, overrides=averaging, log=lambda _: None)
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["epoch"] == 2 and last["ema_updates"] == 2 and last["config"]["train"]["ema_decay"] == 0.9


def test_without_validation_cases_best_pt_holds_the_final_weights(tiny_data, tmp_path):
    config = load_config(None, [*TINY, "data.val_fraction=0", "train.epochs=2", "train.steps_per_epoch=1"])
    result = train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)
    assert result.best_mean_dice == -1 and "mean_dice" not in result.history[-1]
    best, last = load_checkpoint(tmp_path / "run" / "best.pt"), load_checkpoint(tmp_path / "run" / "last.pt")
    for key in best["model"]:
        torch.testing.assert_close(best["model"][key], last["model"][key], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("override", "message"),
    [("model.network=unet3", "unknown network 'unet3'"), ("data.patch_size=[160,160,20]", "divisible by 16")],
)
def test_bad_network_settings_fail_before_any_data_is_read(tmp_path, override, message):
    missing = tmp_path / "no_such_dataset"
    result = subprocess.run(
        _cli("train", "--data", str(missing), "--out", str(tmp_path / "run"), "--set", override),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and message in result.stderr
    assert "no_such_dataset" not in result.stderr and not (tmp_path / "run").exists()


def test_every_cache_trains_on_the_same_patches(tiny_data, tmp_path):
    """memory, disk (MONAI PersistentDataset), mmap and no cache hold the same cases: two epochs from the same seed
    give the same training loss (the disk cache, read back in epoch 2, once handed the sampler tensors where it
    expected arrays)."""
    losses = {}
    for cache in ("memory", "disk", "mmap", "none"):
        config = load_config(None, [*TINY, "train.epochs=2", "train.steps_per_epoch=2", f"data.cache={cache}"])
        config.data.val_fraction = 0
        result = train(config, tmp_path / cache, data_dir=tiny_data, log=lambda _: None)
        losses[cache] = result.history[-1]["train_loss"]
    assert losses["disk"] == pytest.approx(losses["memory"], rel=1e-4)
    assert losses["none"] == pytest.approx(losses["memory"], rel=1e-4)
    assert losses["mmap"] == pytest.approx(losses["memory"], rel=2e-2)  # float16 storage of the normalised image


class _NaNOnCalls(torch.nn.Module):
    """The real loss, made NaN on the chosen calls (what a numerics fault or a too-high learning rate gives)."""

    def __init__(self, loss: torch.nn.Module, bad: set[int] | None) -> None:
        super().__init__()
        self.loss, self.bad, self.calls = loss, bad, 0

    def forward(self, logits, target):
        self.calls += 1
        value = self.loss(logits, target)
        return value * float("nan") if self.bad is None or self.calls in self.bad else value


def _nan_loss(monkeypatch, bad: set[int] | None) -> None:
    from brats3d.training import trainer as trainer_module

    real = trainer_module.build_loss
    monkeypatch.setattr(trainer_module, "build_loss", lambda *a, **k: _NaNOnCalls(real(*a, **k), bad))


def test_an_update_with_nan_gradients_is_skipped_and_never_reaches_the_weights(tiny_data, tmp_path, monkeypatch):
    _nan_loss(monkeypatch, bad={2, 3})
    config = load_config(None, [*TINY, "data.val_fraction=0", "train.epochs=2", "train.steps_per_epoch=3"])
    lines: list[str] = []
    result = train(config, tmp_path / "run", data_dir=tiny_data, log=lines.append)
    assert result.epochs_done == 2 and all(np.isfinite(row["train_loss"]) for row in result.history)
    assert any("2 of 3 updates skipped" in line for line in lines)
    weights = load_checkpoint(tmp_path / "run" / "last.pt")["model"]
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())


def test_a_run_whose_gradients_stay_nan_stops_with_a_clear_error(tiny_data, tmp_path, monkeypatch):
    from brats3d.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "MAX_NONFINITE_STEPS", 3)
    _nan_loss(monkeypatch, bad=None)
    config = load_config(None, [*TINY, "data.val_fraction=0", "train.epochs=5", "train.steps_per_epoch=2"])
    with pytest.raises(BratsInputError, match="training diverged: 3 updates in a row had NaN"):
        train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)


def _with_one_coarse_case(make_dataset) -> list:
    """Three phantoms at 1 mm, the last one's headers rewritten to say 1.5 x 1.5 x 3 mm voxels."""
    cases = discover(make_dataset("msd", cases=3, shape=(40, 40, 24))).cases
    for path in (cases[2].images[0], cases[2].label):
        img = nib.load(str(path))
        nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), img.affine @ np.diag([1.5, 1.5, 3.0, 1.0])), str(path))
    return cases


@pytest.mark.parametrize("resample", [True, False])
def test_training_cases_at_another_voxel_spacing_are_resampled_or_named(make_dataset, tmp_path, resample):
    """The dataset's median spacing goes into the checkpoints; a training case far from it is resampled to it, or
    named when ``data.resample`` is off."""
    cases = _with_one_coarse_case(make_dataset)
    lines: list[str] = []
    config = load_config(None, [f"data.resample={str(resample).lower()}"])
    trainer = Trainer(config, tmp_path / "run", resume=False, log=lines.append)
    trainer.train_cases = cases
    assert trainer.training_spacing(cases) == [1.0, 1.0, 1.0]
    assert len(lines) == 1 and "1 training case(s)" in lines[0] and cases[2].case_id in lines[0]
    assert ("resampled to it" in lines[0]) is resample and lines[0].startswith("warning") is not resample
    trainer.train_cases = cases[:2]  # the coarse case held out: the median is still the dataset's, nobody named
    lines.clear()
    assert trainer.training_spacing(cases) == [1.0, 1.0, 1.0] and lines == []


@pytest.mark.parametrize("resample", [True, False])
def test_a_coarse_case_is_trained_and_validated_at_the_dataset_spacing(make_dataset, tmp_path, resample):
    cases = _with_one_coarse_case(make_dataset)
    config = load_config(None, [*TINY, "data.cache=none", f"data.resample={str(resample).lower()}"])
    _, val_ds, transform = build_datasets(cases, cases[2:], config, tmp_path / "cache", spacing=[1.0] * 3)
    fine, coarse = (transform(c.to_dict(), end=first_random(transform)) for c in (cases[0], cases[2]))
    validated = val_ds[0]
    # The coarse case's 40 x 40 x 24 voxels span 60 x 60 x 72 mm: 60 x 60 x 72 voxels at 1 mm (cropped to the brain).
    grow = (1.5, 1.5, 3.0) if resample else (1.0, 1.0, 1.0)
    for item in (coarse, validated):
        for n, fine_n, g in zip(item["image"].shape[1:], fine["image"].shape[1:], grow):
            assert abs(n - g * fine_n) <= 3 * g
        assert tuple(item["spacing"]) == ((1.0, 1.0, 1.0) if resample else (1.5, 1.5, 3.0))
