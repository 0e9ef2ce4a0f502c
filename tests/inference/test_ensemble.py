"""Prediction shares validation's preprocessing, and several checkpoints predict as their ensemble."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from brats3d.config import load_config
from brats3d.data.layouts import discover
from brats3d.errors import BratsInputError
from brats3d.inference.predict import PredictOptions, Predictor, ensemble_probabilities
from brats3d.models.checkpoint import load_checkpoint, model_from_checkpoint
from brats3d.training.data import build_datasets
from brats3d.training.trainer import validation_labels


def _options(**kw):
    return PredictOptions(pictures=False, overlap=0.25, **kw)


@pytest.mark.parametrize("normalisation", ["brain", "flattened"])
def test_validation_and_predict_give_identical_labels(make_dataset, checkpoint, tmp_path, normalisation):
    case = discover(make_dataset("brats2021", cases=1)).cases[0]
    payload = load_checkpoint(checkpoint)
    if normalisation != payload["normalisation"]:  # the same weights, said to take the other normalisation
        payload["normalisation"] = payload["config"]["data"]["normalisation"] = normalisation
        checkpoint = tmp_path / f"{normalisation}.pt"
        torch.save(payload, checkpoint)
    model, config = model_from_checkpoint(load_checkpoint(checkpoint))
    assert config.data.normalisation == normalisation
    config.validation.overlap, config.validation.threshold = 0.25, 0.45
    _, val_ds, _ = build_datasets([case], [case], config, tmp_path / "cache")
    item = val_ds[0]
    during_validation = validation_labels(model.eval(), item, config, torch.device("cpu"))

    prediction = Predictor(checkpoint, _options(threshold=0.45)).predict(case)
    start, end = item["foreground_start_coord"], item["foreground_end_coord"]
    box = tuple(slice(int(s), int(e)) for s, e in zip(start, end))
    np.testing.assert_array_equal(prediction.labels_ras[box], during_validation)
    outside = prediction.labels_ras.copy()
    outside[box] = 0
    assert not outside.any(), "nothing is predicted outside the brain's crop box"
    assert during_validation.any(), "the comparison needs some predicted tumour"


def test_an_ensemble_predicts_the_mean_of_its_members_probabilities(make_dataset, checkpoint, tmp_path):
    case = discover(make_dataset("msd", cases=1)).cases[0]
    payload = load_checkpoint(checkpoint)
    torch.manual_seed(1)
    payload["model"] = {
        k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in payload["model"].items()
    }
    torch.save(payload, tmp_path / "other.pt")

    single_a = Predictor(checkpoint, _options(save_probabilities=True)).predict(case)
    single_b = Predictor(tmp_path / "other.pt", _options(save_probabilities=True)).predict(case)
    both = Predictor([checkpoint, tmp_path / "other.pt"], _options(save_probabilities=True)).predict(case)
    mean = (single_a.probabilities_ras.float() + single_b.probabilities_ras.float()) / 2
    assert both.probabilities_ras.shape == single_a.probabilities_ras.shape == (3, *single_a.labels_ras.shape)
    torch.testing.assert_close(both.probabilities_ras.float(), mean, atol=2e-3, rtol=0)  # stored as float16
    assert both.labels_ras.shape == single_a.labels_ras.shape


def test_ensemble_probabilities_average_the_models(checkpoint):
    model, _ = model_from_checkpoint(load_checkpoint(checkpoint))
    image = torch.randn(4, 40, 40, 24)
    one = ensemble_probabilities([model.eval()], image, "regions", [32, 32, 16], _options(), torch.device("cpu"))
    two = ensemble_probabilities([model, model], image, "regions", [32, 32, 16], _options(), torch.device("cpu"))
    torch.testing.assert_close(one, two)
    assert one.shape == (3, 40, 40, 24) and float(one.min()) >= 0 and float(one.max()) <= 1


def test_a_checkpoint_with_an_unknown_normalisation_is_refused(checkpoint, tmp_path):
    payload = load_checkpoint(checkpoint)
    payload["normalisation"] = "n4"
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(BratsInputError, match=r"odd.pt: checkpoint normalisation 'n4' is not one of"):
        Predictor(tmp_path / "odd.pt")


def test_a_checkpoint_of_another_network_is_refused_in_an_ensemble(checkpoint, tmp_path):
    config = load_config(None, ["model.network=segresnet", "data.patch_size=[32,32,16]"])
    from brats3d.models import build_network
    from brats3d.models.checkpoint import save_checkpoint

    other = build_network("segresnet", [32, 32, 16])
    save_checkpoint(tmp_path / "segresnet.pt", other, config, "msd", epoch=1)
    with pytest.raises(
        BratsInputError, match=r"segresnet.pt: cannot ensemble with .*best.pt: network, network_kwargs differ"
    ):
        Predictor([checkpoint, tmp_path / "segresnet.pt"])
