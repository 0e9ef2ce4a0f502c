"""Build a MONAI network by name, with the patch-size rules each one needs checked up front.

All networks take the four MRI channels and output one logit per channel of their ``Target`` (data/targets.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn as nn
from monai.networks.nets import UNETR, AttentionUnet, SegResNet, SwinUNETR, UNet, VNet

from brats3d.data.layouts import MODALITIES
from brats3d.data.targets import REGIONS, get_target
from brats3d.errors import BratsInputError


@dataclass(frozen=True)
class NetworkSpec:
    """A MONAI network class and the constructor arguments brats3d gives it (``model.kwargs`` win over them)."""

    cls: type[nn.Module]
    defaults: dict[str, Any]
    divisor: int  # every patch dimension must be a multiple of this
    summary: str
    takes_img_size: bool = False  # transformer encoders are built for one input size: the patch


NETWORKS: dict[str, NetworkSpec] = {
    "unet3d": NetworkSpec(
        UNet,
        {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2, "norm": "INSTANCE"},
        16,
        "MONAI UNet, 5 levels, residual units, instance norm",
    ),
    # MONAI's default dropout of 0.5 everywhere slows convergence badly on small datasets; 0.1 is a saner default.
    "vnet": NetworkSpec(
        VNet, {"dropout_prob_down": 0.1, "dropout_prob_up": (0.1, 0.1)}, 16, "MONAI VNet (Milletari et al. 2016)"
    ),
    "segresnet": NetworkSpec(
        SegResNet,
        {"init_filters": 16, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)},
        8,
        "MONAI SegResNet (Myronenko 2018, BraTS winner)",
    ),
    "attention_unet": NetworkSpec(
        AttentionUnet, {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)}, 16, "MONAI AttentionUnet"
    ),
    "unetr": NetworkSpec(
        UNETR,
        {"feature_size": 16, "hidden_size": 384, "mlp_dim": 1536, "num_heads": 6},
        16,
        "MONAI UNETR (transformer encoder; fixed input size = patch size)",
        takes_img_size=True,
    ),
    "swin_unetr": NetworkSpec(
        SwinUNETR, {"feature_size": 24}, 32, "MONAI SwinUNETR (every patch dimension a multiple of 32)"
    ),
}


def network_arguments(
    name: str, patch_size: Sequence[int], target: str = REGIONS, kwargs: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Every constructor argument of the named network for 4-channel input (also what an exported bundle uses)."""
    spec = NETWORKS[name]
    args = {"spatial_dims": 3, "in_channels": len(MODALITIES), "out_channels": get_target(target).out_channels}
    if spec.takes_img_size:
        args["img_size"] = tuple(patch_size)
    return {**args, **spec.defaults, **dict(kwargs or {})}


def check_network(name: str, patch_size: Sequence[int]) -> str | None:
    """What is wrong with network ``name`` for ``patch_size`` (unknown name, indivisible patch), or None."""
    if name not in NETWORKS:
        return f"unknown network {name!r} (model.network); choose one of {', '.join(NETWORKS)}"
    divisor = NETWORKS[name].divisor
    if any(p % divisor for p in patch_size):
        return f"{name} needs every patch dimension divisible by {divisor}; patch {list(patch_size)} is not"
    return None


def build_network(
    name: str, patch_size: Sequence[int], target: str = REGIONS, kwargs: dict[str, Any] | None = None
) -> nn.Module:
    """The named network for 4-channel input; a patch size it cannot take is a clear error."""
    problem = check_network(name, patch_size)
    if problem:
        raise BratsInputError(None, problem)
    try:
        model = NETWORKS[name].cls(**network_arguments(name, patch_size, target, kwargs))
    except TypeError as exc:
        raise BratsInputError(None, f"model.kwargs do not fit {name}: {exc}") from exc
    return model
