"""Hard-negative mining: which voxels count as false positives, how the per-case pool follows the network, and that
training keeps the pool in its checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brats3d.config import load_config
from brats3d.data.synthetic import write_dataset
from brats3d.data.targets import get_target
from brats3d.models.checkpoint import load_checkpoint
from brats3d.training.hard_negatives import POOL_SIZE, HardPatchPool, false_positive_voxels, patch_sampler
from brats3d.training.trainer import train
from brats3d.transforms import build_train_transforms


def test_false_positives_are_predicted_region_voxels_outside_that_region():
    target = torch.zeros(2, 3, 4, 4, 4)
    target[0, :, :2] = 1  # the first patch's tumour fills half of it, in every region
    logits = torch.full((2, 3, 4, 4, 4), -5.0)
    logits[0, 0] = 5.0  # WT predicted everywhere: 32 voxels outside the tumour
    logits[0, 2, :2] = 5.0  # ET where it is: no false positive
    logits[1, 2, 0, 0, :3] = 5.0  # three stray ET voxels in the second patch
    assert false_positive_voxels(logits, target, get_target("regions")).tolist() == [32, 3]
    stacked = torch.stack([logits, torch.full_like(logits, 5.0)], dim=1)  # deep supervision: full resolution first
    assert false_positive_voxels(stacked, target, get_target("regions")).tolist() == [32, 3]


def test_false_positives_of_classes_are_tumour_predictions_of_the_wrong_class():
    target = torch.zeros(1, 1, 2, 2, 2)
    target[0, 0, 0] = 3
    logits = torch.zeros(1, 4, 2, 2, 2)
    logits[0, 3] = 1.0  # class 3 everywhere: right on 4 voxels, wrong on 4
    logits[0, 0, 1, 1] = 2.0  # background predicted on 2 of those: never a false positive
    assert false_positive_voxels(logits, target, get_target("classes")).tolist() == [2]


def test_pool_keeps_hard_patches_drops_those_found_clean_and_keeps_the_newest():
    pool = HardPatchPool(patch_voxels=10_000)  # hard from 10 false-positive voxels
    pool.record(["a", "a", "b"], torch.tensor([[0, 0, 0], [1, 2, 3], [4, 4, 4]]), torch.tensor([50, 9, 10]))
    assert pool.starts() == {"a": [(0, 0, 0)], "b": [(4, 4, 4)]}
    pool.record(["a"], torch.tensor([[0, 0, 0]]), torch.tensor([0]))  # drawn again, now clean
    assert pool.starts() == {"b": [(4, 4, 4)]}
    for i in range(POOL_SIZE + 5):
        pool.record(["c"], torch.tensor([[i, 0, 0]]), torch.tensor([100]))
    assert pool.starts()["c"] == [(i, 0, 0) for i in range(5, POOL_SIZE + 5)]


def test_pool_state_round_trips_and_each_rank_restores_only_its_cases():
    pool = HardPatchPool(patch_voxels=100)
    pool.record(["a", "b"], torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([7, 8]))
    other_rank = {"c": [[0, 0, 0, 9]]}  # DDP: another rank's cases are not this rank's to draw
    restored = HardPatchPool(patch_voxels=100)
    restored.load_state([pool.state(), other_rank], case_ids=["a", "b"])
    assert restored.starts() == pool.starts()
    assert restored.state() == pool.state()


def test_the_sampler_is_found_in_the_training_chain():
    chain = build_train_transforms(patch_size=(32, 32, 16), samples_per_case=1, hard_negative_fraction=0.25)
    assert patch_sampler(chain).hard_fraction == 0.25


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "data"
    write_dataset(root, 4, layout="brats2021", shape=(48, 48, 32), seed=5)
    return root


def test_training_with_hard_negatives_keeps_each_cases_pool_in_last_pt(tiny_data, tmp_path):
    config = load_config(
        None,
        [
            "data.patch_size=[32,32,16]",
            "data.patches_per_case=1",
            "data.num_workers=0",
            "data.val_fraction=0",
            "data.hard_negative_fraction=0.5",
            "model.kwargs={channels: [8, 16, 32, 64, 128]}",
            "train.batch_size=2",
            "train.epochs=2",
        ],
    )
    train(config, tmp_path / "run", data_dir=tiny_data, log=lambda _: None)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["hard_patches"]
    assert len(saved) == 1  # one rank
    (pools,) = saved
    assert pools and set(pools) <= {case.name for case in tiny_data.iterdir()}
    for rows in pools.values():
        for x, y, z, wrong in rows:  # starts of 32x32x16 patches inside the 48x48x32 phantoms, and hard
            assert 0 <= x <= 16 and 0 <= y <= 16 and 0 <= z <= 16 and wrong >= 16
