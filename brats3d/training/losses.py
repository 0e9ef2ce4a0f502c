"""Losses by name, all from MONAI. The default is the mission's soft Dice:
1 - mean_c (2·Σpq + ε) / (Σp² + Σq² + ε), sums over the batch and the voxels, mean over the output channels."""

from __future__ import annotations

import torch.nn as nn
from monai.losses import DiceCELoss, DiceFocalLoss, DiceLoss, TverskyLoss


def build_loss(name: str = "dice", target: str = "regions", smooth: float = 1e-5) -> nn.Module:
    """Regions use a sigmoid per channel; classes use a softmax over four channels and integer labels."""
    act = {"sigmoid": True} if target == "regions" else {"softmax": True, "to_onehot_y": True}
    common = {"smooth_nr": smooth, "smooth_dr": smooth, "batch": True, **act}
    if name == "dice":
        return DiceLoss(squared_pred=True, **common)
    if name == "dice_ce":
        return DiceCELoss(squared_pred=True, **common)
    if name == "dice_focal":
        return DiceFocalLoss(squared_pred=True, **common)
    if name == "tversky":
        return TverskyLoss(alpha=0.3, beta=0.7, **common)
    raise ValueError(f"unknown loss {name!r}")
