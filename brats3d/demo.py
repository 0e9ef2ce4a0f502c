"""``brats3d demo``: the whole pipeline on synthetic phantoms, in a few minutes on a laptop CPU."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from brats3d.config import load_config
from brats3d.data.inspect import inspect_dataset
from brats3d.data.synthetic import write_dataset

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def run_demo(out: str | Path, cases: int = 8, epochs: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Synthesise data, inspect it, train briefly, predict a validation case and score the validation cases."""
    from brats3d.training.trainer import train

    out = Path(out)
    data, run = out / "data", out / "run"
    if run.exists():
        shutil.rmtree(run)  # the demo always starts over; it only ever deletes its own output folder
    if not (data / "dataset.json").is_file():
        log(f"[1/3] writing {cases} synthetic cases to {data}")
        write_dataset(data, cases, layout="msd", shape=(96, 96, 64), seed=0)
    else:
        log(f"[1/3] reusing synthetic cases in {data}")
    log(inspect_dataset(data).format())
    overrides = [] if epochs is None else [f"train.epochs={epochs}"]
    log(f"[2/3] training ({DEMO_CONFIG.name}) into {run}")
    config = load_config(DEMO_CONFIG, overrides)
    train(config, run, data_dir=data, log=log)
    log(f"[3/3] done: checkpoints, metrics.csv and TensorBoard logs in {run}")
    return run
