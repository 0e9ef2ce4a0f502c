"""The one owner of what a network outputs (as nnU-Net's ``LabelManager``): overlapping BraTS regions with a
sigmoid each, or exclusive classes with a softmax. Everything else asks a ``Target`` instead of testing its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from brats3d.data.labels import (
    CLASS_NAMES,
    REGION_LABELS,
    REGION_NAMES,
    classes_to_labels,
    labels_to_regions,
    regions_to_labels,
)


@dataclass(frozen=True)
class Target:
    """What the network predicts and how its outputs become canonical labels."""

    name: str
    channel_names: tuple[str, ...]  # one per output channel
    sigmoid: bool  # True: independent (overlapping) channels; False: softmax over exclusive classes
    summary: str

    @property
    def out_channels(self) -> int:
        return len(self.channel_names)

    def training_target(self, label: torch.Tensor) -> torch.Tensor:
        """Canonical labels (X, Y, Z) -> (3, X, Y, Z) float regions, or (1, X, Y, Z) int64 class indices."""
        if self.sigmoid:
            return labels_to_regions(label)
        return label[None].to(torch.int64)

    def probabilities(self, logits: torch.Tensor, channel_dim: int = 0) -> torch.Tensor:
        """Logits -> probabilities: a sigmoid per region channel, or a softmax over the class channels."""
        return torch.sigmoid(logits) if self.sigmoid else torch.softmax(logits, dim=channel_dim)

    @property
    def has_regions(self) -> bool:
        """Whether the outputs give the BraTS regions: the sigmoid regions, or the softmax over the BraTS classes."""
        return self.sigmoid or self.channel_names == ("background", *CLASS_NAMES)

    def region_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """Probabilities (C, X, Y, Z) -> WT/TC/ET probabilities (3, X, Y, Z): the sigmoid regions themselves, or the
        sums of the class probabilities that make up each region, so that one set of per-region thresholds and
        post-processing rules serves both targets."""
        if self.sigmoid:
            return probs
        if not self.has_regions:
            raise ValueError(f"the {self.name} target's channels {self.channel_names} are not the BraTS classes")
        return np.stack([probs[list(labels)].sum(0) for labels in REGION_LABELS])

    def labels(self, probs: torch.Tensor | np.ndarray, threshold: float | Sequence[float] = 0.5) -> np.ndarray:
        """Probabilities (C, X, Y, Z) -> canonical labels: region probabilities thresholded per channel and nested
        (ET ⊂ TC ⊂ WT), or for classes other than BraTS' (2D tasks) the argmax (``threshold`` unused)."""
        if not self.has_regions:
            return classes_to_labels(probs)
        probs = probs.detach().float().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
        probs = self.region_probabilities(probs)
        levels = np.broadcast_to(np.asarray(threshold, dtype=np.float32), (len(REGION_NAMES),))
        return regions_to_labels(probs > levels.reshape(-1, *([1] * (probs.ndim - 1))))

    def loss_activation(self) -> dict[str, bool]:
        """The MONAI loss arguments that apply this target's activation to logits."""
        return {"sigmoid": True} if self.sigmoid else {"softmax": True, "to_onehot_y": True}


REGIONS = "regions"  # the default target, and the one BraTS scores (post-processing rules are chosen on it)

TARGETS: dict[str, Target] = {
    REGIONS: Target(REGIONS, REGION_NAMES, True, "WT/TC/ET regions, a sigmoid each (BraTS evaluation regions)"),
    "classes": Target("classes", ("background", *CLASS_NAMES), False, "background + ED/NET/ET, softmax"),
}


def get_target(name: str) -> Target:
    """The target called ``name``; an unknown name is a ValueError listing the choices."""
    if name not in TARGETS:
        raise ValueError(f"target must be one of {tuple(TARGETS)}, got {name!r}")
    return TARGETS[name]


def slice_target(class_values: Sequence[int]) -> Target:
    """The output of a 2D task: one sigmoid channel for a binary mask, else a softmax over every class value."""
    if len(class_values) == 2:
        return Target("binary", ("foreground",), True, "foreground with a sigmoid (binary masks)")
    return Target("classes", tuple(f"value_{v}" for v in class_values), False, "one class per mask value, softmax")
