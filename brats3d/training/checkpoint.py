"""The one checkpoint format: self-describing (predict needs nothing else) and written atomically."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from brats3d import __version__
from brats3d.config import RunConfig, config_from_dict
from brats3d.data.layouts import MODALITIES
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path
from brats3d.models import build_network

FORMAT = "brats3d-checkpoint-v1"


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside DDP (or torch.compile) wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or model._orig_mod
    return model


def save_checkpoint(path: str | Path, model: nn.Module, config: RunConfig, label_convention: str, **state: Any) -> None:
    """Weights plus everything needed to use them (network, target, channels, normalisation, patch, labels)."""
    payload = {
        "format": FORMAT,
        "brats3d_version": __version__,
        "network": config.model.network,
        "network_kwargs": config.model.kwargs,
        "target": config.model.target,
        "modalities": list(MODALITIES),
        "normalisation": config.data.normalisation,
        "patch_size": list(config.data.patch_size),
        "label_convention": label_convention,
        "config": config.to_dict(),
        "model": unwrap(model).state_dict(),
        **state,
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise BratsInputError(path, "checkpoint not found")
    try:
        # weights_only=False: our checkpoints hold numpy RNG state and plain dicts; load only files you trust.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise BratsInputError(path, f"not a readable checkpoint ({str(exc).splitlines()[0][:120]})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise BratsInputError(path, f"not a brats3d checkpoint (expected format {FORMAT})")
    if list(payload["modalities"]) != list(MODALITIES):
        raise BratsInputError(path, f"checkpoint channel order {payload['modalities']} differs from {list(MODALITIES)}")
    return payload


def model_from_checkpoint(payload: dict[str, Any]) -> tuple[nn.Module, RunConfig]:
    """Rebuild the network and its config from a loaded checkpoint."""
    config = config_from_dict(payload["config"])
    model = build_network(payload["network"], payload["patch_size"], payload["target"], payload["network_kwargs"])
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as exc:
        raise BratsInputError(None, f"checkpoint weights do not fit network {payload['network']}: {exc}") from exc
    return model, config
