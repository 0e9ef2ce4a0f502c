"""How training data scales with the number of cases, for each cache (``memory``, ``disk``, ``mmap``):
preprocessing time and disk per case, time to the first training step, patches/s, data wait, and the peak memory of
the training process and its loader workers together.

One invocation measures one (cases, cache) row in a fresh process and replaces that row in the JSON, so a long
sweep can be run row by row and resumed:

    python benchmarks/bench_scale.py --cases 10 --cache mmap          # synthetic 240x240x155 cases
    python benchmarks/bench_scale.py --real --cache memory            # the ten shared real cases
    python benchmarks/bench_scale.py --table                          # the table so far, and the slopes to 1251

Synthetic datasets: ten distinct full-size phantoms (240x240x155, four modalities, a brain about as large as a real
one) are written once; a dataset of N cases hard-links them under N case ids, so the inputs cost no disk while
every case is still read, cropped, normalised and cached on its own as training would.

Memory is summed over the training process and every descendant (loader workers, preprocessing workers), polled
from /proc every 0.2 s. Two sums are kept: PSS (proportional set size: a page shared by k processes counts 1/k in
each, so the sum is the memory the run really holds) and RSS (what ``top`` shows per process; the sum counts shared
pages once per process that touched them, overstating forked workers and memory maps).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
from _common import REAL_DATA, RESULTS, machine, print_table

from brats3d.config import load_config
from brats3d.data.layouts import discover
from brats3d.data.synthetic import case_id_for, make_phantom, write_case
from brats3d.training.cache import preprocess
from brats3d.training.trainer import train

FULL = (240, 240, 155)
# Phantom size before padding to FULL: its brain's bounding box (about 140x176x128) is that of a real BraTS brain;
# a phantom drawn at FULL itself would have a brain twice as large as a real one.
PHANTOM = (170, 196, 150)
DISTINCT = 10
COLUMNS = [
    "data", "tag", "cases", "cache", "workers", "preprocess_s_per_case", "disk_mb_per_case", "startup_s",
    "patches_per_s", "data_wait_share", "peak_pss_mb", "peak_rss_mb",
]  # fmt: skip


def _pool(root: Path) -> Path:
    """The ten distinct full-size phantoms, written once."""
    pool = root / "pool"
    if (pool / "done").exists():
        return pool
    shutil.rmtree(pool, ignore_errors=True)
    for i in range(DISTINCT):
        image, label = make_phantom(PHANTOM, seed=1000 + i)
        pad = [((f - s) // 2, f - s - (f - s) // 2) for f, s in zip(FULL, PHANTOM)]
        write_case(pool, case_id_for("brats2021", i), np.pad(image, [(0, 0), *pad]), np.pad(label, pad), "brats2021")
    (pool / "done").touch()
    return pool


def synthetic_dataset(root: Path, cases: int) -> Path:
    """``cases`` case folders hard-linked from the pool (case i is pool case i mod 10, under its own id)."""
    pool = _pool(root)
    folder = root / f"n{cases}"
    if (folder / "done").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    for i in range(cases):
        source_id, case_id = case_id_for("brats2021", i % DISTINCT), case_id_for("brats2021", i)
        (folder / case_id).mkdir(parents=True)
        for f in (pool / source_id).iterdir():
            os.link(f, folder / case_id / f.name.replace(source_id, case_id))
    (folder / "done").touch()
    return folder


def _tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            with contextlib.suppress(OSError):  # the task ended between listing and reading
                todo += [int(c) for c in (task / "children").read_text().split()]
    return found


def _memory_mb(pids: list[int]) -> tuple[float, float]:
    pss = rss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            pass  # the process ended between listing and reading
    return pss / 1024, rss / 1024


class PeakMemory:
    """Peak PSS and RSS of this process tree while the ``with`` block runs."""

    def __enter__(self) -> PeakMemory:
        self.pss = self.rss = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            pss, rss = _memory_mb(_tree(os.getpid()))
            self.pss, self.rss = max(self.pss, pss), max(self.rss, rss)
            self._stop.wait(0.2)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _disk_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) / 2**20


def measure(data: Path, cache: str, workers: int, steps: int, scratch: Path) -> dict:
    """Train two epochs of ``steps`` steps (no validation) and time and weigh what it took."""
    cases = discover(data).labelled()
    cache_dir = scratch / f"cache-{cache}"
    shutil.rmtree(scratch, ignore_errors=True)
    config = load_config(
        "unet3d",
        [
            f"data.cache={cache}", f"data.cache_dir={cache_dir}", f"data.num_workers={workers}",
            "data.val_fraction=0", "train.epochs=2", f"train.steps_per_epoch={steps}",
        ],
    )  # fmt: skip
    config.data.root = str(data)
    row: dict = {"cases": len(cases), "cache": cache, "workers": workers}
    t0 = time.perf_counter()
    if cache == "mmap":  # `brats3d preprocess`, as a user would run it before training
        preprocess(cases, config, cache_dir, workers=os.cpu_count() or 1, progress=False)
    elif cache == "disk":  # MonAI's PersistentDataset fills on first use: one pass over the cases, as epoch 1 would
        from monai.data import PersistentDataset

        from brats3d.transforms import build_train_transforms

        chain = build_train_transforms(**config.train_transform_arguments())
        filler = PersistentDataset([c.to_dict() for c in cases], chain, cache_dir=cache_dir / "train")
        for i in range(len(filler)):
            filler[i]
    prepared = time.perf_counter() - t0
    if cache in ("mmap", "disk"):
        row["preprocess_s_per_case"] = prepared / len(cases)
        row["disk_mb_per_case"] = _disk_mb(cache_dir) / len(cases)
    t1 = time.perf_counter()
    with PeakMemory() as peak:
        result = train(config, scratch / "run", log=lambda line: None)
    wall = time.perf_counter() - t1
    second = result.history[-1]  # epoch 2: the loader workers are running, the cache is warm
    row |= {
        "startup_s": wall - sum(r["seconds"] for r in result.history),
        "patches_per_s": second["patches_per_s"],
        "data_wait_share": second["data_wait_share"],
        "peak_pss_mb": peak.pss,
        "peak_rss_mb": peak.rss,
    }
    return row


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"machine": machine(), "rows": []}


def _extrapolate(rows: list[dict], target: int = 1251) -> list[dict]:
    """Each cache's peak memory at ``target`` cases: the least-squares line through its measured (cases, peak)
    points, or the largest measured peak where the points are flat (within 10 %: a slope fitted to noise would
    extrapolate noise)."""
    out = []
    for cache in sorted({r["cache"] for r in rows if r["data"] == "synthetic"}):  # the real ten are one size
        points = [r for r in rows if r["data"] == "synthetic" and r["cache"] == cache and not r.get("tag")]
        if len({r["cases"] for r in points}) < 2:
            continue
        n = np.array([r["cases"] for r in points], dtype=float)
        line = {"data": f"extrapolated to {target}", "cases": target, "cache": cache}
        for key in ("peak_pss_mb", "peak_rss_mb"):
            values = np.array([r[key] for r in points])
            slope, intercept = np.polyfit(n, values, 1)
            flat = values.max() <= 1.1 * values.min()
            line[key] = float(values.max()) if flat else slope * target + intercept
        if "disk_mb_per_case" in points[0]:
            line["disk_mb_per_case"] = float(np.mean([r["disk_mb_per_case"] for r in points]))
            line["preprocess_s_per_case"] = float(np.mean([r["preprocess_s_per_case"] for r in points]))
        out.append(line)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=10, help="synthetic cases (ignored with --real)")
    parser.add_argument("--real", action="store_true", help="the ten shared real cases instead of phantoms")
    parser.add_argument("--cache", choices=["memory", "disk", "mmap"], default="mmap")
    parser.add_argument("--workers", type=int, default=2, help="loader processes")
    parser.add_argument("--steps", type=int, default=10, help="training steps per epoch (two epochs)")
    parser.add_argument("--root", default="/tmp/brats3d-scale", help="where datasets and caches are written")
    parser.add_argument("--json", default=str(RESULTS / "scale.json"))
    parser.add_argument("--table", action="store_true", help="print the table so far and exit")
    parser.add_argument("--tag", default="", help="kept with the row, so repeats in one sitting stay apart")
    args = parser.parse_args()
    path = Path(args.json)
    results = _load(path)
    if not args.table:
        root = Path(args.root)
        data = REAL_DATA if args.real else synthetic_dataset(root, args.cases)
        if args.real and not REAL_DATA.is_dir():
            parser.error(f"no real data at {REAL_DATA}")
        row = {"data": "real" if args.real else "synthetic", "tag": args.tag}
        row |= measure(data, args.cache, args.workers, args.steps, root / "scratch")
        key = ("data", "cases", "cache", "workers", "tag")
        results["rows"] = [r for r in results["rows"] if any(r.get(k) != row[k] for k in key)] + [row]
        results["rows"].sort(key=lambda r: (r["data"], r["cache"], r["cases"], r["workers"], r.get("tag", "")))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
        shutil.rmtree(root / "scratch", ignore_errors=True)
    rows = results["rows"] + _extrapolate(results["rows"])
    print_table(rows, COLUMNS)


if __name__ == "__main__":
    main()
