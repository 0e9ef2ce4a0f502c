"""``brats3d train``: patch training, whole-scan validation, exact resume, DDP, in named steps.

``Trainer`` follows nnU-Net's shape: ``setup`` builds the network, loss and optimiser before any data is read (so a
bad configuration fails in seconds, not after minutes of caching), ``load_data`` caches the cases, ``train_step``
is one optimiser update, ``train_epoch`` a fixed number of them, ``validate`` scores whole scans, ``save_state``
writes the checkpoints and ``run`` loops until the epoch limit, the time budget or early stopping.
"""

from __future__ import annotations

import csv
import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from monai.utils import set_determinism
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from brats3d.config import AnyConfig, RunConfig, SliceRunConfig, load_config
from brats3d.data.inspect import require_good_cases
from brats3d.data.io import case_spacing
from brats3d.data.labels import CLASS_NAMES, REGION_NAMES, REGION_SHORT
from brats3d.data.layouts import Case, discover
from brats3d.data.targets import Target, get_target
from brats3d.errors import BratsInputError, find_input_error
from brats3d.evaluation.metrics import score_case
from brats3d.files import atomic_path, check_output_location, ensure_output_dir
from brats3d.inference.predict import PredictOptions, segment_cropped
from brats3d.models import build_network
from brats3d.models.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state, unwrap
from brats3d.models.device import (
    autocast,
    available_cores,
    describe_precision,
    needs_grad_scaler,
    select_device,
    to_training_device,
)
from brats3d.models.losses import DeeplySupervised, build_loss
from brats3d.training import distributed as dist
from brats3d.training.data import (
    build_datasets,
    loader_workers,
    median_spacing,
    rank_share,
    read_split,
    split_cases,
    steps_per_epoch,
    train_loader,
    write_split,
)
from brats3d.training.hard_negatives import HardPatchPool, false_positive_voxels, patch_sampler
from brats3d.transforms.resampling import SPACING_TOLERANCE, resampling_factors
from brats3d.transforms.symmetry import image_channels

# Updates skipped in a row for non-finite gradients before a run stops as diverged: a gradient scaler's first
# overflows skip a few; dozens in a row mean NaN weights or a numerics fault that would waste the whole budget.
MAX_NONFINITE_STEPS = 25
DICE_KEYS = [f"dice_{n}" for n in (*REGION_NAMES, *CLASS_NAMES)]
CSV_COLUMNS = ["epoch", "train_loss", "lr", "patches_per_s", "data_wait_share", *DICE_KEYS, "mean_dice", "seconds"]


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_mean_dice: float
    history: list[dict] = field(default_factory=list)
    is_main: bool = True  # False on the other ranks of a torchrun job


def build_optimizer(model: nn.Module, config: RunConfig) -> torch.optim.Optimizer:
    t = config.train
    if t.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=t.lr, momentum=0.99, nesterov=True, weight_decay=t.weight_decay)
    cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)


def lr_factor(config: RunConfig, epoch: int, budget_used: float = 0.0) -> float:
    """Learning-rate multiplier for ``epoch``: linear warm-up, then a decay to zero at the end of training.

    ``cosine`` is the default; ``poly`` is nnU-Net's ``(1 - progress) ** 0.9``, almost linear: below the cosine in
    the first half of training, above it in the second, so less of the budget is spent at a rate near zero.

    The end is whichever comes first, ``train.epochs`` or the ``train.max_minutes`` budget (``budget_used`` is the
    share of it spent), so that a budget run anneals within its budget instead of stopping at an almost unchanged
    rate partway down a cosine planned for many more epochs.
    """
    t = config.train
    if epoch < t.warmup_epochs:
        return (epoch + 1) / (t.warmup_epochs + 1)
    if t.scheduler == "none":
        return 1.0
    progress = min(1.0, max((epoch - t.warmup_epochs) / max(1, t.epochs - t.warmup_epochs), budget_used))
    if t.scheduler == "poly":
        return (1.0 - progress) ** 0.9
    return 0.5 * (1 + math.cos(math.pi * progress))


def set_learning_rate(optimizer: torch.optim.Optimizer, config: RunConfig, epoch: int, budget_used: float) -> float:
    """Set the rate for ``epoch`` on every parameter group (once per epoch) and return it."""
    lr = config.train.lr * lr_factor(config, epoch, budget_used)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def budget_share(config: RunConfig, seconds: float) -> float:
    """Share of the ``train.max_minutes`` budget spent after ``seconds`` of training (0 without a budget)."""
    return seconds / (60 * config.train.max_minutes) if config.train.max_minutes else 0.0


def validation_labels(model: nn.Module, item: dict, config: RunConfig, device: torch.device) -> np.ndarray:
    """Canonical labels for one whole validation scan (cropped grid), by the code ``brats3d predict`` runs."""
    v = config.validation
    options = PredictOptions(overlap=v.overlap, sw_batch_size=v.sw_batch_size, tta=False, amp=config.train.amp)
    target = get_target(config.model.target)
    _, labels = segment_cropped([model], item["image"], target, config.inference_window, options, device, v.threshold)
    return labels


def validate(model: nn.Module, dataset, config: RunConfig, device: torch.device) -> dict[str, float]:
    """Mean Dice per region and class over this rank's whole validation scans, reduced across ranks."""
    model.eval()
    rows = []
    for item in dataset:
        pred = validation_labels(model, item, config, device)
        ref = item["label"][0].numpy().astype(np.uint8)
        scores = score_case(pred, ref, item["spacing"], with_hd95=False)
        rows.append({f"dice_{k}": v["dice"] for k, v in scores.items()})
        if config.validation.max_cases and len(rows) >= config.validation.max_cases:
            break
    rows = [r for part in dist.all_gather_objects(rows) for r in part]
    if not rows:
        return {}
    means = {k: float(np.mean([r[k] for r in rows])) for k in DICE_KEYS}
    means["mean_dice"] = float(np.mean([means[f"dice_{n}"] for n in REGION_NAMES]))
    return means


def _write_history(run_dir: Path, history: list[dict], columns: list[str]) -> None:
    with atomic_path(run_dir / "metrics.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in history:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


def _summary_line(row: dict, epochs: int, improved: bool) -> str:
    text = (
        f"epoch {row['epoch']}/{epochs}  loss {row['train_loss']:.4f}  lr {row['lr']:.2e}  "
        f"{row['patches_per_s']:.1f} patches/s"
    )
    if "mean_dice" in row:
        regions = " ".join(f"{REGION_SHORT[n]} {row[f'dice_{n}']:.3f}" for n in REGION_NAMES)
        text += f"  val Dice {regions} (mean {row['mean_dice']:.3f}{', best' if improved else ''})"
    return text + f"  {row['seconds']:.0f}s"


def mean_finite(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none): an epoch's loss without its skipped updates."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def gradients_are_finite(model: nn.Module) -> bool:
    """Whether every gradient is finite; under DDP they are averaged across ranks already, so all ranks agree."""
    grads = [p.grad.detach() for p in model.parameters() if p.grad is not None]
    return bool(torch.stack([torch.isfinite(g).all() for g in grads]).all()) if grads else True


class Trainer:
    """One training run in ``run_dir``; only rank 0 of a torchrun job writes or prints.

    A task other than 3D BraTS scans (``training.slices``) overrides what differs: ``build_model``, ``load_data``,
    ``validate``, ``summary_line`` and ``csv_columns``; the loop, checkpoints and resume stay this one.
    """

    csv_columns = CSV_COLUMNS

    def __init__(self, config: RunConfig, run_dir: Path, resume: bool, log: Callable[[str], None] = print) -> None:
        self.config, self.run_dir, self.resume, self.log = config, Path(run_dir), resume, log
        self.epoch, self.best, self.stale, self.seconds = 0, -1.0, 0, 0.0
        self.history: list[dict] = []
        self.last_saved = -math.inf
        self.hard_pool: HardPatchPool | None = None  # with data.hard_negative_fraction (3D scans only)
        self.hard_pool_states: list[dict] = []  # every rank's pool as last.pt holds it (restored, then each epoch's)
        self.nonfinite_in_a_row = 0  # updates skipped for NaN/inf gradients since the last good one
        self.spacing: list[float] | None = None  # median voxel spacing of the training cases (3D scans), in checkpoints

    # -- set-up: network, loss and optimiser first, then the data ---------------------------------------------
    def setup(self) -> None:
        """Device, network, loss and optimiser (and the saved state on resume), before any data is read."""
        c = self.config
        device = select_device(c.train.device)
        self.device = dist.init_from_env(device.type) or device
        self.rank, self.world = dist.rank(), dist.world_size()
        self.workers = loader_workers(c, self.device.type, self.world)
        torch.set_num_threads(c.train.threads or max(1, available_cores() // self.world - self.workers))
        set_determinism(seed=c.seed + self.rank)
        self.model = to_training_device(self.build_model(), self.device)
        self.loss_fn = DeeplySupervised(build_loss(c.loss.name, self.target, c.loss.smooth, c.loss.squared))
        self.optimizer = build_optimizer(self.model, c)
        self.scaler = torch.amp.GradScaler("cuda", enabled=needs_grad_scaler(self.device, c.train.amp))
        self.ema = self.build_ema()
        if self.resume:
            self._restore()
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.model, device_ids=ids)

    def build_ema(self) -> AveragedModel | None:
        """torch's Polyak averaging of the weights (``train.ema_decay``), or None; ``use_buffers``: a batch-norm
        network's running statistics are averaged along with the weights."""
        decay = self.config.train.ema_decay
        if not decay:
            return None
        return AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)

    @property
    def predicting_model(self) -> nn.Module:
        """The weights that validation and the checkpoints predict with: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.model

    @property
    def target(self) -> Target:
        return get_target(self.config.model.target)

    def build_model(self) -> nn.Module:
        c = self.config
        channels = image_channels(c.data.mirror_difference)
        return build_network(c.model.network, c.data.patch_size, c.model.target, c.model.kwargs, in_channels=channels)

    def _restore(self) -> None:
        state = load_checkpoint(self.run_dir / "last.pt", map_location=self.device)
        self.model.load_state_dict(state.get("train_model", state["model"]))
        if self.ema is not None:  # a run resumed with averaging newly switched on starts it from these weights
            self.ema.module.load_state_dict(state["model"])
            self.ema.n_averaged.fill_(state.get("ema_updates", 0))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best, self.history = state["epoch"], state["best_mean_dice"], state["history"]
        self.stale = state["stale"]
        self.seconds = state["train_seconds"]  # the time budget counts the time spent before the interruption
        self.hard_pool_states = state.get("hard_patches", [])
        set_rng_state(state["rng"])
        self.last_saved = time.perf_counter()
        self.log(f"resuming {self.run_dir} after epoch {self.epoch} (best mean Dice {self.best:.4f})")

    def load_data(self) -> None:
        """Index the dataset, split it (or read the saved split), check every case and cache this rank's share.

        Bad cases stop the run before training, all of them named at once: headers and file completeness first
        (cheap), and if the cache fill still meets a bad voxel (NaN, a label value outside the convention), every
        case is read to list them all. The run folder is written only after the data passed.
        """
        c = self.config
        index = discover(c.data.root, c.data.layout).require_clean()
        self.convention = index.layout.convention.value
        cases = index.labelled()
        split_path = self.run_dir / "split.json"
        self.train_cases, self.val_cases = read_split(split_path, cases) if self.resume else split_cases(cases, c)
        require_good_cases([*self.train_cases, *self.val_cases], index.root)
        self.spacing = self.training_spacing(cases)
        cache_dir = Path(c.data.cache_dir or self.run_dir / "cache")
        try:
            self.train_ds, self.val_ds, self.train_transform = build_datasets(
                self.train_cases, self.val_cases, c, cache_dir, self.rank, self.world, self.spacing
            )
        except Exception as exc:
            if find_input_error(exc) is None:
                raise
            require_good_cases([*self.train_cases, *self.val_cases], index.root, full=True)
            raise find_input_error(exc) from exc
        self.steps = steps_per_epoch(c, len(self.train_cases), self.world)
        if c.data.hard_negative_fraction:
            self.hard_pool = HardPatchPool(int(np.prod(c.data.patch_size)))
            mine = [case.case_id for case in rank_share(self.train_cases, self.rank, self.world)]
            self.hard_pool.load_state(self.hard_pool_states, mine)
        if dist.is_main() and not self.resume:
            ensure_output_dir(self.run_dir)
            c.save(self.run_dir / "config.yaml")
            write_split(split_path, self.train_cases, self.val_cases, c)

    def training_spacing(self, cases: list[Case]) -> list[float]:
        """The dataset's median voxel spacing (``median_spacing``), which checkpoints record so that ``predict``
        resamples scans of another spacing to it; training cases far from it are resampled to it
        (``data.resample``), or named when that is off: the network would see their anatomy at another scale."""
        spacings = {case.case_id: case_spacing(case) for case in cases}  # each header read once
        median = median_spacing(spacings.values())
        odd = [case.case_id for case in self.train_cases if resampling_factors(spacings[case.case_id], median)]
        if odd and dist.is_main():
            shown = ", ".join(odd[:5]) + (f" and {len(odd) - 5} more" if len(odd) > 5 else "")
            far = (
                f"{len(odd)} training case(s) have a voxel spacing over {SPACING_TOLERANCE * 100:g} % from the "
                f"median {'x'.join(f'{v:g}' for v in median)} mm ({shown})"
            )
            if self.config.data.resample:
                self.log(f"{far}: resampled to it for training")
            else:
                self.log(f"warning: {far}; data.resample: true trains them at the median spacing")
        return median

    # -- one step, one epoch ----------------------------------------------------------------------------------
    def train_step(self, batch: dict) -> float:
        """One optimiser update on ``batch``; returns the loss."""
        image = batch["image"].to(self.device, non_blocking=True)
        target = batch["label"].to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.config.train.amp):
            logits = self.model(image)
        loss = self.loss_fn(logits, target)  # in fp32, and over every output of a deeply supervised network
        if self.hard_pool is not None:
            wrong = false_positive_voxels(logits, target, self.target).cpu()
            self.hard_pool.record(batch["case_id"], batch["patch_start"], wrong)
        self.scaler.scale(loss).backward()
        if self.config.train.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.train.grad_clip)
        finite = gradients_are_finite(self.model)
        if finite or self.scaler.is_enabled():  # a gradient scaler skips a non-finite update itself
            self.scaler.step(self.optimizer)
        self.scaler.update()
        if not finite:
            self.skip_nonfinite_update()
            return math.nan
        self.nonfinite_in_a_row = 0
        if self.ema is not None:
            self.ema.update_parameters(unwrap(self.model))
        return float(loss.detach())

    def skip_nonfinite_update(self) -> None:
        """Count an update left out for NaN/inf gradients, so that NaN never reaches the weights (and so ``last.pt``);
        stop the run with a clear error when they keep coming."""
        self.nonfinite_in_a_row += 1
        if self.nonfinite_in_a_row >= MAX_NONFINITE_STEPS:
            raise BratsInputError(
                self.run_dir / "config.yaml",
                f"training diverged: {self.nonfinite_in_a_row} updates in a row had NaN or infinite gradients "
                f"(epoch {self.epoch + 1}); none reached the weights or last.pt. Try a lower train.lr or "
                "train.amp=off",
            )

    def train_epoch(self) -> dict:
        """``steps`` updates with this epoch's seeds (so a resumed epoch replays exactly); returns its row."""
        c = self.config
        lr = set_learning_rate(self.optimizer, c, self.epoch, budget_share(c, self.seconds))
        epoch_seed = c.seed * 100_003 + self.epoch * 1_009 + self.rank
        self.train_transform.set_random_state(seed=epoch_seed % (2**31))
        if self.hard_pool is not None:  # before the loader starts, so that its workers copy this epoch's pool
            patch_sampler(self.train_transform).set_hard_starts(self.hard_pool.starts())
        self.model.train()
        batches = iter(train_loader(self.train_ds, c, epoch_seed, self.workers, self.steps))
        losses, patches, wait, compute = [], 0, 0.0, 0.0
        bar = tqdm(
            total=self.steps, desc=f"epoch {self.epoch + 1}", disable=None if dist.is_main() else True, leave=False
        )
        for _ in range(self.steps):
            t0 = time.perf_counter()
            batch = next(batches)
            t1 = time.perf_counter()
            losses.append(self.train_step(batch))
            patches += batch["image"].shape[0]
            wait, compute = wait + t1 - t0, compute + time.perf_counter() - t1
            bar.set_postfix(loss=f"{losses[-1]:.4f}", patches_s=f"{patches / (wait + compute):.1f}")
            bar.update()
        bar.close()
        skipped = sum(math.isnan(loss) for loss in losses)
        if skipped and dist.is_main():
            self.log(f"epoch {self.epoch + 1}: {skipped} of {self.steps} updates skipped (NaN or infinite gradients)")
        busy = max(wait + compute, 1e-9)
        return {
            "epoch": self.epoch + 1,
            "train_loss": dist.mean_across_ranks(mean_finite(losses), self.device),
            "lr": lr,
            "patches_per_s": dist.mean_across_ranks(patches / busy, self.device) * self.world,
            "data_wait_share": wait / busy,
        }

    # -- validation, saving, stopping -------------------------------------------------------------------------
    def validate_if_due(self, row: dict, last_epoch: bool) -> bool:
        """Validate every ``validation.every`` epochs and after the last; returns whether the best improved."""
        if not self.val_cases or not ((self.epoch + 1) % self.config.validation.every == 0 or last_epoch):
            return False
        row.update(self.validate())
        if row.get("mean_dice", -1) > self.best:
            self.best, self.stale = row["mean_dice"], 0
            return True
        self.stale += 1
        return False

    def validate(self) -> dict[str, float]:
        """Mean Dice per region and class over the whole validation scans, and their mean (``mean_dice``)."""
        return validate(self.predicting_model, self.val_ds, self.config, self.device)

    def summary_line(self, row: dict, improved: bool) -> str:
        return _summary_line(row, self.config.train.epochs, improved)

    def save_state(self, improved: bool, last_epoch: bool) -> None:
        """last.pt (at most every ``train.checkpoint_minutes``, always after the last epoch or a validation), and
        best.pt when validation improved; without validation cases best.pt holds the latest saved weights."""
        c = self.config
        due = time.perf_counter() - self.last_saved >= 60 * c.train.checkpoint_minutes
        if not (due or last_epoch or improved or "mean_dice" in self.history[-1]):
            return
        state = {
            "epoch": self.epoch,
            "best_mean_dice": self.best,
            "history": self.history,
            "stale": self.stale,
            "train_seconds": self.seconds,
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
        }
        if self.hard_pool is not None:
            state["hard_patches"] = self.hard_pool_states
        if self.ema is not None:  # "model" holds the average (what predict uses); resume needs the trained weights
            state["train_model"] = unwrap(self.model).state_dict()
            state["ema_updates"] = int(self.ema.n_averaged)
        described = {"spacing": self.spacing} if self.spacing is not None else {}
        state.update(described)
        # last.pt first: metrics.csv is rebuilt from the history inside it, so the two never disagree.
        save_checkpoint(self.run_dir / "last.pt", self.predicting_model, c, self.convention, **state)
        if improved or not self.val_cases:
            extra = {"epoch": self.epoch, "best_mean_dice": self.best, **described}
            save_checkpoint(self.run_dir / "best.pt", self.predicting_model, c, self.convention, **extra)
        _write_history(self.run_dir, self.history, self.csv_columns)
        self.last_saved = time.perf_counter()

    def run(self) -> TrainResult:
        """Epochs until the epoch limit, the time budget or early stopping."""
        c = self.config
        writer = None
        if dist.is_main():
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=self.epoch + 1)
            _write_history(self.run_dir, self.history, self.csv_columns)
            self.log(
                f"training {c.model.network} on {len(self.train_cases)} cases, validating on {len(self.val_cases)}; "
                f"device {self.device} in {describe_precision(self.device, c.train.amp)}, world size {self.world}, "
                f"{self.steps} steps/epoch, {self.workers} loader workers, {torch.get_num_threads()} threads"
            )
        t_start = time.perf_counter() - self.seconds
        while self.epoch < c.train.epochs:
            t_epoch = time.perf_counter()
            row = self.train_epoch()
            self.seconds = dist.mean_across_ranks(time.perf_counter() - t_start, self.device)  # same on every rank
            over_budget = budget_share(c, self.seconds) >= 1.0
            last_epoch = self.epoch + 1 == c.train.epochs or over_budget
            improved = self.validate_if_due(row, last_epoch)
            row["seconds"] = time.perf_counter() - t_epoch
            self.history.append(row)
            self.epoch += 1
            if self.hard_pool is not None:  # every rank's pool (its own cases) goes into last.pt
                self.hard_pool_states = dist.all_gather_objects(self.hard_pool.state())
            if dist.is_main():
                self.save_state(improved, last_epoch)
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, float):
                        writer.add_scalar(key, value, self.epoch)
                writer.flush()
                self.log(self.summary_line(row, improved))
            dist.barrier()
            if over_budget:
                if dist.is_main():
                    self.log(f"time budget of {c.train.max_minutes:g} min reached after epoch {self.epoch}")
                break
            if c.train.patience and self.stale >= c.train.patience:
                if dist.is_main():
                    self.log(f"early stop: no improvement in {self.stale} validations")
                break
        if writer is not None:
            writer.close()
        is_main = dist.is_main()
        if isinstance(self.model, DistributedDataParallel):
            # DDP's reducer holds the process group: released here, while the interpreter is whole, the group's
            # gloo threads are joined by shutdown(); left to interpreter exit, a rank could abort with
            # "terminate called without an active exception" after a finished run.
            self.model = self.model.module
            gc.collect()
        dist.shutdown()
        return TrainResult(self.run_dir, self.epoch, self.best, self.history, is_main)


def train(
    config: AnyConfig | None = None,
    run_dir: str | Path = "runs/latest",
    data_dir: str | Path | None = None,
    resume: bool = False,
    overrides: list[str] = (),
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train (or resume) a run in ``run_dir``; only rank 0 writes. Returns where it ended."""
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / "last.pt").is_file():
            raise BratsInputError(run_dir, "nothing to resume: no last.pt in this run folder")
        config = load_config(run_dir / "config.yaml", list(overrides))
    else:
        if config is None:
            raise ValueError("config is required unless resuming")
        if (run_dir / "last.pt").exists():
            raise BratsInputError(run_dir, "run folder already holds a run; use --resume or choose another --out")
    if data_dir is not None:
        config.data.root = str(data_dir)
    if not config.data.root:
        raise BratsInputError(None, "no dataset: pass --data DIR or set data.root in the config")
    check_output_location(run_dir)
    if isinstance(config, SliceRunConfig):
        from brats3d.training.slices import SliceTrainer  # the 2D task subclasses this module's Trainer

        trainer: Trainer = SliceTrainer(config, run_dir, resume, log)
    else:
        trainer = Trainer(config, run_dir, resume, log)
    trainer.setup()
    trainer.load_data()
    return trainer.run()
