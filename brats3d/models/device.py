"""Where and in which precision a network runs: device choice and mixed precision, shared by training and inference.

Mixed precision: ``auto`` is bf16 (or fp16 with a gradient scaler where the GPU lacks bf16) on CUDA and fp32 on
CPUs. ``bf16`` asks for bf16 wherever the hardware has it natively: on CUDA as ``auto``, and on x86 CPUs with
AVX512-BF16 or AMX too (elsewhere a CPU emulates bf16, slower than fp32, so it stays fp32). It is not the CPU
default because it is a per-recipe decision: CPU autocast also runs instance normalisation in bf16, and on the tiny
test U-Net training went to NaN within a few updates, while the default 3D U-Net recipe was cross-validated in bf16
(BENCHMARKS.md) and sets it.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

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


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX (Linux flags), where bf16 convolutions beat fp32 (1.3x measured)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:  # not Linux: unknown, so no
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or None for full fp32."""
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if amp != "fp16" and torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and amp == "bf16" and cpu_has_native_bf16():
        return torch.bfloat16
    return None  # CPU: fp32 (fp16 autocast on CPU is slow and unsupported for many ops)


def autocast(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """An autocast context for ``amp`` on ``device`` (a no-op in fp32)."""
    dtype = amp_dtype(device, amp)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def to_training_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """``model`` on ``device``, in channels-last layout when it is a 3D network trained on the CPU, where oneDNN runs
    3D training steps faster (the default recipe on 2 cores: 4.6 -> 5.5 patches/s in bf16, 4.0 -> 4.8
    in fp32; BENCHMARKS.md); the activations follow the weights. Inference was no faster in it, and CUDA is not
    measured here, so both keep PyTorch's default layout."""
    is_3d = any(p.dim() == 5 for p in model.parameters())
    layout = torch.channels_last_3d if device.type == "cpu" and is_3d else torch.contiguous_format
    return model.to(device, memory_format=layout)


def needs_grad_scaler(device: torch.device, amp: str) -> bool:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return amp_dtype(device, amp) == torch.float16
