"""A small fully convolutional network (FCN-8s style: Long et al. 2015) for 2D slices.

Our own because MONAI's ``FCN`` is built on torchvision's ResNet-50 (a dependency brats3d does not take, and 23 M
parameters pretrained on photographs that must not be downloaded here). This one is the shape the ultrasound
reference programs use: a VGG-like encoder, class scores from the last three stages, upsampled and summed.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class FCN(nn.Module):
    """Encoder of ``len(features)`` stages, each halving the size; scores at 1/4, 1/8 and 1/16 (with four stages),
    summed coarse to fine and upsampled bilinearly to the input size."""

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 3,
        out_channels: int = 1,
        features: Sequence[int] = (32, 64, 128, 256),
    ) -> None:
        super().__init__()
        if spatial_dims != 2:
            raise ValueError("FCN is 2D only")
        widths = [in_channels, *features]
        self.stages = nn.ModuleList(_stage(a, b) for a, b in itertools.pairwise(widths))
        self.scores = nn.ModuleList(nn.Conv2d(w, out_channels, 1) for w in features[-3:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size, outputs = x.shape[-2:], []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        logits = None
        for feature, score in reversed(list(zip(outputs[-3:], self.scores))):  # coarse to fine
            s = score(feature)
            logits = s if logits is None else F.interpolate(logits, size=s.shape[-2:], mode="bilinear") + s
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
