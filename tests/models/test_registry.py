import pytest
import torch

from brats3d.errors import BratsInputError
from brats3d.models import NETWORKS, build_network
from brats3d.models.losses import build_loss


@pytest.mark.parametrize("name", ["unet3d", "vnet"])
def test_mission_networks_train_a_step_on_160x160x16_patches(name):
    torch.manual_seed(0)
    model = build_network(name, (160, 160, 16))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    image = torch.randn(1, 4, 160, 160, 16)
    target = (torch.rand(1, 3, 160, 160, 16) > 0.9).float()
    loss_fn = build_loss("dice")
    before = [p.detach().clone() for p in model.parameters()]
    loss = loss_fn(model(image), target)
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize(("name", "channels"), [("unet3d", 4), ("segresnet", 3), ("attention_unet", 3)])
def test_output_channels_follow_the_target(name, channels):
    target = "classes" if channels == 4 else "regions"
    model = build_network(name, (32, 32, 16), target, {"channels": (4, 8, 16, 32, 64)} if name != "segresnet" else {})
    assert model(torch.zeros(1, 4, 32, 32, 16)).shape == (1, channels, 32, 32, 16)


def test_every_registered_network_builds_for_a_fitting_patch():
    for name, spec in NETWORKS.items():
        patch = (spec.divisor * 2,) * 3 if name != "unetr" else (32, 32, 16)
        assert isinstance(build_network(name, patch), torch.nn.Module)


def test_vnet_rejects_patches_not_divisible_by_16():
    with pytest.raises(
        BratsInputError, match=r"vnet needs every patch dimension divisible by 16; patch \[160, 160, 20\]"
    ):
        build_network("vnet", (160, 160, 20))


def test_swin_unetr_needs_multiples_of_32_and_unknown_names_fail():
    with pytest.raises(BratsInputError, match="divisible by 32"):
        build_network("swin_unetr", (160, 160, 16))
    with pytest.raises(BratsInputError, match="unknown network 'resnet'"):
        build_network("resnet", (32, 32, 32))
