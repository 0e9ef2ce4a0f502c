"""Shared fixtures: tiny synthetic datasets in every layout, written fresh for each test that asks."""

from __future__ import annotations

from pathlib import Path

import pytest

from brats3d.config import load_config
from brats3d.data.synthetic import make_phantom, write_dataset
from brats3d.models import build_network
from brats3d.models.checkpoint import save_checkpoint
from brats3d.training.trainer import train

SMALL = (48, 48, 32)
REAL_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "brats18-sample"


@pytest.fixture
def make_dataset(tmp_path: Path):
    """``make_dataset(layout, cases=2, shape=SMALL)`` -> root of a freshly written synthetic dataset."""

    def _make(layout: str = "msd", cases: int = 2, shape=SMALL, seed: int = 0, name: str | None = None) -> Path:
        root = tmp_path / (name or f"{layout}_{cases}_{seed}")
        write_dataset(root, cases, layout=layout, shape=shape, seed=seed)
        return root

    return _make


@pytest.fixture(scope="session")
def phantom():
    """One small phantom: image (4, X, Y, Z) and canonical labels (X, Y, Z)."""
    return make_phantom(SMALL, seed=3)


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip("../shared/data/brats18-sample is not present")
    return REAL_DATA


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """A briefly trained tiny unet3d (one step is enough: these tests check plumbing, not accuracy)."""
    root = tmp_path_factory.mktemp("ckpt")
    write_dataset(root / "data", 3, layout="msd", shape=(40, 40, 24), seed=2)
    config = load_config(
        None,
        [
            "data.patch_size=[32,32,16]",
            "data.patches_per_case=1",
            "data.num_workers=0",
            "train.batch_size=1",
            "train.epochs=1",
            "train.steps_per_epoch=1",
            "model.kwargs={channels: [4, 8, 16, 32, 64]}",
            "validation.max_cases=1",
        ],
    )
    train(config, root / "run", data_dir=root / "data", log=lambda _: None)
    return root / "run" / "best.pt"


@pytest.fixture(scope="session")
def mirror_checkpoint(tmp_path_factory):
    """An untrained tiny unet3d that takes the four modalities and their left-right asymmetries (eight channels)."""
    config = load_config(
        None,
        ["data.mirror_difference=true", "data.patch_size=[32,32,16]", "model.kwargs={channels: [4, 8, 16, 32, 64]}"],
    )
    network = build_network("unet3d", config.data.patch_size, kwargs=config.model.kwargs, in_channels=8)
    path = tmp_path_factory.mktemp("mirror") / "mirror.pt"
    save_checkpoint(path, network, config, "msd")
    return path
