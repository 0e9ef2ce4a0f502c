"""Where and in which precision a network runs: device choice and mixed precision, shared by training and inference.

Mixed precision: ``auto`` is bf16 (or fp16 with a gradient scaler) on CUDA and fp32 on CPUs. bf16 autocast on a
CPU with native bf16 (AVX512-BF16 or AMX) is available as ``amp: bf16`` but is not the default: CPU autocast runs
instance normalisation in bf16 too, and on the tiny test U-Net training went to NaN within three updates; with the
normalisation layers forced to fp32 it still diverged after a few more, and the step was only 1.12x faster
(0.45 s against 0.51 s for 2 patches of 160x160x16 on this 2-core machine), too little to risk the Dice for.
"""

from __future__ import annotations

import contextlib
import os

import torch

from brats3d.errors import BratsInputError

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU; asking for CUDA where there is none is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BratsInputError(None, f"device {name!r} asked for, but CUDA is not available on this machine")
    return torch.device(name)


def available_cores() -> int:
    """CPU cores this process may use (its affinity mask, which containers and ``taskset`` narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or None for full fp32."""
    if amp == "off":
        return None
    if device.type == "cuda":
        if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16
    if device.type == "cpu" and amp == "bf16":
        return torch.bfloat16
    return None  # CPU: fp32 unless bf16 is asked for (fp16 autocast on CPU is slow and unsupported for many ops)


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """An autocast context for ``amp`` on ``device`` (a no-op in fp32)."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def needs_grad_scaler(device: torch.device, amp: str) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return amp_dtype(device, amp) == torch.float16
