"""Exports run without brats3d and give what `brats3d predict` gives: TorchScript, ONNX and a MONAI bundle."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from brats3d.cli import main
from brats3d.data.layouts import discover
from brats3d.inference.predict import PredictOptions, Predictor
from brats3d.inference.sliding_window import sliding_window_predict
from brats3d.models.checkpoint import load_checkpoint
from brats3d.transforms.intensity import NormalizeFlattenedd


def _whole_scan_probabilities(network, predictor: Predictor, case) -> torch.Tensor:
    image = predictor.chain(case.to_dict())["image"]
    return sliding_window_predict(network, image, predictor.window, predictor.target.name, amp="off")


@pytest.fixture
def case_and_predictor(checkpoint, make_dataset):
    case = discover(make_dataset("msd", cases=1, shape=(48, 48, 32))).cases[0]
    return case, Predictor(checkpoint, PredictOptions(pictures=False, amp="off"))


def test_torchscript_export_matches_predict_and_describes_itself(checkpoint, case_and_predictor, tmp_path):
    case, predictor = case_and_predictor
    assert main(["export", str(checkpoint), "--format", "torchscript", "--out", str(tmp_path)]) == 0
    extra = {"metadata.json": ""}
    module = torch.jit.load(str(tmp_path / "model.ts"), _extra_files=extra)
    metadata = json.loads(extra["metadata.json"])
    assert metadata["input"]["channels"] == ["flair", "t1", "t1ce", "t2"]
    assert metadata["input"]["voxel_spacing_mm"] == [1.0, 1.0, 1.0]  # what scans should be resampled to first
    assert metadata["output"]["channels"] == ["whole_tumour", "tumour_core", "enhancing_tumour"]
    assert metadata == json.loads((tmp_path / "metadata.json").read_text())
    exported = _whole_scan_probabilities(module, predictor, case)
    reference = _whole_scan_probabilities(predictor.models[0], predictor, case)
    assert float((exported - reference).abs().max()) < 1e-5  # same graph, same arithmetic


def test_onnx_export_runs_in_onnxruntime_and_matches_predict(checkpoint, case_and_predictor, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    case, predictor = case_and_predictor
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(tmp_path)]) == 0
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "model.onnx")).metadata_props}
    assert json.loads(props["brats3d"])["input"]["window"] == predictor.window

    class OnnxNetwork(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(session.run(None, {"image": x.numpy()})[0])

    exported = _whole_scan_probabilities(OnnxNetwork(), predictor, case)
    reference = _whole_scan_probabilities(predictor.models[0], predictor, case)
    assert float((exported - reference).abs().max()) < 1e-4  # ONNX Runtime's kernels round differently


@pytest.mark.slow
def test_monai_bundle_segments_a_scan_like_predict(checkpoint, case_and_predictor, tmp_path):
    case, predictor = case_and_predictor
    # A scan without background: predict's brain crop is then the whole scan, so both tile the same windows and
    # any difference comes from the bundle's own preprocessing and post-processing.
    img = nib.load(str(case.images[0]))
    data = np.asanyarray(img.dataobj).astype(np.float32)
    nib.save(nib.Nifti1Image(np.where(data == 0, 1.0, data), img.affine), str(case.images[0]))
    bundle = tmp_path / "bundle"
    assert main(["export", str(checkpoint), "--format", "bundle", "--out", str(bundle)]) == 0
    assert {p.name for p in (bundle / "configs").iterdir()} == {"metadata.json", "inference.json"}
    out = tmp_path / "out"
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json")]
    command += ["--bundle_root", str(bundle), "--image", str(case.images[0]), "--output_dir", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=300)
    written = list(out.glob("*_seg.nii.gz"))
    assert len(written) == 1
    from_bundle = nib.load(str(written[0]))
    ours = predictor.predict(case).labels_in_source_order()
    assert from_bundle.shape[:3] == ours.shape and np.allclose(from_bundle.affine, img.affine)
    np.testing.assert_array_equal(np.asanyarray(from_bundle.dataobj).reshape(ours.shape), ours)

    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["bundle_root"], parser["image"] = str(bundle), str(case.images[0])
    parser.get_parsed_content("load")
    from_config = parser.get_parsed_content("probabilities")
    reference = _whole_scan_probabilities(predictor.models[0], predictor, case)
    assert float((from_config - reference).abs().max()) < 1e-5


def test_a_flattened_model_is_exported_with_brats3d_s_normalisation_and_says_so(checkpoint, make_dataset, tmp_path):
    payload = load_checkpoint(checkpoint)
    payload["normalisation"] = payload["config"]["data"]["normalisation"] = "flattened"
    torch.save(payload, tmp_path / "flattened.pt")
    bundle = tmp_path / "bundle"
    assert main(["export", str(tmp_path / "flattened.pt"), "--format", "bundle", "--out", str(bundle)]) == 0
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert "polynomial" in metadata["brats3d"]["input"]["normalisation"]
    assert "brats3d" in metadata["optional_packages_version"]  # its preprocessing needs brats3d installed

    case = discover(make_dataset("msd", cases=1, shape=(48, 48, 32))).cases[0]
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["image"] = str(case.images[0])
    image = parser.get_parsed_content("data")["image"]
    raw = torch.as_tensor(np.moveaxis(np.asanyarray(nib.load(str(case.images[0])).dataobj), -1, 0)).float()
    expected = NormalizeFlattenedd(keys="image")({"image": raw})["image"]
    torch.testing.assert_close(torch.as_tensor(image).float(), torch.as_tensor(expected).float(), atol=1e-4, rtol=0)


def test_a_model_with_asymmetry_channels_exports_eight_inputs_and_its_bundle_computes_them(
    make_dataset, mirror_checkpoint, tmp_path
):
    assert main(["export", str(mirror_checkpoint), "--format", "torchscript", "--out", str(tmp_path / "ts")]) == 0
    metadata = json.loads((tmp_path / "ts" / "metadata.json").read_text())
    assert metadata["input"]["channels"][4:] == [f"{m}_mirror_difference" for m in ("flair", "t1", "t1ce", "t2")]
    assert "mirror image" in metadata["input"]["mirror_difference"]
    module = torch.jit.load(str(tmp_path / "ts" / "model.ts"))
    assert module(torch.zeros(1, 8, 32, 32, 16)).shape == (1, 3, 32, 32, 16)

    bundle = tmp_path / "bundle"
    assert main(["export", str(mirror_checkpoint), "--format", "bundle", "--out", str(bundle)]) == 0
    bundle_metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert bundle_metadata["network_data_format"]["inputs"]["image"]["num_channels"] == 8
    assert "brats3d" in bundle_metadata["optional_packages_version"]
    case = discover(make_dataset("msd", cases=1, shape=(48, 48, 32))).cases[0]
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    parser["image"] = str(case.images[0])
    assert parser.get_parsed_content("data")["image"].shape[0] == 8
    network_def = parser.get_parsed_content("network_def")
    assert next(m for m in network_def.modules() if isinstance(m, torch.nn.Conv3d)).in_channels == 8


def test_a_deeply_supervised_dynunet_exports_as_plain_monai_with_one_output(tmp_path):
    from brats3d.config import load_config
    from brats3d.models import build_network
    from brats3d.models.checkpoint import save_checkpoint

    config = load_config(None, ["model.network=dynunet", "model.kwargs={filters: [4, 8, 16, 32, 64]}"])
    config.data.patch_size = [32, 32, 16]
    model = build_network("dynunet", (32, 32, 16), kwargs=config.model.kwargs).eval()
    save_checkpoint(tmp_path / "dyn.pt", model, config, "brats2021")
    image = torch.randn(1, 4, 32, 32, 16)
    with torch.no_grad():
        reference = model(image)

    assert main(["export", str(tmp_path / "dyn.pt"), "--format", "torchscript", "--out", str(tmp_path / "ts")]) == 0
    with torch.no_grad():
        assert torch.allclose(torch.jit.load(str(tmp_path / "ts" / "model.ts"))(image), reference, atol=1e-5)

    assert main(["export", str(tmp_path / "dyn.pt"), "--format", "bundle", "--out", str(tmp_path / "bundle")]) == 0
    parser = ConfigParser()
    parser.read_config(str(tmp_path / "bundle" / "configs" / "inference.json"))
    assert parser["network_def"]["_target_"] == "monai.networks.nets.DynUNet"
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(tmp_path / "bundle" / "models" / "model.pt", weights_only=True))
    with torch.no_grad():
        assert torch.allclose(network.eval()(image), reference, atol=1e-5)
