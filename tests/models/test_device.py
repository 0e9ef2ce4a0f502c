"""Which precision and layout a network runs in: a recipe's ``amp: bf16`` speeds up CPUs that have bf16, never
slows others and never runs on AMX CPUs, whose bf16 kernels return NaN now and then; CPU training of 3D networks
in channels-last layout changes speed, not results or checkpoints."""

import pytest
import torch

from brats3d.models import device as device_module
from brats3d.models.device import amp_dtype, autocast, describe_precision, needs_grad_scaler, to_training_device

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_only_where_the_cpu_has_it(monkeypatch, native):
    monkeypatch.setattr(device_module, "cpu_bf16_pays", lambda: native)
    assert amp_dtype(CPU, "bf16") == (torch.bfloat16 if native else None)
    assert amp_dtype(CPU, "auto") is None  # the CPU default stays fp32 either way
    assert amp_dtype(CPU, "off") is None
    assert not needs_grad_scaler(CPU, "bf16")


@pytest.mark.parametrize(
    ("flags", "pays"),
    [
        ({"avx512f", "avx512_bf16"}, True),  # Cooper Lake, Zen 4: native bf16, no AMX
        ({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, False),  # Sapphire Rapids: AMX kernels, NaN at times
        ({"avx512f", "avx2"}, False),  # emulated bf16 is slower than fp32
        (set(), False),  # flags unknown (not Linux)
    ],
)
def test_cpu_bf16_pays_only_with_avx512_bf16_and_without_amx(flags, pays):
    assert device_module.cpu_bf16_pays(frozenset(flags)) is pays


def test_cpu_bf16_autocast_runs_convolutions_in_bf16(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_bf16_pays", lambda: True)
    conv = torch.nn.Conv3d(1, 2, 3)
    with autocast(CPU, "bf16"):
        out = conv(torch.randn(1, 1, 4, 4, 4))
    assert out.dtype == torch.bfloat16
    with autocast(CPU, "auto"):
        assert conv(torch.randn(1, 1, 4, 4, 4)).dtype == torch.float32


def test_3d_networks_train_channels_last_on_the_cpu_with_the_same_outputs_and_weights():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv3d(4, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, 3, 1))
    x = torch.randn(2, 4, 8, 8, 4)
    expected = net(x)
    trained = to_training_device(net, CPU)
    assert trained[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert torch.allclose(trained(x), expected, atol=1e-5)
    fresh = torch.nn.Sequential(torch.nn.Conv3d(4, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(8, 3, 1))
    fresh.load_state_dict(trained.state_dict())  # what predict does with a checkpoint saved in training
    assert fresh[0].weight.is_contiguous() and torch.allclose(fresh(x), expected, atol=1e-5)


def test_2d_networks_keep_the_default_layout():
    net = to_training_device(torch.nn.Conv2d(1, 2, 3), CPU)
    assert net.weight.is_contiguous()


def test_the_training_log_says_why_a_recipes_bf16_runs_in_fp32(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_bf16_pays", lambda: False)
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16"}))
    assert describe_precision(CPU, "bf16") == "fp32 (train.amp bf16: AMX kernels return NaN at times on this CPU)"
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx2"}))
    assert describe_precision(CPU, "bf16") == "fp32 (train.amp bf16: no native bf16 on this CPU)"
    assert describe_precision(CPU, "off") == "fp32"
    monkeypatch.setattr(device_module, "cpu_bf16_pays", lambda: True)
    assert describe_precision(CPU, "bf16") == "bfloat16 autocast"
