"""Build a MONAI network by name, with the patch-size rules each one needs checked up front.

All networks take the four MRI channels and output one logit per channel of their ``Target`` (data/targets.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn as nn
from monai.networks.nets import UNETR, AttentionUnet, SegResNet, SwinUNETR, UNet, VNet

from brats3d.data.layouts import MODALITIES
from brats3d.data.targets import REGIONS, get_target
from brats3d.errors import BratsInputError


@dataclass(frozen=True)
class NetworkSpec:
    build: Callable[[int, int, Sequence[int], dict[str, Any]], nn.Module]
    divisor: int  # every patch dimension must be a multiple of this
    summary: str


def _unet3d(cin: int, cout: int, patch: Sequence[int], kw: dict[str, Any]) -> nn.Module:
    args = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2, "norm": "INSTANCE"}
    return UNet(spatial_dims=3, in_channels=cin, out_channels=cout, **{**args, **kw})


def _vnet(cin: int, cout: int, patch: Sequence[int], kw: dict[str, Any]) -> nn.Module:
    # MONAI's default dropout of 0.5 everywhere slows convergence badly on small datasets; 0.1 is a saner default.
    args = {"dropout_prob_down": 0.1, "dropout_prob_up": (0.1, 0.1)}
    return VNet(spatial_dims=3, in_channels=cin, out_channels=cout, **{**args, **kw})


def _segresnet(cin: int, cout: int, patch: Sequence[int], kw: dict[str, Any]) -> nn.Module:
    args = {"init_filters": 16, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)}
    return SegResNet(spatial_dims=3, in_channels=cin, out_channels=cout, **{**args, **kw})


def _attention_unet(cin: int, cout: int, patch: Sequence[int], kw: dict[str, Any]) -> nn.Module:
    args = {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2)}
    return AttentionUnet(spatial_dims=3, in_channels=cin, out_channels=cout, **{**args, **kw})


def _unetr(cin: int, cout: int, patch: Sequence[int], kw: dict[str, Any]) -> nn.Module:
    args = {"feature_size": 16, "hidden_size": 384, "mlp_dim": 1536, "num_heads": 6}
    return UNETR(in_channels=cin, out_channels=cout, img_size=tuple(patch), **{**args, **kw})


def _swin_unetr(cin: int, cout: int, patch: Sequence[int], kw: dict[str, Any]) -> nn.Module:
    return SwinUNETR(in_channels=cin, out_channels=cout, **{"feature_size": 24, **kw})


NETWORKS: dict[str, NetworkSpec] = {
    "unet3d": NetworkSpec(_unet3d, 16, "MONAI UNet, 5 levels, residual units, instance norm"),
    "vnet": NetworkSpec(_vnet, 16, "MONAI VNet (Milletari et al. 2016)"),
    "segresnet": NetworkSpec(_segresnet, 8, "MONAI SegResNet (Myronenko 2018, BraTS winner)"),
    "attention_unet": NetworkSpec(_attention_unet, 16, "MONAI AttentionUnet"),
    "unetr": NetworkSpec(_unetr, 16, "MONAI UNETR (transformer encoder; fixed input size = patch size)"),
    "swin_unetr": NetworkSpec(_swin_unetr, 32, "MONAI SwinUNETR (every patch dimension a multiple of 32)"),
}


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
        model = NETWORKS[name].build(len(MODALITIES), get_target(target).out_channels, patch_size, dict(kwargs or {}))
    except TypeError as exc:
        raise BratsInputError(None, f"model.kwargs do not fit {name}: {exc}") from exc
    return model
