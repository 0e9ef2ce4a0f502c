"""Turn canonical labels into the network's training target (as the ``Target`` that owns it says)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.transforms import MapTransform

from brats3d.data.targets import REGIONS, get_target


class LabelToTargetd(MapTransform):
    """``label`` (X, Y, Z) canonical -> (3, X, Y, Z) WT/TC/ET regions, or (1, X, Y, Z) class indices.

    Unlike MONAI's ``ConvertToMultiChannelBasedOnBratsClasses`` (which assumes the 1/2/4 numbering and gives an
    empty ET channel on Decathlon data), this works on the canonical labels, whatever layout they came from.
    """

    def __init__(self, target: str = REGIONS, key: str = "label") -> None:
        super().__init__(keys=key)
        self.target = get_target(target)

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            lab = d[key]
            lab = torch.as_tensor(lab if isinstance(lab, torch.Tensor) else np.asarray(lab))
            if lab.ndim == 4:  # already has a channel axis of one
                lab = lab[0]
            d[key] = self.target.training_target(torch.as_tensor(lab))
        return d
