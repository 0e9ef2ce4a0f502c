"""Losses by name. The soft Dice the project specifies: 1 - mean_c (2·Σpq + ε) / (Σp² + Σq² + ε), sums over the
batch and the voxels, mean over the output channels (MONAI ``DiceLoss(squared_pred=True, batch=True)``)."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.losses import DeepSupervisionLoss, DiceCELoss, DiceFocalLoss, DiceLoss, FocalLoss, TverskyLoss

from brats3d.data.targets import REGIONS, Target, get_target

LOSSES = ("dice", "dice_ce", "dice_focal", "tversky", "bce", "iou", "focal")
SQUARABLE = ("dice", "dice_ce", "dice_focal")  # the losses whose soft Dice may sum p + q instead of p² + q²


class DiceBCELoss(nn.Module):
    """Soft Dice plus binary cross-entropy per region channel (nnU-Net's region loss for BraTS).

    Our own rather than MONAI's ``DiceCELoss``: for more than one channel that one applies a softmax cross-entropy,
    which treats the nested WT/TC/ET regions as exclusive classes; each region needs its own sigmoid BCE. The BCE
    term keeps voxels far from any tumour confidently negative, which soft Dice alone does not reward.
    """

    def __init__(self, smooth: float = 1e-5, squared: bool = True) -> None:
        super().__init__()
        self.dice = DiceLoss(sigmoid=True, squared_pred=squared, batch=True, smooth_nr=smooth, smooth_dr=smooth)
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target) + self.bce(logits, target)


class CrossEntropy(nn.Module):
    """Binary cross-entropy per sigmoid channel, or softmax cross-entropy over classes from (B, 1, ...) indices."""

    def __init__(self, sigmoid: bool) -> None:
        super().__init__()
        self.sigmoid = sigmoid
        self.loss = nn.BCEWithLogitsLoss() if sigmoid else nn.CrossEntropyLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, target if self.sigmoid else target[:, 0].long())


def build_loss(
    name: str = "dice", target: Target | str = REGIONS, smooth: float = 1e-5, squared: bool = True
) -> nn.Module:
    """The named loss for ``target``'s activation (sigmoid regions, or softmax classes with integer labels).

    ``squared``: the Dice terms' denominators sum p² + q² (V-Net's soft Dice, the project's) or p + q (nnU-Net's)."""
    target = get_target(target) if isinstance(target, str) else target
    common = {"smooth_nr": smooth, "smooth_dr": smooth, "batch": True, **target.loss_activation()}
    if name == "dice":
        return DiceLoss(squared_pred=squared, **common)
    if name == "dice_ce":
        return DiceBCELoss(smooth, squared) if target.sigmoid else DiceCELoss(squared_pred=squared, **common)
    if name == "dice_focal":
        return DiceFocalLoss(squared_pred=squared, **common)
    if name == "tversky":
        return TverskyLoss(alpha=0.3, beta=0.7, **common)
    if name == "bce":
        return CrossEntropy(target.sigmoid)
    if name == "iou":  # soft Jaccard: 1 - |P∩Q| / |P∪Q|
        return DiceLoss(jaccard=True, **common)
    if name == "focal":  # down-weights easy pixels, for the strong class imbalance of small lesions
        return FocalLoss(use_softmax=not target.sigmoid, to_onehot_y=not target.sigmoid, gamma=2.0)
    raise ValueError(f"unknown loss {name!r}; choose one of {LOSSES}")


class DeeplySupervised(nn.Module):
    """``loss`` over every output of a deeply supervised network: MONAI's ``DynUNet`` stacks its full-resolution
    logits and those of coarser decoder levels on a new axis 1 in training; MONAI's ``DeepSupervisionLoss`` weighs
    them 1, 1/2, 1/4. Ordinary logits (and every network in evaluation) are scored by ``loss`` alone. Either way the
    loss is computed in fp32 (sums over 400k voxels lose bits in bf16)."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.levels = DeepSupervisionLoss(loss, weight_mode="exp")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        stacked = logits.dim() == target.dim() + 1
        return self.levels(list(torch.unbind(logits, dim=1)) if stacked else logits, target)
