"""The two comparison recipes of the real-data budget run, trained with the same network, loss, optimiser and
budget-aware schedule as brats3d (only the data pipeline differs), and saved as brats3d checkpoints so that
prediction and scoring are identical for all three.

- tutorial: as MONAI's BraTS tutorial: ``Dataset`` without cache, ``LoadImaged`` of the NIfTI files for every
  sample, RAS orientation, random 160x160x16 crop, normalisation, flips, intensity scale and shift.
- monai: a careful MONAI recipe: the same, but ``CacheDataset`` and ``RandCropByPosNegLabeld`` (pos 1 : neg 1).
"""

from __future__ import annotations

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
)
from monai.utils import set_determinism

from brats3d.config import RunConfig
from brats3d.data.labels import to_canonical
from brats3d.data.layouts import Case
from brats3d.models import build_network
from brats3d.training.checkpoint import save_checkpoint
from brats3d.training.losses import build_loss
from brats3d.training.trainer import budget_share, build_optimizer, set_learning_rate
from brats3d.transforms import LabelToTargetd

RECIPES = ("tutorial", "monai")


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
            RandCropByPosNegLabeld(
                keys=keys,
                label_key="label",
                spatial_size=patch,
                pos=1,
                neg=1,
                num_samples=config.data.patches_per_case,
                image_key="image",
            )
        ]
    tail = [
        *[RandFlipd(keys=keys, prob=0.5, spatial_axis=a) for a in range(3)],
        RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
        RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
        LabelToTargetd(config.model.target),
        EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False),
    ]
    return Compose([*head, *crop, *tail])


def train_recipe(recipe: str, cases: list[Case], config: RunConfig, run_dir: Path, log=print) -> dict:
    """Train for ``config.train.max_minutes`` of wall clock with brats3d's schedule and save ``run_dir/best.pt``
    (the final weights, as for brats3d)."""
    set_determinism(config.seed)
    items = [{"image": [str(p) for p in c.images], "label": str(c.label)} for c in cases]
    transform = _transforms(recipe, config, cases[0].convention.value)
    if recipe == "tutorial":
        dataset, per_item = Dataset(items, transform), 1
    else:
        dataset, per_item = CacheDataset(items, transform, progress=False), config.data.patches_per_case
    loader = DataLoader(
        dataset,
        batch_size=max(1, config.train.batch_size // per_item),
        shuffle=True,
        num_workers=config.data.num_workers,
    )
    model = build_network(config.model.network, config.data.patch_size, config.model.target, config.model.kwargs)
    loss_fn = build_loss(config.loss.name, config.model.target, config.loss.smooth)
    optimizer = build_optimizer(model, config)
    t0, epochs, patches = time.perf_counter(), 0, 0
    while (used := budget_share(config, time.perf_counter() - t0)) < 1.0:
        set_learning_rate(optimizer, config, epochs, used)
        model.train()
        losses = []
        for batch in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(batch["image"]), batch["label"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip or 1e9)
            optimizer.step()
            losses.append(float(loss))
            patches += batch["image"].shape[0]
        epochs += 1
        log(f"{recipe}: epoch {epochs} loss {np.mean(losses):.4f} ({time.perf_counter() - t0:.0f}s)")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run_dir / "best.pt", model, config, cases[0].convention.value, epoch=epochs)
    seconds = time.perf_counter() - t0
    return {
        "epochs": epochs,
        "patches": patches,
        "train_minutes": round(seconds / 60, 1),
        "patches_per_s": patches / seconds,
    }
