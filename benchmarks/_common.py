"""Shared by the benchmark scripts: pick real data when present, else synthetic cases of the real size."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import torch

from brats3d.data.layouts import Case, discover
from brats3d.data.synthetic import write_dataset

# The ten shared cases; BRATS3D_REAL_DATA points elsewhere (a copy carried to a GPU machine, say).
REAL_DATA = Path(
    os.environ.get("BRATS3D_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data" / "brats18-sample")
)
RESULTS = Path(__file__).resolve().parent / "results"  # JSON of the latest run of each benchmark


def benchmark_cases(count: int, real: bool = True) -> tuple[list[Case], str]:
    """``count`` labelled cases and a word saying where they came from."""
    if real and REAL_DATA.is_dir():
        return discover(REAL_DATA).labelled()[:count], f"real BraTS 2018 ({REAL_DATA})"
    root = Path(tempfile.mkdtemp(prefix="brats3d-bench-"))
    write_dataset(root, count, layout="brats2021", shape=(240, 240, 155), seed=1)
    return discover(root).labelled(), "synthetic 240x240x155 phantoms"


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "platform": platform.platform(),
    }


def sizes(text: str) -> list[int]:
    """``--window 160x160x32`` as [160, 160, 32] (an argparse type)."""
    return [int(v) for v in text.split("x")]


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in columns))


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def write_json(path: str | Path, payload: dict) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2))
