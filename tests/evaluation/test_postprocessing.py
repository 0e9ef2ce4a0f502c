"""Choosing post-processing rules from out-of-fold probabilities (`brats3d postprocess`) on tiny synthetic cases."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from brats3d.data.io import load_case
from brats3d.data.labels import ENHANCING, NON_ENHANCING
from brats3d.data.layouts import discover
from brats3d.evaluation import postprocessing
from brats3d.evaluation.metrics import structure_mask
from brats3d.evaluation.postprocessing import choose_postprocessing, score_rules
from brats3d.transforms.postprocess import PostProcessing

REGIONS = ("whole_tumour", "tumour_core", "enhancing_tumour")


def _write_probabilities(folder: Path, case_id: str, truth: np.ndarray, inside=(0.9, 0.9, 0.9)) -> None:
    """Out-of-fold probabilities as `brats3d evaluate --cv` keeps them: ``inside[r]`` on region r's true voxels."""
    probs = np.stack([np.where(structure_mask(truth, r), p, 0.05) for r, p in zip(REGIONS, inside)])
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(folder / f"{case_id}.npz", probabilities=np.round(probs * 255).astype(np.uint8))


@pytest.fixture
def oof(make_dataset, tmp_path):
    """Three synthetic cases and a probability folder to fill: ``(cases, folder, truths)``."""
    cases = discover(make_dataset("msd", cases=3)).labelled()
    truths = {c.case_id: load_case(c, ras=True).label for c in cases}
    return cases, tmp_path / "probabilities", truths


def test_a_threshold_the_evidence_supports_is_chosen(oof):
    cases, folder, truths = oof
    for case_id, truth in truths.items():  # the network is under-confident on the tumour core everywhere
        _write_probabilities(folder, case_id, truth, inside=(0.9, 0.35, 0.9))
    rules, evidence = choose_postprocessing(cases, folder, log=lambda _: None)
    assert rules.thresholds == [0.5, 0.3, 0.5]
    assert evidence["mean_dice_neutral"]["tumour_core"] < 0.01
    assert evidence["mean_dice_chosen"]["tumour_core"] == pytest.approx(1.0)


def test_perfect_predictions_keep_neutral_rules(oof, monkeypatch):
    cases, folder, truths = oof
    monkeypatch.setattr(postprocessing, "ENHANCING_PRIOR", 10**6)  # a prior that would empty every case
    for case_id, truth in truths.items():
        _write_probabilities(folder, case_id, truth)
    rules, evidence = choose_postprocessing(cases, folder, log=lambda _: None)
    assert (rules.thresholds, rules.min_component, rules.min_enhancing) == ([0.5, 0.5, 0.5], 0, 0)
    assert evidence["mean_dice_chosen"] == evidence["mean_dice_neutral"]
    scored = score_rules(cases[:1], folder, rules)  # rules scored on cases of one's choice (nested estimates)
    assert list(scored) == [cases[0].case_id]
    assert {k: scored[cases[0].case_id][k] for k in ("WT", "TC", "ET")} == {"WT": 1.0, "TC": 1.0, "ET": 1.0}


def test_without_a_case_free_of_enhancing_tumour_the_prior_is_kept_when_it_costs_nothing(oof, monkeypatch):
    cases, folder, truths = oof
    monkeypatch.setattr(postprocessing, "ENHANCING_PRIOR", 20)  # below every phantom's enhancing volume
    for case_id, truth in truths.items():
        _write_probabilities(folder, case_id, truth)
    rules, evidence = choose_postprocessing(cases, folder, log=lambda _: None)
    assert rules.min_enhancing == 20
    assert evidence["cases_without_enhancing"] == 0


def test_a_core_painted_as_enhancing_chooses_the_t1ce_contrast_rule(oof):
    cases, folder, truths = oof
    folder.mkdir(parents=True)
    for case_id, truth in truths.items():  # enhancing predicted over the whole core, the dark necrosis included
        core = structure_mask(truth, "tumour_core")
        probs = np.stack(
            [np.where(structure_mask(truth, "whole_tumour"), 0.9, 0.05), *(np.where(core, 0.9, 0.05),) * 2]
        )
        np.savez_compressed(folder / f"{case_id}.npz", probabilities=np.round(probs * 255).astype(np.uint8))
    rules, evidence = choose_postprocessing(cases, folder, log=lambda _: None)
    assert rules.min_enhancing_contrast is not None
    neutral, chosen = evidence["mean_dice_neutral"], evidence["mean_dice_chosen"]
    assert chosen["enhancing_tumour"] > neutral["enhancing_tumour"] + 0.05
    assert chosen["tumour_core"] == neutral["tumour_core"]  # the rule moves voxels from ET to core, never out of TC


def test_the_softmax_of_a_classes_run_is_scored_through_its_region_probabilities(oof):
    cases, folder, truths = oof
    folder.mkdir(parents=True)
    for case_id, truth in truths.items():  # background + the three classes, 0.85 on each voxel's true class
        probs = np.where(np.arange(4).reshape(4, 1, 1, 1) == truth, 0.85, 0.05)
        np.savez_compressed(folder / f"{case_id}.npz", probabilities=np.round(probs * 255).astype(np.uint8))
    core_only = PostProcessing(thresholds=[0.5, 0.5, 0.95])  # no voxel is 0.95 enhancing
    scored = score_rules(cases, folder, core_only)
    assert all(s["WT"] == 1.0 and s["TC"] == 1.0 and s["ET"] == 0.0 for s in scored.values())
    _, evidence = choose_postprocessing(cases, folder, log=lambda _: None)
    assert evidence["mean_dice_neutral"] == {r: 1.0 for r in REGIONS}


def test_stray_enhancing_voxels_on_a_scan_without_enhancing_tumour_choose_the_rule_from_evidence(oof):
    cases, folder, truths = oof
    first = cases[0].case_id
    truth = truths[first]
    # The first case has no enhancing tumour (its enhancing voxels become non-enhancing core, on disk too: the
    # Decathlon numbering is the canonical one), yet the network predicts a few dozen enhancing voxels there.
    stray = np.argwhere(truth == ENHANCING)[:60]
    truth_without = np.where(truth == ENHANCING, NON_ENHANCING, truth)
    _write_probabilities(folder, first, truth_without)
    with np.load(folder / f"{first}.npz") as data:
        probs = data["probabilities"].copy()
    probs[(2, *stray.T)] = 230
    np.savez_compressed(folder / f"{first}.npz", probabilities=probs)
    for case in cases[1:]:
        _write_probabilities(folder, case.case_id, truths[case.case_id])
    img = nib.load(cases[0].label)
    on_disk = np.asarray(img.dataobj)
    nib.save(nib.Nifti1Image(np.where(on_disk == ENHANCING, NON_ENHANCING, on_disk), img.affine), cases[0].label)

    rules, evidence = choose_postprocessing(cases, folder, log=lambda _: None)
    assert evidence["cases_without_enhancing"] == 1
    assert 60 < rules.min_enhancing <= min(int((t == ENHANCING).sum()) for t in list(truths.values())[1:])
    assert evidence["mean_dice_chosen"]["enhancing_tumour"] > evidence["mean_dice_neutral"]["enhancing_tumour"]
    assert evidence["per_case"][first]["true ET ml"] == 0
    assert evidence["per_case"][first]["neutral"]["ET ml"] == pytest.approx(0.06)  # 60 voxels of 1 mm³
    assert evidence["per_case"][first]["chosen"] == {"WT": 1.0, "TC": 1.0, "ET": 1.0, "ET ml": 0.0}


def test_postprocess_command_on_a_cross_validation_run(make_dataset, tmp_path, capsys):
    """train --folds, evaluate --cv, postprocess: the rules land in the run with an estimate on unseen folds."""
    import json

    from brats3d.cli import main

    data, run = make_dataset("msd", cases=4, shape=(40, 40, 24)), tmp_path / "cv"
    tiny = ["data.patch_size=[32,32,16]", "train.epochs=1", "train.steps_per_epoch=1", "train.batch_size=1",
            "data.patches_per_case=1", "model.kwargs={channels: [4, 8, 16, 32, 64]}"]  # fmt: skip
    assert (
        main(
            ["train", "--data", str(data), "--out", str(run), "--folds", "2", *[a for s in tiny for a in ("--set", s)]]
        )
        == 0
    )
    assert main(["evaluate", "--cv", str(run), "--data", str(data)]) == 0
    settings = json.loads((run / "out_of_fold" / "summary.json").read_text())["inference"]
    assert settings["checkpoints"] == [str(run / "fold_0" / "last.pt"), str(run / "fold_1" / "last.pt")]
    capsys.readouterr()
    assert main(["postprocess", str(run), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "on unseen cases (rules chosen without each fold, scored on it): WT" in out
    saved = json.loads((run / "postprocessing.json").read_text())
    nested = saved["evidence"]["nested"]
    assert len(nested["rules_per_fold"]) == 2 and sorted(nested["per_case"]) == sorted(saved["evidence"]["cases"])
    assert set(nested["mean_dice"]) == {"whole_tumour", "tumour_core", "enhancing_tumour"}
