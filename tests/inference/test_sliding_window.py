import torch
import torch.nn as nn

from brats3d.inference.sliding_window import sliding_window_predict


class _Lopsided(nn.Module):
    """Three output channels that depend on where a voxel is along each axis, so every flip changes the output."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[2:]
        ramps = [
            torch.linspace(-1, 3, n).reshape([-1 if i == axis else 1 for i in range(3)]) for axis, n in enumerate(shape)
        ]
        return torch.stack([x[:, 0] * r for r in ramps], dim=1)


def _by_hand(image: torch.Tensor, flips: list[tuple[int, ...]]) -> torch.Tensor:
    """Sigmoid of the mean logits over ``flips`` (dims of a (1, C, X, Y, Z) batch), each flipped back."""
    x = image[None]
    logits = sum(torch.flip(_Lopsided()(torch.flip(x, dims)), dims) for dims in flips) / len(flips)
    return torch.sigmoid(logits[0])


def test_flip_averaging_covers_every_subset_of_the_recipes_flip_axes_and_no_other():
    image = torch.rand(4, 8, 8, 8)

    def predict(**options) -> torch.Tensor:  # one window covers the scan: the network's own output
        return sliding_window_predict(_Lopsided(), image, (8, 8, 8), overlap=0.0, amp="off", **options)

    assert torch.allclose(predict(tta=True, flip_axes=(0,)), _by_hand(image, [(), (2,)]), atol=1e-5)  # left-right
    every = [(), (2,), (3,), (4,), (2, 3), (2, 4), (3, 4), (2, 3, 4)]
    assert torch.allclose(predict(tta=True), _by_hand(image, every), atol=1e-5)  # all three axes unless told
    assert torch.allclose(predict(tta=False, flip_axes=(0,)), _by_hand(image, [()]), atol=1e-5)
    assert not torch.allclose(_by_hand(image, [(), (2,)]), _by_hand(image, every), atol=1e-3)
