"""Which precision a network runs in: a recipe's ``amp: bf16`` speeds up CPUs that have bf16 and never slows others."""

import pytest
import torch

from brats3d.models import device as device_module
from brats3d.models.device import amp_dtype, autocast, needs_grad_scaler

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: native)
    assert amp_dtype(CPU, "bf16") == (torch.bfloat16 if native else None)
    assert amp_dtype(CPU, "auto") is None  # the CPU default stays fp32 either way
    assert amp_dtype(CPU, "off") is None
    assert not needs_grad_scaler(CPU, "bf16")


def test_cpu_bf16_autocast_runs_convolutions_in_bf16(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_native_bf16", lambda: True)
    conv = torch.nn.Conv3d(1, 2, 3)
    with autocast(CPU, "bf16"):
        out = conv(torch.randn(1, 1, 4, 4, 4))
    assert out.dtype == torch.bfloat16
    with autocast(CPU, "auto"):
        assert conv(torch.randn(1, 1, 4, 4, 4)).dtype == torch.float32
