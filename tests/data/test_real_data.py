"""Checks on the ten real BraTS 2018 cases in ../shared/data/brats18-sample; skipped when it is absent."""

import numpy as np

from brats3d.data.inspect import inspect_dataset
from brats3d.data.layouts import Layout, discover
from brats3d.transforms import build_train_transforms


def test_real_sample_is_recognised(real_data):
    report = inspect_dataset(real_data)
    assert report.index.layout is Layout.BRATS2021
    assert len(report.index.cases) == 10
    assert report.label_values() == [0, 1, 2, 4]
    assert report.problems == []


def test_one_real_case_through_the_training_pipeline(real_data):
    case = discover(real_data).cases[0]
    chain = build_train_transforms(patch_size=(160, 160, 16), samples_per_case=4)
    chain.set_random_state(0)
    patches = chain(case.to_dict())
    for p in patches:
        assert tuple(p["image"].shape) == (4, 160, 160, 16)
        assert p["patch_rule"] == "tumour"
        assert p["label"][0].mean().item() >= 0.05  # whole tumour share of the patch
        assert np.isfinite(p["image"].numpy()).all()


def test_real_labels_scored_against_themselves_give_dice_1(real_data, tmp_path):
    import shutil

    from brats3d.evaluation.evaluate import evaluate_folder

    pred = tmp_path / "pred"
    pred.mkdir()
    for seg in sorted(real_data.glob("*/*_seg.nii.gz"))[:3]:
        shutil.copy(seg, pred / seg.name)
    cases = [p.name.removesuffix("_seg.nii.gz") for p in pred.iterdir()]
    subset = tmp_path / "ref"
    subset.mkdir()
    for case_id in cases:
        shutil.copytree(real_data / case_id, subset / case_id)
    evaluation = evaluate_folder(pred, subset, with_hd95=False)
    assert len(evaluation.cases) == 3
    assert all(v["dice"] == 1.0 for c in evaluation.cases for v in c.scores.values())
