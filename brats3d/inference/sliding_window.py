"""Sliding-window prediction over a whole scan with MONAI's ``sliding_window_inference`` (Gaussian blending).

Used by validation during training and by ``brats3d predict``, so both see exactly the same inference.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.inferers import sliding_window_inference

from brats3d.data.targets import REGIONS, get_target
from brats3d.models.device import autocast
from brats3d.transforms.pipeline import EVERY_AXIS


def _flips(tta: bool, flip_axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of the spatial ``flip_axes`` as dimensions of a (1, C, X, Y, Z) batch; only no flip without TTA."""
    if not tta:
        return [()]
    dims = [axis + 2 for axis in flip_axes]
    return [c for r in range(len(dims) + 1) for c in itertools.combinations(dims, r)]


@torch.no_grad()
def sliding_window_predict(
    model: nn.Module,
    image: torch.Tensor,
    patch_size: Sequence[int],
    target: str = REGIONS,
    overlap: float = 0.5,
    sw_batch_size: int = 4,
    device: torch.device | str = "cpu",
    amp: str = "auto",
    tta: bool = False,
    flip_axes: Sequence[int] = EVERY_AXIS,
) -> torch.Tensor:
    """Probabilities (C, X, Y, Z) on the CPU for one scan ``image`` (4, X, Y, Z).

    Logits are blended with Gaussian weights, averaged over the flips across every subset of ``flip_axes`` when
    ``tta`` (8 for all three axes), then passed through sigmoid (regions) or softmax (classes). On CUDA
    out-of-memory the window batch is halved and the stitched output moved to the CPU before retrying.
    """
    device = torch.device(device)
    inputs = image[None].to(device, non_blocking=True)
    out_device = device
    batch = max(1, int(sw_batch_size))
    flips = _flips(tta, flip_axes)
    while True:
        try:
            logits = None
            for axes in flips:
                x = torch.flip(inputs, axes) if axes else inputs
                with autocast(device, amp):
                    y = sliding_window_inference(
                        x,
                        tuple(patch_size),
                        batch,
                        model,
                        overlap=overlap,
                        mode="gaussian",
                        sw_device=device,
                        device=out_device,
                    )
                y = y.float()
                y = torch.flip(y, axes) if axes else y
                logits = y if logits is None else logits + y
            logits /= len(flips)
            break
        except torch.cuda.OutOfMemoryError:
            if batch == 1 and out_device.type == "cpu":
                raise
            torch.cuda.empty_cache()
            batch, out_device = max(1, batch // 2), torch.device("cpu")
    return get_target(target).probabilities(logits[0]).cpu()
