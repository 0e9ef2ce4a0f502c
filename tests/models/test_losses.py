import pytest
import torch

from brats3d.data.targets import slice_target
from brats3d.models.losses import LOSSES, build_loss


def _logits(p):
    return torch.log(p / (1 - p))


def test_soft_dice_matches_the_hand_computed_value():
    # Two channels, two voxels. Soft Dice per channel: 2·Σpq / (Σp² + Σq²).
    p = torch.tensor([[0.9, 0.2], [0.1, 0.8]]).reshape(1, 2, 2, 1, 1)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 2, 1, 1)
    c0 = 2 * 0.9 / (0.81 + 0.04 + 1)
    c1 = 2 * 0.8 / (0.01 + 0.64 + 1)
    loss = build_loss("dice", smooth=0.0)(_logits(p), q)
    assert loss.item() == pytest.approx(1 - (c0 + c1) / 2, abs=1e-6)


@pytest.mark.parametrize("name", ["dice", "dice_ce"])
def test_unsquared_dice_divides_by_the_plain_sums(name):
    # nnU-Net's soft Dice: 2·Σpq / (Σp + Σq); for dice_ce the region BCE comes on top, as with the squared form.
    p = torch.tensor([0.9, 0.2, 0.6]).reshape(1, 1, 3, 1, 1)
    q = torch.tensor([1.0, 0.0, 1.0]).reshape(1, 1, 3, 1, 1)
    expected = 1 - 2 * (0.9 + 0.6) / (1.7 + 2)
    if name == "dice_ce":
        expected += (-(q * torch.log(p) + (1 - q) * torch.log(1 - p)).mean()).item()
    loss = build_loss(name, smooth=0.0, squared=False)(_logits(p), q).item()
    assert loss == pytest.approx(expected, abs=1e-5)
    assert loss != pytest.approx(build_loss(name, smooth=0.0)(_logits(p), q).item(), abs=1e-3)


def test_soft_dice_sums_over_the_batch_before_averaging_classes():
    p = torch.tensor([0.9, 0.6]).reshape(2, 1, 1, 1, 1)
    q = torch.tensor([1.0, 0.0]).reshape(2, 1, 1, 1, 1)
    expected = 1 - 2 * 0.9 / (0.81 + 0.36 + 1)
    assert build_loss("dice", smooth=0.0)(_logits(p), q).item() == pytest.approx(expected, abs=1e-6)


def test_perfect_prediction_gives_zero_loss():
    q = torch.zeros(1, 3, 4, 4, 4)
    q[:, :, 1:3] = 1
    logits = (q * 2 - 1) * 30
    assert build_loss("dice")(logits, q).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", ["dice", "dice_ce", "dice_focal", "tversky"])
@pytest.mark.parametrize("target", ["regions", "classes"])
def test_every_loss_runs_and_prefers_the_right_answer(name, target):
    torch.manual_seed(0)
    labels = torch.randint(0, 4, (1, 1, 6, 6, 4))
    if target == "regions":
        from brats3d.data.labels import labels_to_regions

        truth = labels_to_regions(labels[0, 0])[None]
        good, bad = (truth * 2 - 1) * 5, -(truth * 2 - 1) * 5
        y = truth
    else:
        onehot = torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 4, 1, 2, 3).float()
        good, bad = onehot * 10, (1 - onehot) * 10
        y = labels
    loss = build_loss(name, target)
    assert loss(good, y).item() < loss(bad, y).item()


def test_dice_ce_for_regions_is_soft_dice_plus_a_sigmoid_bce_per_channel():
    # Nested regions overlap, so the cross-entropy must be a BCE per channel, not a softmax over channels.
    p = torch.tensor([[0.9, 0.2], [0.7, 0.4], [0.6, 0.1]]).reshape(1, 3, 2, 1, 1)
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]).reshape(1, 3, 2, 1, 1)
    dice = build_loss("dice", smooth=0.0)(_logits(p), q)
    bce = -(q * torch.log(p) + (1 - q) * torch.log(1 - p)).mean()
    assert build_loss("dice_ce", smooth=0.0)(_logits(p), q).item() == pytest.approx((dice + bce).item(), abs=1e-5)


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("values", [[0, 255], [0, 1, 2]])
def test_every_loss_drops_when_the_prediction_moves_toward_a_2d_mask(name, values):
    """Binary (one sigmoid channel) and multi-class (softmax) 2D targets, for every loss a config may name."""
    target = slice_target(values)
    truth = torch.zeros(2, 1, 16, 16)
    truth[:, :, 4:12, 4:12] = 1 if len(values) == 2 else 2
    loss = build_loss(name, target)
    if target.sigmoid:
        good = (truth * 2 - 1) * 4
    else:
        good = torch.nn.functional.one_hot(truth[:, 0].long(), 3).permute(0, 3, 1, 2).float() * 8 - 4
    assert float(loss(good, truth)) < float(loss(torch.zeros_like(good), truth))


def test_deep_supervision_weighs_the_coarser_outputs_half_and_a_quarter_and_plain_logits_as_the_loss_itself():
    from brats3d.models.losses import DeeplySupervised

    torch.manual_seed(0)
    truth = (torch.rand(1, 3, 8, 8, 4) > 0.5).float()
    stacked = torch.randn(1, 3, 3, 8, 8, 4)  # DynUNet in training: (batch, level, channel, x, y, z)
    base = build_loss("dice_ce")
    loss = DeeplySupervised(base)
    expected = sum(w * base(stacked[:, i], truth) for i, w in enumerate((1.0, 0.5, 0.25)))
    assert loss(stacked, truth).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss(stacked[:, 0], truth).item() == pytest.approx(base(stacked[:, 0], truth).item(), rel=1e-6)
    assert loss(stacked[:, 0].bfloat16(), truth).dtype == torch.float32  # scored in fp32 under autocast
