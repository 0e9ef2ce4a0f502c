"""Turn canonical labels into the network's training target."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.transforms import MapTransform

from brats3d.data.labels import labels_to_regions

TARGETS = ("regions", "classes")


class LabelToTargetd(MapTransform):
    """``label`` (X, Y, Z) canonical -> (3, X, Y, Z) WT/TC/ET regions, or (1, X, Y, Z) class indices.

    Unlike MONAI's ``ConvertToMultiChannelBasedOnBratsClasses`` (which assumes the 1/2/4 numbering and gives an
    empty ET channel on Decathlon data), this works on the canonical labels, whatever layout they came from.
    """

    def __init__(self, target: str = "regions", key: str = "label") -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        super().__init__(keys=key)
        self.target = target

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            lab = d[key]
            lab = lab if isinstance(lab, torch.Tensor) else torch.as_tensor(np.asarray(lab))
            if lab.ndim == 4:  # already has a channel axis of one
                lab = lab[0]
            lab = torch.as_tensor(lab)
            d[key] = labels_to_regions(lab) if self.target == "regions" else lab[None].to(torch.int64)
        return d
