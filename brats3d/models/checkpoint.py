"""The one checkpoint format: self-describing (predict needs nothing else), written atomically, and loaded as data.

A checkpoint from someone else is data, never code: it is read with ``torch.load(weights_only=True)``, which
refuses any pickled object beyond tensors and plain containers, so a file crafted to run code fails to load instead.
Everything we store is of those types (RNG states included: numpy's as a plain dict). Checkpoints of the first
format (``brats3d-checkpoint-v1``) held numpy's RNG state as an array; only the numpy array types are allowed
on top, so they still load.
"""

from __future__ import annotations

import math
import pickle
import random
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from brats3d import __version__
from brats3d.config import SLICES, AnyConfig, SliceRunConfig, config_from_dict
from brats3d.data.layouts import MODALITIES
from brats3d.data.targets import slice_target
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path
from brats3d.models.registry import build_network
from brats3d.transforms.intensity import NORMALISATIONS
from brats3d.transforms.symmetry import image_channels

FORMAT = "brats3d-checkpoint-v2"
READABLE_FORMATS = ("brats3d-checkpoint-v1", FORMAT)
# numpy arrays inside v1 checkpoints (the RNG state); reconstructing an array runs no user code.
_NUMPY_CORE = getattr(np, "_core", None) or np.core  # numpy 2 renamed the module that pickles name
_LEGACY_NUMPY = [_NUMPY_CORE.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def rng_state() -> dict[str, Any]:
    """Python, numpy and torch RNG states in types a weights-only load accepts."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state["state"]["key"] = torch.from_numpy(numpy_state["state"]["key"].astype(np.int64))
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = {**numpy_state, "state": dict(numpy_state["state"])}
        numpy_state["state"]["key"] = np.asarray(numpy_state["state"]["key"], dtype=np.uint32)
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside DDP (or torch.compile) wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def _description(config: AnyConfig) -> dict[str, Any]:
    """What a checkpoint says about its network: enough to rebuild it and to prepare its input."""
    if isinstance(config, SliceRunConfig):
        return {
            "kind": SLICES,
            "network": config.model.network,
            "network_kwargs": config.model.kwargs,
            "in_channels": config.model.in_channels,
            "class_values": list(config.data.class_values),
            "image_size": list(config.data.image_size),
        }
    return {
        "network": config.model.network,
        "network_kwargs": config.model.kwargs,
        "target": config.model.target,
        "modalities": list(MODALITIES),
        "normalisation": config.data.normalisation,
        "mirror_difference": config.data.mirror_difference,
        "patch_size": list(config.data.patch_size),
    }


def save_checkpoint(path: str | Path, model: nn.Module, config: AnyConfig, label_convention: str, **state: Any) -> None:
    """Weights plus everything needed to use them (network, target, channels, normalisation, patch, labels)."""
    payload = {
        "format": FORMAT,
        "brats3d_version": __version__,
        **_description(config),
        "label_convention": label_convention,
        "config": config.to_dict(),
        "model": unwrap(model).state_dict(),
        **state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", *, mmap: bool = False
) -> dict[str, Any]:
    """Read a checkpoint as data (weights-only unpickling); anything else is a one-line BratsInputError.

    ``mmap`` maps the tensors instead of reading them: for callers that only look at the metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise BratsInputError(path, "checkpoint not found")
    if not zipfile.is_zipfile(path):
        # torch.save has written zip archives since PyTorch 1.6; anything else (a bare pickle, the legacy format,
        # junk) is refused before a byte of it is unpickled, with a message that says so rather than torch's.
        raise BratsInputError(
            path,
            "not a readable checkpoint (not a PyTorch zip archive: truncated, or a bare or legacy pickle, "
            "which brats3d does not unpickle)",
        )
    try:
        with torch.serialization.safe_globals(_LEGACY_NUMPY):
            payload = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        # PyTorch names a refused global differently across versions ("Unsupported global: GLOBAL x.y",
        # "unsupported GLOBAL x.y whose module ..."); the name follows the word GLOBAL in both. Without one, the
        # file is no pickle at all (junk, truncated).
        name = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
        if name is None:
            raise BratsInputError(path, "not a readable checkpoint (not a PyTorch file, or truncated)") from exc
        raise BratsInputError(
            path,
            f"refused: the file asks to run or build Python object {name.group(1)}, which could execute code; "
            "brats3d checkpoints hold only weights and plain data, so this is not one (nothing from it was run)",
        ) from exc
    except Exception as exc:
        raise BratsInputError(path, f"not a readable checkpoint ({_first_line(exc)})") from exc
    if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
        raise BratsInputError(path, f"not a brats3d checkpoint (expected format {FORMAT})")
    if payload.get("kind") != SLICES and list(payload["modalities"]) != list(MODALITIES):
        raise BratsInputError(path, f"checkpoint channel order {payload['modalities']} differs from {list(MODALITIES)}")
    if payload.get("kind") != SLICES and payload.get("normalisation") not in NORMALISATIONS:
        raise BratsInputError(
            path, f"checkpoint normalisation {payload.get('normalisation')!r} is not one of {NORMALISATIONS}"
        )
    if payload.get("kind") != SLICES:
        payload.setdefault("mirror_difference", False)  # checkpoints from before the option
        if not isinstance(payload["mirror_difference"], bool):
            raise BratsInputError(path, f"checkpoint mirror_difference {payload['mirror_difference']!r} is not a bool")
        if not _is_spacing(payload.setdefault("spacing", None)):  # None: from before training spacings were kept
            raise BratsInputError(path, f"checkpoint spacing {payload['spacing']!r} is not three positive mm values")
    return payload


def _is_spacing(value: Any) -> bool:
    if value is None:
        return True
    numbers = isinstance(value, list | tuple) and all(type(v) in (int, float) for v in value)  # no bools
    return numbers and len(value) == 3 and all(math.isfinite(v) and v > 0 for v in value)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:120]


def network_of(payload: dict[str, Any]) -> dict[str, Any]:
    """The arguments of ``build_network`` (and ``network_arguments``) that rebuild a 3D checkpoint's network."""
    return {
        "name": payload["network"],
        "patch_size": payload["patch_size"],
        "target": payload["target"],
        "kwargs": payload["network_kwargs"],
        "in_channels": image_channels(payload["mirror_difference"]),
    }


def model_from_checkpoint(payload: dict[str, Any]) -> tuple[nn.Module, AnyConfig]:
    """Rebuild the network and its config from a loaded checkpoint (3D, or 2D with ``kind: slices2d``)."""
    config = config_from_dict(payload["config"])
    if payload.get("kind") == SLICES:
        channels = (payload["in_channels"], slice_target(payload["class_values"]).out_channels)
        model = build_network(
            payload["network"], payload["image_size"], kwargs=payload["network_kwargs"], channels=channels
        )
    else:
        model = build_network(**network_of(payload))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise BratsInputError(None, f"checkpoint weights do not fit network {payload['network']}: {exc}") from exc
    return model, config


def checkpoint_kind(path: str | Path) -> str:
    """``slices2d`` for a 2D checkpoint, else ``scans3d`` (read as data, like any checkpoint; weights left unread)."""
    return load_checkpoint(path, mmap=True).get("kind", "scans3d")
