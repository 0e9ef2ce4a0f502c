"""Training data: the case split, cached datasets and loaders (each DDP rank caches only its own partition)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader, Dataset, PersistentDataset
from monai.transforms import Compose
from torch.utils.data import RandomSampler

from brats3d.config import RunConfig
from brats3d.data.layouts import Case, site_of
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path
from brats3d.models.device import available_cores
from brats3d.transforms import build_train_transforms, build_val_transforms


def fold_assignment(case_ids: list[str], folds: int, seed: int = 0, by: str = "case") -> list[list[str]]:
    """Split case ids into ``folds`` disjoint folds that together hold every case once. Depends only on the set of
    ids and the seed, so every fold's run derives the same split.

    ``by="case"``: cases shuffled into folds whose sizes differ by at most one. ``by="site"``: every institution's
    cases (``site_of``) in one fold, so each fold scores sites its models never saw: a random split lets a site's
    scanner and preprocessing be learnt from its other cases, and on the ten shared cases the one fold that held
    out both CBICA cases predicted tumour in their cerebellum (BENCHMARKS.md). Sites, largest first (ties in seeded
    order), go to the fold with the fewest cases.
    """
    if len(case_ids) < folds:
        raise BratsInputError(
            None, f"{folds}-fold cross-validation needs at least {folds} cases, found {len(case_ids)}"
        )
    ids = sorted(case_ids)
    if by == "case":
        order = np.random.default_rng(seed).permutation(len(ids))
        return [sorted(ids[i] for i in order[k::folds]) for k in range(folds)]
    groups = _cases_by_site(ids)
    if len(groups) < folds:
        raise BratsInputError(
            None,
            f"{folds}-fold cross-validation by site needs at least {folds} sites, found {len(groups)} "
            f"({', '.join(sorted(groups))})",
        )
    sites = sorted(groups)
    shuffled = [sites[i] for i in np.random.default_rng(seed).permutation(len(sites))]
    assignment: list[list[str]] = [[] for _ in range(folds)]
    for site in sorted(shuffled, key=lambda s: -len(groups[s])):
        min(assignment, key=len).extend(groups[site])
    return [sorted(fold) for fold in assignment]


def _cases_by_site(ids: list[str]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for case_id in ids:
        site = site_of(case_id)
        if site is None:
            raise BratsInputError(
                None,
                f"data.fold_by: site needs case ids that name their institution (BraTS 2017-2019, "
                f"Brats18_<site>_<number>_<n>); {case_id!r} does not",
            )
        groups.setdefault(site.upper(), []).append(case_id)
    return groups


def _validation_ids(ids: list[str], config: RunConfig, fold_by: str = "case") -> set[str]:
    """The held-out ids of a run (2D slice runs share it, by patient; only 3D cases may be grouped by site)."""
    d = config.data
    if d.folds:
        return set(fold_assignment(ids, d.folds, config.seed, fold_by)[d.fold])
    if d.val_cases:
        unknown = [i for i in d.val_cases if i not in ids]
        if unknown:
            raise BratsInputError(None, f"data.val_cases names unknown cases: {', '.join(unknown)}")
        return set(d.val_cases)
    if d.val_fraction == 0:
        return set()
    if len(ids) < 2:
        raise BratsInputError(None, f"need at least 2 labelled cases to train and validate, found {len(ids)}")
    order = np.random.default_rng(config.seed).permutation(len(ids))
    n_val = min(len(ids) - 1, max(1, round(len(ids) * d.val_fraction)))
    return {ids[i] for i in order[:n_val]}


def split_cases(cases: list[Case], config: RunConfig) -> tuple[list[Case], list[Case]]:
    """Split by case (never by patch): one fold of ``data.folds``, explicit ``val_cases``, a seeded random
    ``val_fraction``, or no validation at all (``val_fraction: 0``)."""
    val_ids = _validation_ids(sorted(c.case_id for c in cases), config, config.data.fold_by)
    train = [c for c in cases if c.case_id not in val_ids]
    val = [c for c in cases if c.case_id in val_ids]
    if not train:
        raise BratsInputError(None, "no training cases left after the validation split")
    return train, val


def write_split(path: Path, train: list[Case], val: list[Case], config: RunConfig | None = None) -> None:
    """``split.json``: the run's training and validation cases, and with folds every fold and which one this is."""
    payload: dict = {"train": [c.case_id for c in train], "validation": [c.case_id for c in val]}
    if config is not None and config.data.folds:
        ids = [c.case_id for c in (*train, *val)]
        payload |= {
            "fold": config.data.fold,
            "folds": fold_assignment(ids, config.data.folds, config.seed, config.data.fold_by),
        }
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


def median_spacing(spacings: Iterable[Sequence[float]]) -> list[float]:
    """Median of voxel spacings (mm, RAS axes; ``data.io.case_spacing`` of each case): the spacing a run trains at
    and its checkpoints record for ``predict``. Taken over all the dataset's labelled cases, validation ones
    included (as nnU-Net plans one spacing per dataset), so that every fold of a cross-validation, and a cache
    preprocessed before training, agree on it."""
    return [float(v) for v in np.median(np.asarray(list(spacings)), axis=0)]


def rank_share(items: list, rank: int, world: int) -> list:
    """The items a DDP rank caches and trains on (every ``world``-th, from ``rank``); all of them without DDP."""
    return items[rank::world]


def _dataset(items: list[dict], transform: Compose, cache: str, cache_rate: float, cache_dir: Path) -> Dataset:
    if cache == "memory":
        # copy_cache=False: nothing after the cache mutates the cached volume (RandTumourPatchd copies out each
        # patch), so the per-sample deep copy of a whole scan that MONAI makes by default is pure waste.
        return CacheDataset(items, transform, cache_rate=cache_rate, num_workers=None, progress=False, copy_cache=False)
    if cache == "disk":
        return PersistentDataset(items, transform, cache_dir=cache_dir)
    return Dataset(items, transform)


# Host memory one case takes in the memory cache, per voxel of its uncropped scan: four float32 channels (16 bytes)
# times the share of the scan that the brain crop keeps (measured: 60 MB per 240x240x155 case of the scale benchmark,
# 0.42 of 16 bytes x 8.9 M voxels; BENCHMARKS.md "Full datasets").
CACHED_BYTES_PER_VOXEL = 16 * 0.45


def available_memory() -> int:
    """Bytes of RAM the system can still give (MemAvailable), or 0 where that cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def choose_cache(cases: list[Case], config: RunConfig, world: int = 1) -> str:
    """``data.cache``, with ``auto`` resolved: ``memory`` when this rank's share of the cases fits half the RAM
    available (every rank on a machine caches its own share), else ``mmap``, whose memory does not grow with the
    cases and which delivers patches as fast (BENCHMARKS.md)."""
    if config.data.cache != "auto":
        return config.data.cache
    from brats3d.data.io import load_header

    voxels = sum(int(np.prod(load_header(c.images[0]).shape[:3])) for c in cases)
    needed = voxels * CACHED_BYTES_PER_VOXEL * config.data.cache_rate
    return "memory" if needed * world < available_memory() / 2 else "mmap"


def build_datasets(
    train: list[Case],
    val: list[Case],
    config: RunConfig,
    cache_dir: Path,
    rank: int = 0,
    world: int = 1,
    spacing: Sequence[float] | None = None,
) -> tuple[Dataset, Dataset, Compose]:
    """Datasets over this rank's share of the cases; returns (train, validation, train transform).

    With ``data.cache: mmap`` the training cases are preprocessed into ``cache_dir`` (reused when fresh; several
    ranks or runs can share it) and read through memory maps; validation scans are then read when needed.
    ``spacing``: the dataset's ``median_spacing``; with ``data.resample`` training and validation cases far from it
    are resampled to it.
    """
    arguments = config.train_transform_arguments(spacing)
    transform = build_train_transforms(**arguments)
    val_transform = build_val_transforms(
        config.data.normalisation,
        config.data.reader,
        mirror_difference=config.data.mirror_difference,
        spacing=arguments["spacing"],
    )
    mine = rank_share(train, rank, world)
    val_items = [c.to_dict() for c in rank_share(val, rank, world)]
    cache = choose_cache(mine, config, world)
    if cache == "mmap":
        from brats3d.training.cache import MmapCaseDataset, preprocess

        _, failures = preprocess(
            mine, config, cache_dir, workers=loader_workers(config) or 1, progress=rank == 0, spacing=spacing
        )
        if failures:
            raise BratsInputError(
                cache_dir, f"{len(failures)} case(s) could not be preprocessed: {'; '.join(failures)}"
            )
        return MmapCaseDataset(cache_dir, mine, transform), Dataset(val_items, val_transform), transform
    return (
        _dataset([c.to_dict() for c in mine], transform, cache, config.data.cache_rate, cache_dir / "train"),
        _dataset(val_items, val_transform, cache, config.data.cache_rate, cache_dir / "val"),
        transform,
    )


def steps_per_epoch(config: RunConfig, n_train: int, world: int) -> int:
    """Identical on every rank (DDP needs the same number of steps everywhere)."""
    if config.train.steps_per_epoch:
        return config.train.steps_per_epoch
    cases_per_step = config.train.batch_size // config.data.patches_per_case
    return max(1, math.ceil(n_train / (world * cases_per_step)))


def loader_workers(config: RunConfig, device_type: str = "cpu", world: int = 1) -> int:
    """``data.num_workers``, or when unset, from this rank's share of the cores:

    - on a GPU, all but two of them (at most 12): the GPU trains far faster than one process augments patches
      (H100, unet3d, batch 8 of 160x160x16: 114 patches/s with 6 workers, 139.5 with 12; BENCHMARKS.md);
    - on a CPU, none on up to 4 cores, else a quarter (at most 8): the cached pipeline delivers patches faster than
      a CPU trains on them, and on 2 cores two workers plus the training threads oversubscribe them (measured by
      the team: 4.3 patches/s with 2 workers against 6.7 with none).
    """
    if config.data.num_workers is not None:
        return config.data.num_workers
    cores = available_cores() // max(1, world)
    if device_type == "cuda":
        return max(0, min(12, cores - 2))
    return 0 if cores <= 4 else min(8, cores // 4)


def train_loader(dataset: Dataset, config: RunConfig, epoch_seed: int, workers: int, steps: int) -> DataLoader:
    """One loader for a whole epoch of ``steps`` batches, whose shuffling and worker seeds depend only on the epoch,
    so a resumed epoch replays exactly.

    The epoch's case order is drawn up front (successive permutations of the cases, as many as the steps need)
    instead of cycling over one pass: on a small dataset a pass is a step or two, and every new pass would start
    the loader processes again (measured on an H100 with 9 cases and 6 workers: 8.8 patches/s, 95 % of the step
    spent waiting for data).
    """
    generator = torch.Generator().manual_seed(epoch_seed)
    cases_per_step = config.train.batch_size // config.data.patches_per_case
    sampler = RandomSampler(dataset, num_samples=steps * cases_per_step, generator=generator)
    return DataLoader(
        dataset,
        batch_size=cases_per_step,
        sampler=sampler,
        num_workers=workers,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
        drop_last=False,
    )
