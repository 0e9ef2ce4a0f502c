import numpy as np
import torch

from brats3d.data.layouts import discover
from brats3d.transforms import Augmentation, build_train_transforms
from brats3d.transforms.spatial import RandInPlaneElasticd


def coordinates(shape: tuple[int, int, int]) -> torch.Tensor:
    """A 3-channel volume whose voxels hold their own x, y and z index: what comes back shows where each was read."""
    return torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in shape], indexing="ij"))


def test_elastic_moves_voxels_smoothly_in_plane_and_every_slice_alike():
    shape = (64, 64, 8)
    labels = torch.randint(0, 4, (1, *shape), dtype=torch.uint8)
    out = RandInPlaneElasticd(["image", "label"], prob=1.0).set_random_state(3)(
        {"image": coordinates(shape), "label": labels}
    )
    shift = out["image"] - coordinates(shape)

    assert shift[:2].abs().max() > 0.5  # it deforms
    assert shift[:2].abs().max() < 15  # by a few voxels, not a scramble
    assert shift[2].abs().max() < 1e-4  # nothing moves across slices
    assert torch.allclose(shift[:2], shift[:2, :, :, :1].expand_as(shift[:2]))  # the same field on every slice
    inside = shift[:2, 16:-16, 16:-16]  # away from the edges, where reads past the border repeat it
    neighbours = (inside[:, 1:] - inside[:, :-1]).abs().max()
    assert neighbours < 0.5  # smooth: adjacent voxels move almost together
    assert out["label"].dtype == torch.uint8 and set(out["label"].unique().tolist()) <= {0, 1, 2, 3}


def test_elastic_moves_the_label_with_the_image():
    shape = (48, 48, 4)
    disc = ((coordinates(shape)[0] - 24) ** 2 + (coordinates(shape)[1] - 24) ** 2 < 12**2).float()[None]
    transform = RandInPlaneElasticd(["image", "label"], prob=1.0, max_displacement=5.0).set_random_state(0)
    out = transform({"image": disc.clone(), "label": disc.to(torch.uint8)})

    assert not torch.equal(out["label"], disc.to(torch.uint8))  # the disc's outline moved
    agree = (out["image"] > 0.5) == (out["label"] > 0)
    assert agree.float().mean() > 0.99  # and the label went where the image went


def test_elastic_is_reproducible_under_a_seed_and_skipped_at_probability_zero():
    image = torch.randn(4, 32, 32, 4)

    def run(seed: int, prob: float = 1.0) -> torch.Tensor:
        return RandInPlaneElasticd(["image"], prob=prob).set_random_state(seed)({"image": image})["image"]

    assert torch.equal(run(5), run(5)) and not torch.equal(run(5), run(6))
    assert torch.equal(run(5, prob=0.0), image)


def test_elastic_is_in_the_training_chain_only_when_asked(make_dataset):
    def has_elastic(augment: Augmentation | None) -> bool:
        chain = build_train_transforms(patch_size=(32, 32, 16), augment=augment)
        return any(isinstance(t, RandInPlaneElasticd) for t in chain.transforms)

    assert not has_elastic(Augmentation()) and not has_elastic(None)
    assert has_elastic(Augmentation(elastic_prob=0.5))
    case = discover(make_dataset("brats2021", cases=1)).cases[0].to_dict()
    chain = build_train_transforms(patch_size=(32, 32, 16), samples_per_case=2, augment=Augmentation(elastic_prob=1.0))
    chain.set_random_state(0)
    for patch in chain(case):
        assert patch["image"].shape == (4, 32, 32, 16) and torch.isfinite(patch["image"]).all()
        wt, tc, et = patch["label"]
        assert torch.all(tc <= wt) and torch.all(et <= tc)
        assert np.isin(patch["label"].numpy(), (0.0, 1.0)).all()
