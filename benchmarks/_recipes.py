"""The comparison recipes of the real-data benchmarks, saved as brats3d checkpoints so that prediction and scoring are
identical for every recipe. Each trains through brats3d's own ``Trainer.train_step`` (same update code), with its
own data pipeline and the settings the team used for it.

- tutorial: as MONAI's BraTS tutorial: ``Dataset`` without cache, ``LoadImaged`` of the NIfTI files for every
  sample, RAS orientation, random 160x160x16 crop, normalisation, flips, intensity scale and shift; brats3d's
  network, loss, optimiser and budget-aware schedule.
- monai: the careful MONAI recipe of the accuracy issue: ``CacheDataset`` + ``RandCropByPosNegLabeld`` (one patch
  per step, centred on a tumour or a background voxel with equal odds), soft Dice (squared, sigmoid regions), Adam
  1e-3 with weight decay 1e-5 at a constant rate, batch 1, flips and intensity scale/shift, fp32.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, Dataset
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    Lambdad,
    LoadImaged,
    NormalizeIntensityd,
    Orientationd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
    SpatialPadd,
)
from monai.utils import set_determinism

from brats3d.config import RunConfig
from brats3d.data.labels import to_canonical
from brats3d.data.layouts import Case
from brats3d.models.checkpoint import save_checkpoint
from brats3d.training.trainer import Trainer, budget_share, set_learning_rate
from brats3d.transforms import LabelToTargetd

RECIPES = ("tutorial", "monai")


def recipe_config(recipe: str, config: RunConfig) -> RunConfig:
    """The settings a recipe trains with: brats3d's for the tutorial, the team's careful-MONAI settings for monai."""
    config = copy.deepcopy(config)
    if recipe == "monai":
        config.loss.name = "dice"
        config.train.optimizer, config.train.lr, config.train.weight_decay = "adam", 1e-3, 1e-5
        config.train.scheduler, config.train.warmup_epochs = "none", 0
        config.train.batch_size, config.data.patches_per_case = 1, 1
        config.train.amp = "off"
    return config


def _transforms(recipe: str, config: RunConfig, convention: str) -> Compose:
    keys = ["image", "label"]
    patch = tuple(config.data.patch_size)
    head = [
        LoadImaged(keys=keys, image_only=True),
        EnsureChannelFirstd(keys=keys),
        Orientationd(keys=keys, axcodes="RAS"),
        Lambdad(keys="label", func=lambda x: torch.as_tensor(to_canonical(np.asarray(x), convention))),
        NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
    ]
    if recipe == "tutorial":
        crop = [RandSpatialCropd(keys=keys, roi_size=patch, random_size=False)]
    else:
        crop = [
            SpatialPadd(keys=keys, spatial_size=patch),  # a no-op on 240x240x155 scans; smaller ones need it
            RandCropByPosNegLabeld(
                keys=keys,
                label_key="label",
                spatial_size=patch,
                pos=1,
                neg=1,
                num_samples=config.data.patches_per_case,
                image_key="image",
            ),
        ]
    tail = [
        *[RandFlipd(keys=keys, prob=0.5, spatial_axis=a) for a in range(3)],
        RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
        LabelToTargetd(config.model.target),
        EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False),
    ]
    return Compose([*head, *crop, *tail])


def train_recipe(
    recipe: str, cases: list[Case], config: RunConfig, run_dir: Path, max_patches: int = 0, log=print
) -> dict:
    """Train for ``config.train.max_minutes`` of wall clock, or for ``max_patches`` training patches when given,
    and save ``run_dir/best.pt`` (the final weights)."""
    config = recipe_config(recipe, config)
    set_determinism(config.seed)
    items = [{"image": [str(p) for p in c.images], "label": str(c.label)} for c in cases]
    transform = _transforms(recipe, config, cases[0].convention.value)
    if recipe == "tutorial":
        dataset, per_item = Dataset(items, transform), 1
    else:
        dataset, per_item = CacheDataset(items, transform, progress=False), config.data.patches_per_case
    loader = DataLoader(dataset, batch_size=max(1, config.train.batch_size // per_item), shuffle=True, num_workers=0)
    trainer = Trainer(config, run_dir, resume=False, log=log)
    trainer.setup()  # network, loss, optimiser exactly as brats3d builds them; the update is Trainer.train_step
    t0, epochs, patches = time.perf_counter(), 0, 0

    def used() -> float:
        return patches / max_patches if max_patches else budget_share(config, time.perf_counter() - t0)

    while used() < 1.0:
        set_learning_rate(trainer.optimizer, config, epochs, used())
        trainer.model.train()
        losses = []
        for batch in loader:
            losses.append(trainer.train_step(batch))
            patches += batch["image"].shape[0]
            if used() >= 1.0:
                break
        epochs += 1
        log(f"{recipe}: epoch {epochs} loss {np.mean(losses):.4f} ({time.perf_counter() - t0:.0f}s)")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run_dir / "best.pt", trainer.model, config, cases[0].convention.value, epoch=epochs)
    seconds = time.perf_counter() - t0
    return {
        "epochs": epochs,
        "patches": patches,
        "train_minutes": round(seconds / 60, 1),
        "patches_per_s": patches / seconds,
    }
