"""A preprocessed, memory-mapped cache of training cases whose memory does not grow with the dataset.

Each case is run once through the deterministic part of the training chain (load, crop to the brain, normalise, pad,
tumour-patch index) and stored in its own folder: ``image.npy`` and ``label.npy`` that training opens with
``np.load(mmap_mode="r")``, so a patch reads only the pages it covers, ``index.npz`` (the sampler's patch starts)
and ``manifest.json`` (each source file's size and modification time, and the settings that shaped the arrays).
A case whose files or settings changed is preprocessed again; the others are reused. A case is written into a
temporary folder and renamed into place, so an interrupted run leaves whole cases or none, and the next run goes
on where it stopped. (nnU-Net preprocesses into memory-mapped arrays too; this one also knows when it is stale.)

Storage dtypes: the normalised image as float16 (z-scores of a few units keep three significant digits, far below
MRI noise, and half the disk of float32; patches are cast back to float32 when drawn), the canonical label as uint8
(exact).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.transforms import Compose
from torch.utils.data import Dataset
from tqdm import tqdm

from brats3d.config import RunConfig
from brats3d.data.layouts import Case
from brats3d.errors import BratsInputError, find_input_error
from brats3d.transforms import build_train_transforms

CACHE_FORMAT = "brats3d-mmap-v1"
MANIFEST = "manifest.json"
# Settings that change the stored arrays; the random part of the chain (patches, augmentation) is not among them.
_SHAPING = (
    "patch_size",
    "min_tumour_fraction",
    "class_balance",
    "normalisation",
    "mirror_difference",
    "reader",
    "spacing",
)


def cache_settings(config: RunConfig, spacing: Sequence[float] | None = None) -> dict[str, Any]:
    arguments = config.train_transform_arguments(spacing)
    return {"format": CACHE_FORMAT, **{k: arguments[k] for k in _SHAPING}}


def source_stamp(case: Case) -> list[list]:
    """(path, size, modification time) of every file of a case: a changed download changes the stamp."""
    files = [*case.images, *([case.label] if case.label else [])]
    return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def case_folder(cache_dir: Path, case: Case) -> Path:
    return Path(cache_dir) / case.case_id


def is_fresh(folder: Path, case: Case, settings: dict[str, Any]) -> bool:
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("settings") == settings and manifest.get("source") == source_stamp(case)


def first_random(chain: Compose) -> int:
    """Index of the chain's first random transform: where the stored, deterministic part ends."""
    return next(i for i, t in enumerate(chain.transforms) if hasattr(t, "randomize"))


def preprocess_case(case: Case, config: RunConfig, cache_dir: Path, spacing: Sequence[float] | None = None) -> Path:
    """Run the deterministic part of the chain on one case and store it; returns the case's folder. ``spacing``:
    the dataset's median spacing (``RunConfig.train_transform_arguments``)."""
    chain = build_train_transforms(**config.train_transform_arguments(spacing))
    item = chain(case.to_dict(), end=first_random(chain))
    folder = case_folder(cache_dir, case)
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    image = item["image"].numpy() if isinstance(item["image"], torch.Tensor) else np.asarray(item["image"])
    label = item["label"].numpy() if isinstance(item["label"], torch.Tensor) else np.asarray(item["label"])
    np.save(tmp / "image.npy", image.astype(np.float16))
    np.save(tmp / "label.npy", label.astype(np.uint8))
    pools = {f"class_starts_{i}": pool for i, pool in enumerate(item.get("class_starts") or [])}
    np.savez(
        tmp / "index.npz",
        patch_starts=item["patch_starts"],
        brain_starts=item["brain_starts"],
        patch_grid=item["patch_grid"],
        **pools,
    )
    manifest = {
        "settings": cache_settings(config, spacing),
        "source": source_stamp(case),
        "patch_rule": item["patch_rule"],
        "case": case.to_dict(),
        "shape": list(image.shape),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
    if folder.exists():  # a stale entry: replaced whole
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def _preprocess_one(args: tuple[Case, RunConfig, Path, Sequence[float] | None]) -> tuple[str, str | None]:
    case, config, cache_dir, spacing = args
    try:
        preprocess_case(case, config, cache_dir, spacing)
        return case.case_id, None
    except Exception as exc:
        error = find_input_error(exc)
        if error is None:
            raise
        return case.case_id, str(error)


def preprocess(
    cases: Sequence[Case],
    config: RunConfig,
    cache_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
    spacing: Sequence[float] | None = None,
) -> tuple[list[str], list[str]]:
    """Bring ``cache_dir`` up to date for ``cases``: returns (case ids preprocessed now, one line per bad case).

    Fresh cases are skipped; the others run in ``workers`` processes; a bad case is reported and the others go on.
    ``spacing``: the dataset's median voxel spacing (``training.data.median_spacing`` of all its labelled cases, not
    only these), which cases far from it are resampled to with ``data.resample``.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    settings = cache_settings(config, spacing)
    todo = [c for c in cases if not is_fresh(case_folder(cache_dir, c), c, settings)]
    done, failures = [], []
    jobs = [(c, config, cache_dir, spacing) for c in todo]
    parallel = workers > 1 and len(jobs) > 1
    with ProcessPoolExecutor(max_workers=workers) if parallel else contextlib.nullcontext() as pool:
        results = pool.map(_preprocess_one, jobs) if parallel else map(_preprocess_one, jobs)
        for case_id, problem in tqdm(results, total=len(jobs), desc="preprocess", disable=not progress or None):
            (failures if problem else done).append(problem or case_id)  # the bar moves as each case finishes
    return done, failures


def open_case(folder: Path) -> dict[str, Any]:
    """A preprocessed case as the sampler expects it, with the image and label memory-mapped (nothing read yet)."""
    manifest = json.loads((folder / MANIFEST).read_text())
    with np.load(folder / "index.npz") as index:
        pools = sorted(k for k in index.files if k.startswith("class_starts_"))
        item = {
            "case_id": folder.name,  # as the memory cache's items carry it (hard-negative pools are per case)
            "patch_starts": index["patch_starts"],
            "brain_starts": index["brain_starts"],
            "patch_grid": index["patch_grid"],
            "class_starts": [index[k] for k in sorted(pools, key=lambda k: int(k.rsplit("_", 1)[1]))],
        }
    item["image"] = np.load(folder / "image.npy", mmap_mode="r")
    item["label"] = np.load(folder / "label.npy", mmap_mode="r")
    item["patch_rule"] = manifest["patch_rule"]
    return item


class MmapCaseDataset(Dataset):
    """Training cases read from the memory-mapped cache: each item runs the random part of the training chain
    (patches, augmentation, target) on a case whose arrays stay on disk until a patch touches them.

    The last ``keep_open`` cases stay mapped in each process (least recently used first out): mapping a case anew
    for every draw made the process fault in every page a patch touches again (a 160x160x16 patch touches most
    pages of a case, because its 16 slices are the innermost axis), 9 ms per draw of four patches on a real case.
    Bounded, so the mapped share of memory stays flat however many cases there are.
    """

    def __init__(self, cache_dir: str | Path, cases: Sequence[Case], transform: Compose, keep_open: int = 8) -> None:
        self.folders = [case_folder(Path(cache_dir), c) for c in cases]
        missing = [str(f) for f in self.folders if not (f / MANIFEST).is_file()]
        if missing:
            raise BratsInputError(cache_dir, f"not preprocessed: {', '.join(missing[:3])}; run brats3d preprocess")
        self.transform = transform
        self.start = first_random(transform)
        self.keep_open = keep_open
        self._open: OrderedDict[int, dict[str, Any]] = OrderedDict()  # per process: workers fork an empty one

    def __len__(self) -> int:
        return len(self.folders)

    def _case(self, index: int) -> dict[str, Any]:
        if index in self._open:
            self._open.move_to_end(index)
        else:
            self._open[index] = open_case(self.folders[index])
            while len(self._open) > self.keep_open:
                self._open.popitem(last=False)
        return self._open[index]

    def __getitem__(self, index: int):
        return self.transform(dict(self._case(index)), start=self.start)
