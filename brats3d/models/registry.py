"""Build a MONAI network by name, with the patch-size rules each one needs checked up front.

3D networks take the four MRI channels and output one logit per channel of their ``Target`` (data/targets.py);
2D networks (names ending in ``2d``) take the channels of a slice dataset and output one logit (binary) or one per
class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch.nn as nn
from monai.networks.nets import UNETR, AttentionUnet, BasicUNetPlusPlus, DynUNet, SegResNet, SwinUNETR, UNet, VNet

from brats3d.data.layouts import MODALITIES
from brats3d.data.targets import REGIONS, get_target
from brats3d.errors import BratsInputError
from brats3d.models.fcn import FCN


@dataclass(frozen=True)
class NetworkSpec:
    """A MONAI network class and the constructor arguments brats3d gives it (``model.kwargs`` win over them)."""

    cls: type[nn.Module]
    defaults: dict[str, Any]
    divisor: int  # every patch dimension must be a multiple of this
    summary: str
    takes_img_size: bool = False  # transformer encoders are built for one input size: the patch
    dims: int = 3  # spatial dimensions: 3 for scans, 2 for slices


class UNetPlusPlus(BasicUNetPlusPlus):
    """MONAI's UNet++ returns a list of outputs (for deep supervision); the rest of brats3d expects one tensor."""

    def forward(self, x):
        return super().forward(x)[0]


NETWORKS: dict[str, NetworkSpec] = {
    "unet3d": NetworkSpec(
        UNet,
        {"channels": (16, 32, 64, 128, 256), "strides": (2, 2, 2, 2), "num_res_units": 2, "norm": "INSTANCE"},
        16,
        "MONAI UNet, 5 levels, residual units, instance norm",
    ),
    # nnU-Net's U-Net: two plain convolutions per level, instance norm, leaky ReLU; the 16-256 filters of unet3d. In
    # training it returns the full-resolution logits stacked with those of the two coarser decoder levels (upsampled),
    # which models.losses.DeeplySupervised scores; in evaluation the full-resolution logits alone.
    "dynunet": NetworkSpec(
        DynUNet,
        {
            "kernel_size": (3, 3, 3, 3, 3),
            "strides": (1, 2, 2, 2, 2),
            "upsample_kernel_size": (2, 2, 2, 2),
            "filters": (16, 32, 64, 128, 256),
            "norm_name": "INSTANCE",
            "deep_supervision": True,
            "deep_supr_num": 2,
        },
        16,
        "MONAI DynUNet (nnU-Net's U-Net, 5 levels), deep supervision of the two coarser decoder levels",
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
    # 2D, for slice datasets (LGG brain MRI, ultrasound, CT).
    "unet2d": NetworkSpec(
        UNet,
        {"channels": (32, 64, 128, 256, 512), "strides": (2, 2, 2, 2), "num_res_units": 0, "norm": "BATCH"},
        16,
        "2D U-Net (Ronneberger et al. 2015): two convolutions per level, batch norm",
        dims=2,
    ),
    "resunet2d": NetworkSpec(
        UNet,
        {"channels": (32, 64, 128, 256, 512), "strides": (2, 2, 2, 2), "num_res_units": 2, "norm": "BATCH"},
        16,
        "2D residual U-Net (MONAI UNet with residual units, batch norm)",
        dims=2,
    ),
    "attention_unet2d": NetworkSpec(
        AttentionUnet, {"channels": (32, 64, 128, 256, 512), "strides": (2, 2, 2, 2)}, 16, "2D Attention U-Net", dims=2
    ),
    "unetplusplus2d": NetworkSpec(
        UNetPlusPlus, {"features": (32, 32, 64, 128, 256, 32)}, 16, "2D UNet++ (MONAI BasicUNetPlusPlus)", dims=2
    ),
    "segresnet2d": NetworkSpec(
        SegResNet,
        {"init_filters": 32, "blocks_down": (1, 2, 2, 4), "blocks_up": (1, 1, 1)},
        8,
        "2D SegResNet",
        dims=2,
    ),
    "fcn2d": NetworkSpec(
        FCN, {"features": (32, 64, 128, 256)}, 16, "2D fully convolutional network (FCN-8s style)", dims=2
    ),
}


def network_arguments(
    name: str,
    patch_size: Sequence[int],
    target: str = REGIONS,
    kwargs: dict[str, Any] | None = None,
    channels: tuple[int, int] | None = None,
    in_channels: int | None = None,
) -> dict[str, Any]:
    """Every constructor argument of the named network (also what an exported bundle uses): 3D networks take the
    four modalities (``in_channels`` where the chain adds more, ``transforms.symmetry.image_channels``) and output
    ``target``'s channels; ``channels`` = (in, out) sets both instead (2D tasks)."""
    spec = NETWORKS[name]
    in_channels, out_channels = channels or (in_channels or len(MODALITIES), get_target(target).out_channels)
    args = {"spatial_dims": spec.dims, "in_channels": in_channels, "out_channels": out_channels}
    if spec.takes_img_size:
        args["img_size"] = tuple(patch_size)
    return {**args, **spec.defaults, **dict(kwargs or {})}


def check_network(name: str, patch_size: Sequence[int]) -> str | None:
    """What is wrong with network ``name`` for ``patch_size`` (unknown name, indivisible patch), or None."""
    if name not in NETWORKS:
        return f"unknown network {name!r} (model.network); choose one of {', '.join(NETWORKS)}"
    spec = NETWORKS[name]
    if len(patch_size) != spec.dims:
        kind = "2D (slices)" if spec.dims == 2 else "3D (scans)"
        return f"{name} is a {kind} network; it cannot take a {len(patch_size)}D input of size {list(patch_size)}"
    divisor = spec.divisor
    if any(p % divisor for p in patch_size):
        return f"{name} needs every patch dimension divisible by {divisor}; patch {list(patch_size)} is not"
    return None


def build_network(
    name: str,
    patch_size: Sequence[int],
    target: str = REGIONS,
    kwargs: dict[str, Any] | None = None,
    channels: tuple[int, int] | None = None,
    in_channels: int | None = None,
) -> nn.Module:
    """The named network (see ``network_arguments``); a patch size it cannot take is a clear error."""
    problem = check_network(name, patch_size)
    if problem:
        raise BratsInputError(None, problem)
    try:
        model = NETWORKS[name].cls(**network_arguments(name, patch_size, target, kwargs, channels, in_channels))
    except (TypeError, ValueError) as exc:  # an unknown argument, or MONAI's own check of the ones given
        raise BratsInputError(None, f"model.kwargs do not fit {name}: {exc}") from exc
    return model
