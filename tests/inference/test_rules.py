"""Post-processing rules: small enhancing volumes become core, rules round-trip through the run folder and
`predict` applies them by default, with command-line values taking precedence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from brats3d.data.labels import EDEMA, ENHANCING, NON_ENHANCING
from brats3d.data.layouts import MODALITIES
from brats3d.errors import BratsInputError
from brats3d.inference.predict import PredictOptions, Predictor
from brats3d.transforms.postprocess import PostProcessing, relabel_small_enhancing, relabel_unenhanced


def _tumour(enhancing_voxels: int) -> np.ndarray:
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[2:12, 2:12, 2:12] = EDEMA
    labels[4:10, 4:10, 4:10] = NON_ENHANCING
    labels.reshape(-1)[np.flatnonzero(labels.reshape(-1) == NON_ENHANCING)[:enhancing_voxels]] = ENHANCING
    return labels


def test_a_small_enhancing_volume_becomes_non_enhancing_core():
    labels = _tumour(30)
    out = relabel_small_enhancing(labels, min_voxels=50)
    assert not (out == ENHANCING).any()
    assert int((out == NON_ENHANCING).sum()) == int(np.isin(labels, (NON_ENHANCING, ENHANCING)).sum())
    np.testing.assert_array_equal(out > 0, labels > 0)  # whole tumour unchanged


def test_an_enhancing_volume_at_or_above_the_minimum_is_kept():
    labels = _tumour(50)
    np.testing.assert_array_equal(relabel_small_enhancing(labels, 50), labels)
    np.testing.assert_array_equal(relabel_small_enhancing(labels, 0), labels)


def test_rules_apply_components_then_enhancing_volume():
    labels = _tumour(30)
    labels[17, 17, 17] = ENHANCING  # a stray voxel: removed first, so it does not count towards the volume
    rules = PostProcessing(min_component=5, min_enhancing=31)
    out = rules.apply(labels)
    assert out[17, 17, 17] == 0 and not (out == ENHANCING).any()


def _scan_with_a_half_dark_core() -> tuple[np.ndarray, np.ndarray]:
    """A brain whose predicted enhancing core is bright on T1ce in its first half and dark in its second."""
    rng = np.random.default_rng(0)
    image = np.zeros((len(MODALITIES), 20, 20, 20), np.float32)
    image[:, 1:19, 1:19, 1:19] = rng.normal(100, 10, (len(MODALITIES), 18, 18, 18))
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[4:12, 4:12, 4:12] = ENHANCING
    t1ce = MODALITIES.index("t1ce")
    image[t1ce, 4:8, 4:12, 4:12] = 150  # enhancing: 5 SD above the healthy brain
    image[t1ce, 8:12, 4:12, 4:12] = 80  # necrotic or non-enhancing: darker than the healthy brain
    return image, labels


def test_enhancing_voxels_dark_on_t1ce_become_core_and_bright_ones_stay():
    image, labels = _scan_with_a_half_dark_core()
    out = relabel_unenhanced(labels, image, min_z=0.5)
    assert (out[4:8, 4:12, 4:12] == ENHANCING).all()
    assert (out[8:12, 4:12, 4:12] == NON_ENHANCING).all()
    np.testing.assert_array_equal(out > 0, labels > 0)  # whole tumour and core unchanged
    np.testing.assert_array_equal(relabel_unenhanced(labels, image, min_z=-3.0), labels)  # a lenient level


def test_the_contrast_rule_runs_before_the_enhancing_volume_and_needs_the_image():
    image, labels = _scan_with_a_half_dark_core()
    rules = PostProcessing(min_enhancing=300, min_enhancing_contrast=0.5)  # 256 bright voxels left: below 300
    assert not (rules.apply(labels, image) == ENHANCING).any()
    assert (PostProcessing(min_enhancing=300).apply(labels) == ENHANCING).sum() == 512
    with pytest.raises(ValueError, match="needs the scan's image"):
        rules.apply(labels)


def test_rules_round_trip_and_bad_files_are_named(tmp_path):
    rules = PostProcessing([0.4, 0.5, 0.6], 100, 250)
    path = rules.save(tmp_path / "postprocessing.json", {"note": "test"})
    assert PostProcessing.load(path) == rules
    assert json.loads(path.read_text())["evidence"] == {"note": "test"}
    with_contrast = PostProcessing([0.4, 0.5, 0.6], 100, 250, 0.5)
    assert PostProcessing.load(with_contrast.save(tmp_path / "contrast.json")) == with_contrast
    path.write_text('{"rules": {"thresholds": [0.5, 2], "min_component": 0, "min_enhancing": 0}}')
    with pytest.raises(BratsInputError, match=r"postprocessing\.json: not valid post-processing rules"):
        PostProcessing.load(path)


def test_predict_applies_the_runs_rules_and_options_override_them(checkpoint):
    rules_path = checkpoint.parent / "postprocessing.json"
    try:
        PostProcessing([0.3, 0.4, 0.6], 10, 20, 0.5).save(rules_path)
        run_rules = PostProcessing([0.3, 0.4, 0.6], 10, 20, 0.5)
        assert Predictor(checkpoint, PredictOptions(pictures=False)).rules == run_rules
        options = PredictOptions(pictures=False, threshold=0.5, min_enhancing=0, enhancing_contrast="off")
        assert Predictor(checkpoint, options).rules == PostProcessing([0.5, 0.5, 0.5], 10, 0, None)
        stricter = Predictor(checkpoint, PredictOptions(pictures=False, enhancing_contrast=1.0)).rules
        assert stricter.min_enhancing_contrast == 1.0
    finally:
        rules_path.unlink()
    assert Predictor(checkpoint, PredictOptions(pictures=False)).rules == PostProcessing()


def test_predict_falls_back_to_the_recipes_rules_and_a_runs_own_file_wins(checkpoint, tmp_path):
    import torch

    from brats3d.models.checkpoint import load_checkpoint

    payload = load_checkpoint(checkpoint)
    payload["config"]["postprocessing"] = {"thresholds": [0.5, 0.5, 0.5], "min_component": 7, "min_enhancing": 9}
    run = tmp_path / "run"
    run.mkdir()
    torch.save(payload, run / "best.pt")
    assert Predictor(run / "best.pt", PredictOptions(pictures=False)).rules == PostProcessing([0.5] * 3, 7, 9)
    PostProcessing([0.4, 0.5, 0.5], 1, 2).save(run / "postprocessing.json")
    assert Predictor(run / "best.pt", PredictOptions(pictures=False)).rules == PostProcessing([0.4, 0.5, 0.5], 1, 2)


def test_a_recipe_with_rules_out_of_range_is_refused_by_name():
    from brats3d.config import load_config

    with pytest.raises(BratsInputError, match=r"postprocessing: thresholds must be three numbers between 0 and 1"):
        load_config(None, ["postprocessing.thresholds=[0.5, 1.5, 0.5]"])


def test_the_recipe_chooses_flip_averaging_and_precision_and_options_override_them(checkpoint, make_dataset, tmp_path):
    import torch

    from brats3d.cli import _predict_options, build_parser
    from brats3d.data.layouts import discover
    from brats3d.models.checkpoint import load_checkpoint

    payload = load_checkpoint(checkpoint)
    payload["config"]["inference"] = {"tta": True}
    (tmp_path / "run").mkdir()
    torch.save(payload, tmp_path / "run" / "best.pt")
    case = discover(make_dataset("msd", cases=1)).cases[0]

    def probabilities(path, **options):
        predictor = Predictor(path, PredictOptions(pictures=False, save_probabilities=True, overlap=0.25, **options))
        return predictor.options.tta, predictor.predict(case).probabilities_ras

    recipe_tta, by_recipe = probabilities(tmp_path / "run" / "best.pt")
    _, flipped = probabilities(checkpoint, tta=True)
    no_tta, plain = probabilities(tmp_path / "run" / "best.pt", tta=False)
    assert recipe_tta and not no_tta
    payload["config"]["train"]["amp"] = "off"
    torch.save(payload, tmp_path / "run" / "best.pt")
    assert Predictor(tmp_path / "run" / "best.pt", PredictOptions(pictures=False)).options.amp == "off"
    assert Predictor(tmp_path / "run" / "best.pt", PredictOptions(pictures=False, amp="bf16")).options.amp == "bf16"
    assert torch.equal(by_recipe, flipped) and not torch.equal(by_recipe, plain)
    assert probabilities(checkpoint)[0] is False  # a recipe without the setting predicts without flips
    assert Predictor(checkpoint, PredictOptions(pictures=False)).options.flip_axes == (0, 1, 2)
    payload["config"]["data"]["flip_axes"] = [0]  # a recipe that flips left-right only averages over those flips
    torch.save(payload, tmp_path / "run" / "best.pt")
    assert Predictor(tmp_path / "run" / "best.pt", PredictOptions(pictures=False)).options.flip_axes == (0,)

    parse = build_parser().parse_args
    assert _predict_options(parse(["predict", "x.nii.gz", "--checkpoint", "c.pt"])).tta is None
    assert _predict_options(parse(["predict", "x.nii.gz", "--checkpoint", "c.pt", "--no-tta"])).tta is False
