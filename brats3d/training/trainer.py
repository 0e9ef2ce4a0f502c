"""``brats3d train``: patch training with soft Dice, AMP on CUDA, whole-scan validation, exact resume, DDP."""

from __future__ import annotations

import csv
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
from tqdm import tqdm

from brats3d.config import RunConfig, load_config
from brats3d.data.labels import CLASS_NAMES, REGION_NAMES, REGION_SHORT
from brats3d.data.layouts import discover
from brats3d.errors import BratsInputError
from brats3d.evaluation.metrics import score_case
from brats3d.files import atomic_path
from brats3d.inference.postprocess import restrict_to_brain
from brats3d.inference.sliding_window import (
    amp_dtype,
    autocast,
    probabilities_to_labels,
    select_device,
    sliding_window_predict,
)
from brats3d.models import build_network
from brats3d.training import distributed as dist
from brats3d.training.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from brats3d.training.data import build_datasets, read_split, split_cases, steps_per_epoch, train_loader, write_split
from brats3d.training.losses import build_loss

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
    """Learning-rate multiplier for ``epoch``: linear warm-up, then cosine decay to zero at the end of training.

    The end is whichever comes first, ``train.epochs`` or the ``train.max_minutes`` budget (``budget_used`` is the
    share of it spent), so that a budget run anneals within its budget instead of stopping at an almost unchanged
    rate partway down a cosine planned for many more epochs.
    """
    t = config.train
    if epoch < t.warmup_epochs:
        return (epoch + 1) / (t.warmup_epochs + 1)
    if t.scheduler == "none":
        return 1.0
    progress = max((epoch - t.warmup_epochs) / max(1, t.epochs - t.warmup_epochs), budget_used)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def set_learning_rate(optimizer: torch.optim.Optimizer, config: RunConfig, epoch: int, budget_used: float) -> float:
    """Set the rate for ``epoch`` on every parameter group (once per epoch) and return it."""
    lr = config.train.lr * lr_factor(config, epoch, budget_used)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def budget_share(config: RunConfig, seconds: float) -> float:
    """Share of the ``train.max_minutes`` budget spent after ``seconds`` of training (0 without a budget)."""
    return seconds / (60 * config.train.max_minutes) if config.train.max_minutes else 0.0


def _cycle(loader):
    """Batches without end: an epoch of ``steps_per_epoch`` steps may run past one pass over the loader."""
    while True:
        yield from loader


def validate(model: nn.Module, dataset, config: RunConfig, device: torch.device) -> dict[str, float]:
    """Mean Dice per region and class over this rank's whole validation scans, reduced across ranks."""
    model.eval()
    rows = []
    for item in dataset:
        probs = sliding_window_predict(
            model,
            item["image"],
            config.data.patch_size,
            config.model.target,
            config.validation.overlap,
            config.validation.sw_batch_size,
            device,
            config.train.amp,
        )
        pred = restrict_to_brain(
            probabilities_to_labels(probs, config.model.target, config.validation.threshold), item["image"].numpy()
        )
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


def _write_history(run_dir: Path, history: list[dict]) -> None:
    with atomic_path(run_dir / "metrics.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, extrasaction="ignore")
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


def train(
    config: RunConfig | None = None,
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

    device = select_device(config.train.device)
    ddp_device = dist.init_from_env(device.type)
    device = ddp_device or device
    rank, world = dist.rank(), dist.world_size()
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    set_determinism(seed=config.seed + rank)

    index = discover(config.data.root, config.data.layout).require_clean()
    cases = index.labelled()
    split_path = run_dir / "split.json"
    train_cases, val_cases = read_split(split_path, cases) if resume else split_cases(cases, config)
    if dist.is_main() and not resume:
        run_dir.mkdir(parents=True, exist_ok=True)
        config.save(run_dir / "config.yaml")
        write_split(split_path, train_cases, val_cases)

    train_ds, val_ds, train_transform = build_datasets(
        train_cases, val_cases, config, Path(config.data.cache_dir or run_dir / "cache"), rank, world
    )
    n_steps = steps_per_epoch(config, len(train_cases), world)

    model = build_network(config.model.network, config.data.patch_size, config.model.target, config.model.kwargs)
    model.to(device)
    loss_fn = build_loss(config.loss.name, config.model.target, config.loss.smooth)
    optimizer = build_optimizer(model, config)
    use_amp = device.type == "cuda" and config.train.amp != "off"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and amp_dtype(config.train.amp) == torch.float16)

    start_epoch, best, history, stale, seconds = 0, -1.0, [], 0, 0.0
    if resume:
        state = load_checkpoint(run_dir / "last.pt", map_location=device)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        start_epoch, best, history, stale = state["epoch"], state["best_mean_dice"], state["history"], state["stale"]
        seconds = state["train_seconds"]  # the time budget counts the time spent before the interruption
        set_rng_state(state["rng"])
        log(f"resuming {run_dir} after epoch {start_epoch} (best mean Dice {best:.4f})")
    if world > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    writer = None
    if dist.is_main():
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=start_epoch + 1)
        _write_history(run_dir, history)
        log(
            f"training {config.model.network} on {len(train_cases)} cases, validating on {len(val_cases)}; "
            f"device {device}{' with AMP' if use_amp else ''}, world size {world}, {n_steps} steps/epoch"
        )

    convention = index.layout.convention.value
    t_start = time.perf_counter() - seconds
    for epoch in range(start_epoch, config.train.epochs):
        t_epoch = time.perf_counter()
        lr = set_learning_rate(optimizer, config, epoch, budget_share(config, seconds))
        epoch_seed = config.seed * 100_003 + epoch * 1_009 + rank
        train_transform.set_random_state(seed=epoch_seed % (2**31))
        model.train()
        losses, patches, wait = [], 0, 0.0
        bar = tqdm(total=n_steps, desc=f"epoch {epoch + 1}", disable=None if dist.is_main() else True, leave=False)
        batches = _cycle(train_loader(train_ds, config, epoch_seed))
        t_compute = 0.0
        for _ in range(n_steps):
            t0 = time.perf_counter()
            batch = next(batches)
            wait += time.perf_counter() - t0
            t1 = time.perf_counter()
            image = batch["image"].to(device, non_blocking=True)
            target = batch["label"].to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, config.train.amp):
                loss = loss_fn(model(image), target)
            scaler.scale(loss).backward()
            if config.train.grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), config.train.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
            patches += image.shape[0]
            t_compute += time.perf_counter() - t1
            bar.set_postfix(loss=f"{losses[-1]:.4f}", patches_s=f"{patches / (wait + t_compute):.1f}")
            bar.update()
        bar.close()
        train_time = wait + t_compute
        row = {
            "epoch": epoch + 1,
            "train_loss": dist.mean_across_ranks(float(np.mean(losses)), device),
            "lr": lr,
            "patches_per_s": dist.mean_across_ranks(patches / max(train_time, 1e-9), device) * world,
            "data_wait_share": wait / max(train_time, 1e-9),
        }
        seconds = dist.mean_across_ranks(time.perf_counter() - t_start, device)  # the same on every rank
        over_budget = budget_share(config, seconds) >= 1.0
        last_epoch = epoch + 1 == config.train.epochs or over_budget
        improved = False
        if (epoch + 1) % config.validation.every == 0 or last_epoch:
            row.update(validate(model, val_ds, config, device))
            if row.get("mean_dice", -1) > best:
                best, stale, improved = row["mean_dice"], 0, True
            else:
                stale += 1
        row["seconds"] = time.perf_counter() - t_epoch
        history.append(row)
        if dist.is_main():
            state = {
                "epoch": epoch + 1,
                "best_mean_dice": best,
                "history": history,
                "stale": stale,
                "train_seconds": seconds,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "rng": rng_state(),
            }
            # last.pt first: metrics.csv is rebuilt from the history inside it, so the two never disagree.
            save_checkpoint(run_dir / "last.pt", model, config, convention, **state)
            if improved:
                save_checkpoint(run_dir / "best.pt", model, config, convention, epoch=epoch + 1, best_mean_dice=best)
            _write_history(run_dir, history)
            for key, value in row.items():
                if key != "epoch" and isinstance(value, float):
                    writer.add_scalar(key, value, epoch + 1)
            writer.flush()
            log(_summary_line(row, config.train.epochs, improved))
        dist.barrier()
        if over_budget:
            if dist.is_main():
                log(f"time budget of {config.train.max_minutes:g} min reached after epoch {epoch + 1}")
            break
        if config.train.patience and stale >= config.train.patience:
            if dist.is_main():
                log(f"early stop: no improvement in {stale} validations")
            break
    if writer is not None:
        writer.close()
    done = history[-1]["epoch"] if history else start_epoch
    is_main = dist.is_main()
    dist.shutdown()
    return TrainResult(run_dir, done, best, history, is_main)
