"""Where and in which precision a network runs: device choice and mixed precision, shared by training and inference.

Mixed precision: ``auto`` is bf16 (or fp16 with a gradient scaler where the GPU lacks bf16) on CUDA and fp32 on
CPUs. ``bf16`` asks for bf16 where the hardware runs it natively and correctly: on CUDA as ``auto``, and on x86 CPUs
with AVX512-BF16 but without AMX (elsewhere a CPU emulates bf16, slower than fp32, or runs it through AMX kernels
that return NaN now and then; see ``cpu_bf16_pays``), so it stays fp32 there. It is not the CPU default because it
is a per-recipe decision: CPU autocast also runs instance normalisation in bf16, and on the tiny test U-Net training
went to NaN within a few updates, while the default 3D U-Net recipe was cross-validated in bf16 (BENCHMARKS.md) and
sets it.
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
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux ``/proc/cpuinfo``); empty where unknown."""
    try:
        return frozenset(Path("/proc/cpuinfo").read_text().split())
    except OSError:  # not Linux
        return frozenset()


def cpu_bf16_pays(flags: frozenset[str] | None = None) -> bool:
    """Whether bf16 autocast is both faster than fp32 and trustworthy on this CPU: AVX512-BF16 without AMX.

    AVX512-BF16 alone: a training step 1.41x and inference 1.33x faster than fp32 (BENCHMARKS.md). With AMX (Xeon
    Sapphire Rapids and later) oneDNN runs bf16 convolutions in AMX kernels which, in the PyTorch 2.13 CPU build,
    return NaN now and then: on a 2-core Xeon with AMX the recipe's U-Net lost its loss to NaN within three steps
    in 7 of 8 identical runs, and ``ConvTranspose3d``'s input gradient was NaN in 1 to 200 of 200 identical calls
    (``benchmarks/bench_cpu_bf16.py``; oneDNN has known AMX bf16 tail-handling bugs of this kind). Capping oneDNN
    below AMX (``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16``) fixes it but makes bf16 slower than fp32 there (0.378
    against 0.362 s a step of two patches), so AMX CPUs train and predict in fp32.
    """
    flags = cpu_flags() if flags is None else flags
    return "avx512_bf16" in flags and "amx_bf16" not in flags


def amp_dtype(device: torch.device, amp: str) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or None for full fp32."""
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if amp != "fp16" and torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and amp == "bf16" and cpu_bf16_pays():
        return torch.bfloat16
    return None  # CPU: fp32 (fp16 autocast on CPU is slow and unsupported for many ops)


def describe_precision(device: torch.device, amp: str) -> str:
    """How ``amp`` runs on ``device``, in words for the training log (a recipe's bf16 that became fp32 says why)."""
    dtype = amp_dtype(device, amp)
    if dtype is not None:
        return f"{str(dtype).removeprefix('torch.')} autocast"
    if device.type == "cpu" and amp == "bf16":
        why = "AMX kernels return NaN at times" if "amx_bf16" in cpu_flags() else "no native bf16"
        return f"fp32 (train.amp bf16: {why} on this CPU)"
    return "fp32"


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
