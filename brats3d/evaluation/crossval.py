"""Out-of-fold evaluation of a cross-validation run (``brats3d train --folds K`` then ``brats3d evaluate --cv``).

Each fold's model predicts only the cases that fold held out, so every case is scored exactly once by a model that
never saw it: one honest table over all cases. Each fold uses its final weights (``last.pt`` once training has
ended), not ``best.pt``, which was chosen on those very cases. The probabilities are kept (``probabilities/``,
uint8 in 1/255 steps, on the RAS grid the network saw) so ``brats3d postprocess`` can choose rules from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from brats3d.data.layouts import Case, discover
from brats3d.errors import BratsInputError
from brats3d.evaluation.evaluate import CaseScores, Evaluation, score_files
from brats3d.files import atomic_path
from brats3d.inference.predict import Prediction, PredictOptions, Predictor

PROBABILITIES = "probabilities"
PREDICTIONS = "predictions"


def fold_runs(run_dir: str | Path) -> list[tuple[Path, list[str]]]:
    """``(fold folder, its validation case ids)`` for every ``fold_k`` of a cross-validation run, checked to hold
    each case of the split exactly once."""
    run_dir = Path(run_dir)
    folders = sorted(run_dir.glob("fold_*"), key=lambda p: int(p.name.split("_")[1]) if p.name[5:].isdigit() else -1)
    if not folders:
        raise BratsInputError(run_dir, "no fold_* folders: train with `brats3d train --folds K --out RUN_DIR` first")
    runs, expected = [], None
    for folder in folders:
        split_path = folder / "split.json"
        if not split_path.is_file():
            raise BratsInputError(folder, "no split.json: this fold has not started training")
        split = json.loads(split_path.read_text())
        if "folds" not in split:
            raise BratsInputError(split_path, "not a cross-validation split (no 'folds')")
        if expected is None:
            expected = split["folds"]
        elif split["folds"] != expected:
            raise BratsInputError(split_path, "this fold was split differently from the others (another seed?)")
        if not (folder / "last.pt").is_file():
            raise BratsInputError(folder, "no last.pt: this fold has not finished an epoch")
        runs.append((folder, list(split["validation"])))
    missing = [k for k in range(len(expected)) if not (run_dir / f"fold_{k}").is_dir()]
    if missing:
        raise BratsInputError(run_dir, f"folds {missing} of {len(expected)} are missing; train them before scoring")
    return runs


def save_probabilities(prediction: Prediction, folder: Path) -> Path:
    """A prediction's probabilities as ``<case>.npz`` (uint8, probability x 255) on the network's RAS grid."""
    return store_probabilities(prediction.probabilities_ras.float().numpy(), prediction.case.case_id, folder)


def store_probabilities(probs: np.ndarray, case_id: str, folder: Path) -> Path:
    """Probabilities (C, X, Y, Z) in [0, 1] as ``<case>.npz``, the form ``load_probabilities`` reads."""
    probs = np.round(np.asarray(probs, dtype=np.float32) * 255).astype(np.uint8)
    path = folder / f"{case_id}.npz"
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, probabilities=probs)
    return path


def load_probabilities(folder: str | Path, case_id: str) -> np.ndarray:
    """Probabilities (C, X, Y, Z) float32 saved by ``save_probabilities``."""
    path = Path(folder) / f"{case_id}.npz"
    if not path.is_file():
        raise BratsInputError(path, "no out-of-fold probabilities for this case; run `brats3d evaluate --cv` first")
    with np.load(path) as data:
        return data["probabilities"].astype(np.float32) / 255.0


def _predict_keep_and_score(predictor: Predictor, case: Case, out_dir: Path, with_hd95: bool) -> CaseScores:
    prediction = predictor.predict(case)
    seg = predictor.write(prediction, out_dir / PREDICTIONS)[0]
    save_probabilities(prediction, out_dir / PROBABILITIES)
    return score_files(seg, case, with_hd95=with_hd95)


def evaluate_out_of_fold(
    run_dir: str | Path,
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    options: PredictOptions | None = None,
    with_hd95: bool = True,
    keep_going: bool = False,
) -> Evaluation:
    """Score every case with the fold model that held it out; outputs in ``out_dir`` (default RUN_DIR/out_of_fold)."""
    out_dir = Path(out_dir or Path(run_dir) / "out_of_fold")
    runs = fold_runs(run_dir)
    by_id = {c.case_id: c for c in discover(data_dir).labelled()}
    absent = [i for _, ids in runs for i in ids if i not in by_id]
    if absent:
        raise BratsInputError(data_dir, f"cases of the cross-validation split are missing here: {', '.join(absent)}")
    options = options or PredictOptions()
    options.save_probabilities, options.pictures = True, False
    evaluation = Evaluation(keep_going=keep_going)
    for folder, ids in runs:
        predictor = Predictor(folder / "last.pt", options)
        settings = predictor.settings()
        if evaluation.inference is None:
            evaluation.inference = settings
        else:  # one fold model per case; the rest (rules, TTA) is the run's and the same for every fold
            evaluation.inference["checkpoints"] += settings["checkpoints"]
        for case_id in ids:
            case = by_id[case_id]
            evaluation.attempt(lambda c=case, p=predictor: _predict_keep_and_score(p, c, out_dir, with_hd95))
    evaluation.cases.sort(key=lambda c: c.case_id)
    return evaluation
