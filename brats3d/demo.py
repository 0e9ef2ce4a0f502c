"""``brats3d demo``: the whole pipeline on synthetic phantoms, in a few minutes on a laptop CPU."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from brats3d.config import load_config
from brats3d.data.inspect import inspect_dataset
from brats3d.data.io import load_case
from brats3d.data.layouts import discover
from brats3d.data.synthetic import write_dataset
from brats3d.evaluation.evaluate import evaluate_checkpoint
from brats3d.evaluation.report import format_table, summary_rows, write_report
from brats3d.inference.predict import PredictOptions, Predictor, summary_line

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"
DEMO2D_CONFIG = DEMO_CONFIG.with_name("demo2d.yaml")


def run_demo(out: str | Path, cases: int = 8, epochs: int | None = None, log: Callable[[str], None] = print) -> Path:
    """Synthesise data, inspect it, train briefly, predict a validation case and score the validation cases."""
    from brats3d.training.trainer import train  # imported here: it pulls in TensorBoard

    out = Path(out)
    data, run = out / "data", out / "run"
    if run.exists():
        shutil.rmtree(run)  # the demo always starts over; it only ever deletes its own output folder
    if not (data / "dataset.json").is_file():
        log(f"[1/4] writing {cases} synthetic cases to {data}")
        write_dataset(data, cases, layout="msd", shape=(96, 96, 64), seed=0)
    else:
        log(f"[1/4] reusing synthetic cases in {data}")
    log(inspect_dataset(data).format())
    overrides = [] if epochs is None else [f"train.epochs={epochs}"]
    log(f"[2/4] training ({DEMO_CONFIG.name}) into {run}")
    config = load_config(DEMO_CONFIG, overrides)
    train(config, run, data_dir=data, log=log)

    val_ids = json.loads((run / "split.json").read_text())["validation"]
    predictions = out / "predictions"
    log(f"[3/4] predicting validation case {val_ids[0]} into {predictions}")
    predictor = Predictor(run / "best.pt", PredictOptions())
    case = discover(data).case(val_ids[0])
    prediction = predictor.predict(case)
    truth = load_case(case, ras=True).label
    for path in predictor.write(prediction, predictions, truth):
        log(f"  {path}")
    log(summary_line(prediction))

    evaluation_dir = out / "evaluation"
    log(f"[4/4] evaluating the {len(val_ids)} validation cases into {evaluation_dir}")
    evaluation = evaluate_checkpoint(run / "best.pt", data, evaluation_dir, case_ids=val_ids, patches_per_case=4)
    report = write_report(evaluation, evaluation_dir)
    log(format_table(summary_rows(evaluation)))
    log(f"report: {report}")
    return run


def run_slice_demo(
    out: str | Path, patients: int = 8, epochs: int | None = None, log: Callable[[str], None] = print
) -> Path:
    """The 2D path: LGG-style phantoms, inspect, train a 2D U-Net, predict a validation patient, evaluate."""
    from brats3d.data.slices import discover_slices, inspect_slices
    from brats3d.data.synthetic_slices import write_lgg_dataset
    from brats3d.evaluation.slices import evaluate_with_models, write_slice_report
    from brats3d.inference.slices import SliceModels, SlicePredictOptions, predict_slices
    from brats3d.training.trainer import train

    out = Path(out)
    data, run = out / "data", out / "run"
    if run.exists():
        shutil.rmtree(run)  # the demo always starts over; it only ever deletes its own output folder
    if not data.is_dir():
        log(f"[1/4] writing {patients} synthetic LGG-style patients to {data}")
        write_lgg_dataset(data, patients, slices=12, size=(96, 96), seed=0)
    else:
        log(f"[1/4] reusing synthetic slices in {data}")
    log(inspect_slices(data).format())
    log(f"[2/4] training ({DEMO2D_CONFIG.name}) into {run}")
    config = load_config(DEMO2D_CONFIG, [] if epochs is None else [f"train.epochs={epochs}"])
    train(config, run, data_dir=data, log=log)

    held_out = set(json.loads((run / "split.json").read_text())["validation"])
    slices = [s for s in discover_slices(data).labelled() if s.patient in held_out]
    models = SliceModels.load([run / "best.pt"])
    predictions = out / "predictions"
    first = sorted(held_out)[0]
    log(f"[3/4] predicting validation patient {first} into {predictions}")
    written = predict_slices(models, [s for s in slices if s.patient == first], predictions, SlicePredictOptions())
    log(f"  {len(written)} masks, overlays and {first}.gif in {predictions / first}")
    evaluation_dir = out / "evaluation"
    log(f"[4/4] evaluating the {len(held_out)} validation patients into {evaluation_dir}")
    evaluation = evaluate_with_models(models, slices, SlicePredictOptions())
    report = write_slice_report(evaluation, evaluation_dir)
    per_patient = evaluation.summary()["foreground_dsc_per_patient"]
    log(f"DSC per patient: mean {per_patient['mean']:.3f}, median {per_patient['median']:.3f}")
    log(f"report: {report}")
    return run
