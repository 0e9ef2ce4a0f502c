"""Sliding-window prediction over a whole scan with MONAI's ``sliding_window_inference`` (Gaussian blending).

Used by validation during training and by ``brats3d predict``, so both see exactly the same inference.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
from monai.inferers import sliding_window_inference

from brats3d.data.labels import classes_to_labels, regions_to_labels
from brats3d.errors import BratsInputError


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; asking for CUDA where there is none is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BratsInputError(None, f"device {name!r} asked for, but CUDA is not available on this machine")
    return torch.device(name)


def autocast(device: torch.device, amp: str):
    """Mixed precision on CUDA (bf16 where supported, else fp16); a no-op on CPU or with amp='off'."""
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    dtype = amp_dtype(amp)
    return torch.autocast("cuda", dtype=dtype)


def amp_dtype(amp: str) -> torch.dtype:
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def _flips(tta: bool) -> list[tuple[int, ...]]:
    if not tta:
        return [()]
    return [c for r in range(4) for c in itertools.combinations((2, 3, 4), r)]


@torch.no_grad()
def sliding_window_predict(
    model: nn.Module,
    image: torch.Tensor,
    patch_size: Sequence[int],
    target: str = "regions",
    overlap: float = 0.5,
    sw_batch_size: int = 4,
    device: torch.device | str = "cpu",
    amp: str = "auto",
    tta: bool = False,
) -> torch.Tensor:
    """Probabilities (C, X, Y, Z) on the CPU for one scan ``image`` (4, X, Y, Z).

    Logits are blended with Gaussian weights, averaged over flips when ``tta``, then passed through sigmoid
    (regions) or softmax (classes). On CUDA out-of-memory the window batch is halved and the stitched output
    moved to the CPU before retrying.
    """
    device = torch.device(device)
    inputs = image[None].to(device, non_blocking=True)
    out_device = device
    batch = max(1, int(sw_batch_size))
    while True:
        try:
            logits = None
            for axes in _flips(tta):
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
            logits /= len(_flips(tta))
            break
        except torch.cuda.OutOfMemoryError:
            if batch == 1 and out_device.type == "cpu":
                raise
            torch.cuda.empty_cache()
            batch, out_device = max(1, batch // 2), torch.device("cpu")
    return logits_to_probabilities(logits[0], target).cpu()


def logits_to_probabilities(logits: torch.Tensor, target: str = "regions") -> torch.Tensor:
    """(C, X, Y, Z) logits -> sigmoid per region channel, or softmax over the class channels."""
    return torch.sigmoid(logits) if target == "regions" else torch.softmax(logits, dim=0)


def probabilities_to_labels(probs: torch.Tensor | np.ndarray, target: str = "regions", threshold: float = 0.5):
    """Canonical labels from probabilities: thresholded nested regions (ET ⊂ TC ⊂ WT) or argmax of classes."""
    if target == "regions":
        return regions_to_labels(probs > threshold)
    return classes_to_labels(probs)
