"""Training data: the case split, cached datasets and loaders (each DDP rank caches only its own partition)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.transforms import Compose

from brats3d.config import RunConfig
from brats3d.data.layouts import Case
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path
from brats3d.transforms import build_train_transforms, build_val_transforms


def split_cases(cases: list[Case], config: RunConfig) -> tuple[list[Case], list[Case]]:
    """Split by case (never by patch): explicit ``val_cases`` or a seeded random ``val_fraction``."""
    by_id = {c.case_id: c for c in cases}
    if config.data.val_cases:
        unknown = [i for i in config.data.val_cases if i not in by_id]
        if unknown:
            raise BratsInputError(None, f"data.val_cases names unknown cases: {', '.join(unknown)}")
        val_ids = set(config.data.val_cases)
    else:
        if len(cases) < 2:
            raise BratsInputError(None, f"need at least 2 labelled cases to train and validate, found {len(cases)}")
        ids = sorted(by_id)
        order = np.random.default_rng(config.seed).permutation(len(ids))
        n_val = min(len(ids) - 1, max(1, round(len(ids) * config.data.val_fraction)))
        val_ids = {ids[i] for i in order[:n_val]}
    train = [c for c in cases if c.case_id not in val_ids]
    val = [c for c in cases if c.case_id in val_ids]
    if not train:
        raise BratsInputError(None, "no training cases left after the validation split")
    return train, val


def write_split(path: Path, train: list[Case], val: list[Case]) -> None:
    payload = {"train": [c.case_id for c in train], "validation": [c.case_id for c in val]}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))


def read_split(path: Path, cases: list[Case]) -> tuple[list[Case], list[Case]]:
    """The split saved with a run, so a resumed run trains and validates on exactly the same cases."""
    saved = json.loads(path.read_text())
    by_id = {c.case_id: c for c in cases}
    missing = [i for i in saved["train"] + saved["validation"] if i not in by_id]
    if missing:
        raise BratsInputError(path, f"cases of the saved split are missing from the data: {', '.join(missing[:5])}")
    return [by_id[i] for i in saved["train"]], [by_id[i] for i in saved["validation"]]


def train_transforms(config: RunConfig) -> Compose:
    d = config.data
    return build_train_transforms(
        patch_size=d.patch_size,
        min_tumour_fraction=d.min_tumour_fraction,
        unbiased_fraction=d.unbiased_fraction,
        class_balance=d.class_balance,
        samples_per_case=d.patches_per_case,
        target=config.model.target,
        per_slice_norm=d.normalisation == "slice",
        reader=d.reader,
        augment=d.augment,
        noise_std=d.noise_std,
    )


def _dataset(items: list[dict], transform: Compose, config: RunConfig, cache_dir: Path) -> Dataset:
    d = config.data
    if d.cache == "memory":
        # copy_cache=False: nothing after the cache mutates the cached volume (RandTumourPatchd copies out each
        # patch), so the per-sample deep copy of a whole scan that MONAI makes by default is pure waste.
        return CacheDataset(
            items, transform, cache_rate=d.cache_rate, num_workers=None, progress=False, copy_cache=False
        )
    if d.cache == "disk":
        return PersistentDataset(items, transform, cache_dir=cache_dir)
    return Dataset(items, transform)


def build_datasets(
    train: list[Case], val: list[Case], config: RunConfig, cache_dir: Path, rank: int = 0, world: int = 1
) -> tuple[Dataset, Dataset, Compose]:
    """Datasets over this rank's share of the cases; returns (train, validation, train transform)."""
    transform = train_transforms(config)
    val_transform = build_val_transforms(config.data.normalisation == "slice", config.data.reader)
    train_items = [c.to_dict() for c in train[rank::world]]
    val_items = [c.to_dict() for c in val[rank::world]]
    return (
        _dataset(train_items, transform, config, cache_dir / "train"),
        _dataset(val_items, val_transform, config, cache_dir / "val"),
        transform,
    )


def steps_per_epoch(config: RunConfig, n_train: int, world: int) -> int:
    """Identical on every rank (DDP needs the same number of steps everywhere)."""
    if config.train.steps_per_epoch:
        return config.train.steps_per_epoch
    cases_per_step = config.train.batch_size // config.data.patches_per_case
    return max(1, math.ceil(n_train / (world * cases_per_step)))


def train_loader(dataset: Dataset, config: RunConfig, epoch_seed: int) -> DataLoader:
    """A loader whose shuffling and worker seeds depend only on the epoch, so a resumed epoch replays exactly."""
    generator = torch.Generator().manual_seed(epoch_seed)
    return DataLoader(
        dataset,
        batch_size=config.train.batch_size // config.data.patches_per_case,
        shuffle=True,
        num_workers=config.data.num_workers,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )
