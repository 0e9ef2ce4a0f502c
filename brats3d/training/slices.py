"""``brats3d train`` on a 2D slice dataset: the 3D ``Trainer``'s loop, checkpoints, exact resume, TensorBoard,
metrics.csv and progress bars, with slices for samples and per-patient DSC for validation.

Splits are by patient (every slice of a patient on one side), with the same folds, ``val_cases`` (patient ids) and
``val_fraction`` as 3D.
"""

from __future__ import annotations

import json

import numpy as np
import torch.nn as nn
from monai.data import CacheDataset

from brats3d.config import SliceRunConfig
from brats3d.data.slices import Slice, discover_slices, mask_values, read_image
from brats3d.data.targets import Target, slice_target
from brats3d.errors import BratsInputError
from brats3d.evaluation.slices import evaluate_with_models
from brats3d.files import atomic_path, ensure_output_dir
from brats3d.inference.slices import SliceModels, SlicePredictOptions
from brats3d.models import build_network
from brats3d.training import distributed as dist
from brats3d.training.data import _validation_ids, fold_assignment, rank_share, steps_per_epoch
from brats3d.training.trainer import Trainer
from brats3d.transforms.slices import SlicePostProcessing, build_slice_train_transforms, channel_stats

CSV_COLUMNS = [
    "epoch",
    "train_loss",
    "lr",
    "patches_per_s",
    "data_wait_share",
    "mean_dice",
    "dice_per_image",
    "seconds",
]


def split_patients(slices: list[Slice], config: SliceRunConfig) -> tuple[list[Slice], list[Slice]]:
    """Training and validation slices, split by patient."""
    patients = sorted({s.patient for s in slices})
    held_out = _validation_ids(patients, config)
    train = [s for s in slices if s.patient not in held_out]
    if not train:
        raise BratsInputError(None, "no training patients left after the validation split")
    return train, [s for s in slices if s.patient in held_out]


def _item(s: Slice) -> dict:
    return {"image": str(s.image), "label": str(s.mask)}


def training_stats(slices: list[Slice], config: SliceRunConfig, sample: int = 200) -> tuple[list[float], list[float]]:
    """Channel mean and std over (up to ``sample`` of) the training slices: validation patients are not looked at."""
    train, _ = split_patients(slices, config)
    chosen = train[:: max(1, len(train) // sample)]
    return channel_stats([read_image(s.image) for s in chosen])


class SliceTrainer(Trainer):
    """Trainer for ``SliceRunConfig``: the data facts a network needs (channels, classes) are read from the
    dataset's index and one image before the network is built, the cases are slices, validation is per patient."""

    csv_columns = CSV_COLUMNS

    def setup(self) -> None:
        c = self.config
        self.index = discover_slices(c.data.root, c.data.layout, c.data.patient_pattern).require_clean()
        labelled = self.index.labelled()
        if not labelled:
            raise BratsInputError(self.index.root, "no image with a mask to train on")
        if not self.resume:
            c.data.class_values = c.data.class_values or mask_values(labelled)
            c.model.in_channels = c.model.in_channels or read_image(labelled[0].image).shape[0]
            if c.data.normalisation == "dataset" and c.data.channel_mean is None:
                c.data.channel_mean, c.data.channel_std = training_stats(labelled, c)
        super().setup()

    @property
    def target(self) -> Target:
        return slice_target(self.config.data.class_values)

    @property
    def stats(self) -> tuple[list[float], list[float]] | None:
        d = self.config.data
        return (d.channel_mean, d.channel_std) if d.normalisation == "dataset" else None

    def build_model(self) -> nn.Module:
        c = self.config
        channels = (c.model.in_channels, self.target.out_channels)
        return build_network(c.model.network, c.data.image_size, kwargs=c.model.kwargs, channels=channels)

    def load_data(self) -> None:
        c = self.config
        slices = self.index.labelled()
        split_path = self.run_dir / "split.json"
        if self.resume:
            saved = json.loads(split_path.read_text())
            self.train_cases = [s for s in slices if s.patient in set(saved["train"])]
            self.val_cases = [s for s in slices if s.patient in set(saved["validation"])]
        else:
            self.train_cases, self.val_cases = split_patients(slices, c)
        self.convention = "binary" if len(c.data.class_values) == 2 else "classes"
        self.train_transform = build_slice_train_transforms(
            c.data.image_size, c.data.class_values, c.data.augment, self.stats
        )
        mine = rank_share(self.train_cases, self.rank, self.world)
        self.train_ds = CacheDataset([_item(s) for s in mine], self.train_transform, progress=False, copy_cache=False)
        self.val_ds = rank_share(self.val_cases, self.rank, self.world)
        self.steps = steps_per_epoch(c, len(self.train_cases), self.world)
        if dist.is_main() and not self.resume:
            ensure_output_dir(self.run_dir)
            c.save(self.run_dir / "config.yaml")
            patients: dict = {"train": sorted({s.patient for s in self.train_cases})}
            patients["validation"] = sorted({s.patient for s in self.val_cases})
            if c.data.folds:  # as 3D runs record it, so `brats3d evaluate --cv` can check the folds
                every = sorted({s.patient for s in slices})
                patients |= {"fold": c.data.fold, "folds": fold_assignment(every, c.data.folds, c.seed)}
            with atomic_path(split_path) as tmp:
                tmp.write_text(json.dumps(patients, indent=2))

    def validate(self) -> dict[str, float]:
        """Mean per-patient DSC of the foreground (``mean_dice``, which picks best.pt) and mean per-image DSC."""
        c = self.config
        model = self.predicting_model.eval()
        models = SliceModels(
            [model], self.target, c.data.class_values, c.data.image_size, c.model.in_channels, self.device,
            c.train.amp, self.stats,
        )  # fmt: skip
        patients = sorted({s.patient for s in self.val_ds})[: c.validation.max_cases or None]
        chosen = [s for s in self.val_ds if s.patient in set(patients)]
        options = SlicePredictOptions(SlicePostProcessing(threshold=c.validation.threshold))
        evaluation = evaluate_with_models(models, chosen, options, with_hd95=False)
        rows = [r for part in dist.all_gather_objects(evaluation.patients()) for r in part]
        images = [r for part in dist.all_gather_objects(evaluation.images) for r in part]
        if not rows:
            return {}
        return {
            "mean_dice": float(np.mean([r["foreground_dsc"] for r in rows])),
            "dice_per_image": float(np.mean([r["foreground_dsc"] for r in images])),
        }

    def summary_line(self, row: dict, improved: bool) -> str:
        text = (
            f"epoch {row['epoch']}/{self.config.train.epochs}  loss {row['train_loss']:.4f}  lr {row['lr']:.2e}  "
            f"{row['patches_per_s']:.1f} slices/s"
        )
        if "mean_dice" in row:
            text += f"  val DSC per patient {row['mean_dice']:.3f} (per image {row['dice_per_image']:.3f})"
            text += ", best" if improved else ""
        return text + f"  {row['seconds']:.0f}s"
