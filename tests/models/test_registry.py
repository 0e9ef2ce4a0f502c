import pytest
import torch

from brats3d.data.targets import slice_target
from brats3d.errors import BratsInputError
from brats3d.models import NETWORKS, build_network
from brats3d.models.losses import build_loss
from brats3d.models.registry import check_network


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
        patch = (spec.divisor * 2,) * spec.dims if name != "unetr" else (32, 32, 16)
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


TWO_D = [name for name, spec in NETWORKS.items() if spec.dims == 2]


@pytest.mark.parametrize("name", TWO_D)
@pytest.mark.parametrize("out_channels", [1, 3])
def test_every_2d_network_trains_one_step_and_keeps_the_image_size(name, out_channels):
    torch.manual_seed(0)
    model = build_network(name, (32, 48), channels=(3, out_channels))
    image = torch.randn(2, 3, 32, 48)
    logits = model(image)
    assert logits.shape == (2, out_channels, 32, 48)
    target = slice_target([0, 255] if out_channels == 1 else [0, 1, 2])
    truth = (image[:, :1] > 0.5).float() if out_channels == 1 else torch.randint(0, 3, (2, 1, 32, 48)).float()
    loss = build_loss("dice_ce", target)(logits, truth)
    loss.backward()
    first = next(p for p in model.parameters() if p.requires_grad)
    assert torch.isfinite(loss) and first.grad is not None and first.grad.abs().sum() > 0  # reaches the input layer
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.allclose(model(image), logits.detach(), atol=1e-4)


def test_2d_and_3d_networks_refuse_the_other_kind_of_input():
    assert "2D (slices)" in check_network("unet2d", (160, 160, 16))
    assert "3D (scans)" in check_network("unet3d", (256, 256))


def test_dynunet_supervises_three_decoder_levels_in_training_and_returns_one_output_otherwise():
    from brats3d.models.losses import DeeplySupervised

    torch.manual_seed(0)
    model = build_network("dynunet", (32, 32, 16), kwargs={"filters": (4, 8, 16, 32, 64)})
    image = torch.randn(2, 4, 32, 32, 16)
    outputs = model.train()(image)
    assert outputs.shape == (2, 3, 3, 32, 32, 16)  # full resolution and two coarser levels, upsampled
    loss = DeeplySupervised(build_loss("dice_ce"))(outputs, (torch.rand(2, 3, 32, 32, 16) > 0.8).float())
    loss.backward()
    heads = [p for name, p in model.named_parameters() if name.startswith("deep_supervision_heads")]
    assert heads and all(p.grad is not None and p.grad.abs().sum() > 0 for p in heads)
    with torch.no_grad():
        assert model.eval()(image).shape == (2, 3, 32, 32, 16)


def test_network_arguments_that_monai_rejects_are_a_clear_input_error():
    # dynunet's five strides need five filters; MONAI raises ValueError, the user gets the config key and the reason
    with pytest.raises(BratsInputError, match=r"model.kwargs do not fit dynunet: length of filters"):
        build_network("dynunet", (32, 32, 16), kwargs={"filters": (8, 16, 32, 64)})
    with pytest.raises(BratsInputError, match=r"model.kwargs do not fit unet3d: .*strides"):
        build_network("unet3d", (32, 32, 16), kwargs={"channels": (8, 16, 32, 64), "strides": (2, 2)})
