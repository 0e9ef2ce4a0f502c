"""Export a checkpoint's network so that it runs without brats3d: TorchScript, ONNX, or a MONAI bundle.

Every export carries ``metadata.json`` (inside the TorchScript file and the ONNX model too) saying what the network
expects and returns: input (N, 4, X, Y, Z) in the channel order FLAIR, T1, T1ce, T2, voxel axes in RAS order, each
channel standardised to zero mean and unit variance over the brain (voxels where any channel is non-zero), zero
outside; output logits per region (WT, TC, ET: sigmoid, then the thresholds, nested ET ⊂ TC ⊂ WT) or per class
(softmax, then summed into the regions and thresholded alike). Whole scans are segmented with a sliding window
of the recipe's inference window (``inference.window``, else the training patch; Gaussian blending, overlap 0.5),
as ``brats3d predict`` does; TorchScript and ONNX are traced at that window's size. The bundle
(``configs/metadata.json``, ``configs/inference.json``, ``models/model.pt``) does all of that itself: ``python -m
monai.bundle run --config_file BUNDLE/configs/inference.json --bundle_root BUNDLE --image SCAN --output_dir OUT``
writes ``OUT/<scan>_seg.nii.gz`` in the training data's label numbering.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from brats3d import __version__
from brats3d.config import SLICES, config_from_dict
from brats3d.data.labels import LabelConvention, from_canonical
from brats3d.data.targets import get_target
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path, ensure_output_dir
from brats3d.models.checkpoint import load_checkpoint, model_from_checkpoint, network_of
from brats3d.models.registry import NETWORKS, network_arguments
from brats3d.transforms.symmetry import image_channel_names

FORMATS = ("torchscript", "onnx", "bundle")
ONNX_OPSET = 17


# How labels follow from the outputs, for a user who runs the exported network without brats3d.
SOFTMAX_TO_REGIONS = (
    "region probabilities from the softmax: WT = 1 - background, TC = non-enhancing + enhancing, ET = enhancing; "
)
REGIONS_TO_LABELS = (
    "a voxel is whole tumour, tumour core, enhancing when its region passes the threshold and the outer regions do "
    "too (ET ⊂ TC ⊂ WT); edema = WT - TC, non-enhancing = TC - ET"
)


BRAIN_STANDARDISED = "zero mean, unit variance over brain voxels (any channel non-zero); 0 outside the brain"
NORMALISATION_TEXT = {
    "brain": f"per channel: {BRAIN_STANDARDISED}",
    "slice": "per channel and axial slice: zero mean, unit variance over the slice's non-zero voxels; 0 elsewhere",
    "flattened": "per channel: divided by exp of a degree-2 polynomial in the voxel coordinates, even in the "
    "left-right one about the brain's centre, fitted to log intensity over the brain "
    "(brats3d.transforms.intensity.smooth_log_field), then " + BRAIN_STANDARDISED,
}


MIRROR_TEXT = (
    "each channel minus its mirror image across the brain's mid-sagittal plane (left-right, array axis 0), "
    "Gaussian-smoothed (brats3d.transforms.symmetry.mirror_differences), appended after the normalised channels"
)


def export_metadata(payload: dict[str, Any]) -> dict[str, Any]:
    """What an exported network expects and returns, from a loaded checkpoint."""
    config = payload["config"]
    target = get_target(payload["target"])
    rules = config.get("postprocessing", {})
    return {
        "exported_by": f"brats3d {__version__}",
        "network": payload["network"],
        "network_kwargs": payload["network_kwargs"],
        "input": {
            "name": "image",
            "layout": "N, C, X, Y, Z (float32); voxel axes in RAS order",
            "channels": image_channel_names(payload["mirror_difference"]),
            "normalisation": NORMALISATION_TEXT[payload["normalisation"]],
            **({"mirror_difference": MIRROR_TEXT} if payload["mirror_difference"] else {}),
            "patch_size": payload["patch_size"],  # what it was trained on
            # the median voxel spacing (mm, RAS axes) of its training scans: resample other scans to it first
            **({"voxel_spacing_mm": payload["spacing"]} if payload.get("spacing") else {}),
            # what whole scans are segmented with (inference.window, else the patch), and the traced input size
            "window": config_from_dict(config).inference_window,
        },
        "output": {
            "name": "logits",
            "layout": "N, C, X, Y, Z",
            "channels": list(target.channel_names),
            "activation": "sigmoid" if target.sigmoid else "softmax",
            "thresholds": rules.get("thresholds", [0.5, 0.5, 0.5]),
            "labels": ("" if target.sigmoid else SOFTMAX_TO_REGIONS) + REGIONS_TO_LABELS,
        },
        "whole_scan": "sliding window of size window, Gaussian blending, overlap 0.5; labels outside the brain are 0",
        "training_label_convention": payload["label_convention"],
    }


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, fmt: str) -> list[Path]:
    """Write ``fmt`` (one of FORMATS) for ``checkpoint`` into ``out_dir``; returns the files written."""
    if fmt not in FORMATS:
        raise BratsInputError(None, f"export format must be one of {FORMATS}, got {fmt!r}")
    payload = load_checkpoint(checkpoint)
    if payload.get("kind") == SLICES:
        raise BratsInputError(
            checkpoint,
            "a 2D slice model: export covers the 3D scan networks only (their inputs and outputs are "
            "what metadata.json and the MONAI bundle describe)",
        )
    model, _ = model_from_checkpoint(payload)
    model.eval()
    out_dir = ensure_output_dir(out_dir)
    metadata = export_metadata(payload)
    example = torch.zeros(1, len(metadata["input"]["channels"]), *metadata["input"]["window"])
    if fmt == "torchscript":
        return [_torchscript(model, example, metadata, out_dir / "model.ts"), _json(metadata, out_dir)]
    if fmt == "onnx":
        return [_onnx(model, example, metadata, out_dir / "model.onnx"), _json(metadata, out_dir)]
    return _bundle(model, payload, metadata, out_dir)


def _json(metadata: dict, out_dir: Path, name: str = "metadata.json") -> Path:
    path = out_dir / name
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(metadata, indent=2))
    return path


def _torchscript(model: torch.nn.Module, example: torch.Tensor, metadata: dict, path: Path) -> Path:
    with torch.no_grad():
        traced = torch.jit.trace(model, example)
    with atomic_path(path) as tmp:
        torch.jit.save(traced, str(tmp), _extra_files={"metadata.json": json.dumps(metadata)})
    return path


def _onnx(model: torch.nn.Module, example: torch.Tensor, metadata: dict, path: Path) -> Path:
    try:
        import onnx
    except ImportError as exc:
        raise BratsInputError(None, "ONNX export needs the onnx package: pip install 'brats3d[export]'") from exc
    with atomic_path(path) as tmp:
        # The TorchScript-based exporter: the network is a plain feed-forward graph, and it needs no onnxscript.
        torch.onnx.export(
            model,
            (example,),
            str(tmp),
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "brats3d", json.dumps(metadata)
        onnx.save(proto, str(tmp))
    return path


def _bundle(model: torch.nn.Module, payload: dict, metadata: dict, out_dir: Path) -> list[Path]:
    """A MONAI bundle whose ``run`` segments one scan with the saved weights and MONAI transforms (plus brats3d's own
    normalisation where the model was trained with one other than ``brain``, and its asymmetry channels)."""
    target = metadata["output"]
    if target["activation"] != "sigmoid":
        raise BratsInputError(None, "bundle export supports region (sigmoid) models, the default target")
    (out_dir / "configs").mkdir(exist_ok=True)
    (out_dir / "models").mkdir(exist_ok=True)
    weights = out_dir / "models" / "model.pt"
    with atomic_path(weights) as tmp:
        torch.save(model.state_dict(), tmp)
    convention = LabelConvention(payload["label_convention"])
    # canonical 0..3 (background, edema, non-enhancing, enhancing) -> the training data's numbering
    file_labels = [int(v) for v in from_canonical(torch.arange(4).numpy(), convention)]
    bundle_metadata = {
        "version": "0.1.0",
        "monai_version": _monai_version(),
        "pytorch_version": torch.__version__.split("+")[0],
        "name": f"brats3d {payload['network']} brain tumour segmentation",
        "task": "Brain tumour segmentation (BraTS regions) in multi-modal MRI",
        "description": "Exported by brats3d; see brats3d's metadata below for inputs and outputs.",
        "authors": "brats3d",
        "copyright": "brats3d contributors",
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "num_channels": len(metadata["input"]["channels"]),
                    "spatial_shape": metadata["input"]["window"],
                    "dtype": "float32",
                    "value_range": [],
                    "is_patch_data": True,
                    "channel_def": dict(enumerate(metadata["input"]["channels"])),
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "segmentation",
                    "num_channels": len(target["channels"]),
                    "spatial_shape": metadata["input"]["window"],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": True,
                    "channel_def": dict(enumerate(target["channels"])),
                }
            },
        },
        "brats3d": metadata,
    }
    if payload["normalisation"] != "brain" or payload["mirror_difference"]:  # preprocessing with brats3d transforms
        bundle_metadata["optional_packages_version"] = {"brats3d": __version__}
    inference = _inference_config(payload, metadata["input"]["window"], target["thresholds"], file_labels)
    return [
        weights,
        _json(bundle_metadata, out_dir / "configs"),
        _json(inference, out_dir / "configs", "inference.json"),
    ]


def _bundle_normalisation(method: str) -> dict:
    """The bundle's standardisation: MONAI's own for ``brain``; the other methods are brats3d's transforms, so a
    bundle of such a model needs brats3d installed (its metadata says so)."""
    if method == "slice":
        return {"_target_": "brats3d.transforms.intensity.NormalizeSlicesd", "keys": "image"}
    if method == "flattened":
        return {"_target_": "brats3d.transforms.intensity.NormalizeFlattenedd", "keys": "image"}
    return {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}


def _inference_config(payload: dict, window: list[int], thresholds: list[float], file_labels: list[int]) -> dict:
    """MONAI bundle config: load (one 4D file or four files in the channel order), RAS, standardise over the brain,
    sliding window, sigmoid, nested thresholds, labels in the training numbering, zero outside the brain, save."""
    spec = NETWORKS[payload["network"]]
    arguments = network_arguments(**network_of(payload))
    net = {"_target_": f"monai.networks.nets.{spec.cls.__name__}", **json.loads(json.dumps(arguments))}
    t = thresholds
    return {
        "imports": ["$import torch", "$import monai"],
        "bundle_root": ".",
        "image": "",
        "output_dir": "$@bundle_root + '/eval'",
        "device": "$torch.device('cuda' if torch.cuda.is_available() else 'cpu')",
        "network_def": net,
        "network": "$@network_def.to(@device).eval()",
        "load": "$@network.load_state_dict(torch.load(@bundle_root + '/models/model.pt', map_location=@device, "
        "weights_only=True))",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image", "image_only": True},
                {"_target_": "EnsureChannelFirstd", "keys": "image"},
                {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"},
                _bundle_normalisation(payload["normalisation"]),
                *(
                    [{"_target_": "brats3d.transforms.symmetry.AddMirrorDifferenced", "keys": "image"}]
                    if payload["mirror_difference"]
                    else []
                ),
                {"_target_": "EnsureTyped", "keys": "image", "dtype": "$torch.float32"},
            ],
        },
        "inferer": {
            "_target_": "SlidingWindowInferer",
            "roi_size": window,
            "sw_batch_size": 4,
            "overlap": 0.5,
            "mode": "gaussian",
        },
        "data": "$@preprocessing({'image': @image})",
        "probabilities": "$torch.sigmoid(@inferer(@data['image'][None].to(@device), @network))[0].cpu()",
        "brain": "$(@data['image'] != 0).any(0)",
        "wt": f"$(@probabilities[0] > {t[0]})",
        "tc": f"$(@probabilities[1] > {t[1]}) & @wt",
        "et": f"$(@probabilities[2] > {t[2]}) & @tc",
        "labels": f"$(torch.where(@et, {file_labels[3]}, torch.where(@tc, {file_labels[2]}, "
        f"torch.where(@wt, {file_labels[1]}, 0))) * @brain).to(torch.uint8)[None]",
        "segmentation": "$monai.data.MetaTensor(@labels, meta=@data['image'].meta)",
        "saver": {
            "_target_": "SaveImage",
            "output_dir": "@output_dir",
            "output_postfix": "seg",
            "output_dtype": "$torch.uint8",
            "resample": False,
            "separate_folder": False,
        },
        "run": ["$torch.set_grad_enabled(False)", "$@load", "$@saver(@segmentation)"],
    }


def _monai_version() -> str:
    import monai

    return monai.__version__
