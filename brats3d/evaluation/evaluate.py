"""``brats3d evaluate``: score predictions against references, per case, class and region."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from brats3d.data.io import check_same_grid, read_nifti, voxel_spacing
from brats3d.data.labels import REGION_NAMES, LabelConvention, to_canonical
from brats3d.data.layouts import Case, discover, strip_nifti_suffix
from brats3d.errors import BratsInputError, find_input_error
from brats3d.evaluation.lesions import LESION_METRICS, lesion_wise
from brats3d.evaluation.metrics import METRICS, STRUCTURES, score_case, structure_mask
from brats3d.files import atomic_path
from brats3d.inference.predict import PredictOptions, Predictor
from brats3d.models.device import autocast
from brats3d.transforms import build_train_transforms

# Every column of per_case.csv and summary.json: the legacy metrics for every structure, then the BraTS 2023
# lesion-wise ones, which are defined for the regions only (NaN for the classes).
ALL_METRICS = (*METRICS, *LESION_METRICS)


@dataclass
class CaseScores:
    case_id: str
    scores: dict[str, dict[str, float]]  # structure -> metric -> value
    prediction: Path | None = None
    reference: Case | None = None


@dataclass
class Evaluation:
    cases: list[CaseScores] = field(default_factory=list)
    patch_scores: dict[str, dict[str, float]] | None = None  # structure -> metric -> mean over sampled patches
    failures: list[str] = field(default_factory=list)  # one line per case that could not be scored
    keep_going: bool = False  # the CLI's choice over a folder: a bad case is listed, the others are still scored
    inference: dict | None = None  # how the predictions were made, when this evaluation made them (Predictor.settings)

    def attempt(self, score: Callable[[], CaseScores]) -> None:
        """Score one case; with ``keep_going`` its bad input is recorded in ``failures``, else it is raised."""
        try:
            self.cases.append(score())
        except Exception as exc:
            error = find_input_error(exc)
            if error is None or not self.keep_going:
                raise
            self.failures.append(str(error))

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """structure -> metric -> {mean, std, median, q1, q3, min, max, n}."""
        out: dict[str, dict[str, dict[str, float]]] = {}
        for structure in STRUCTURES:
            out[structure] = {}
            for metric in ALL_METRICS:
                values = np.array([c.scores[structure].get(metric, np.nan) for c in self.cases], dtype=float)
                values = values[np.isfinite(values)]
                if values.size == 0:
                    continue
                q1, median, q3 = np.percentile(values, (25, 50, 75))
                out[structure][metric] = {
                    "mean": float(values.mean()),
                    "std": float(values.std()),
                    "median": float(median),
                    "q1": float(q1),
                    "q3": float(q3),
                    "min": float(values.min()),
                    "max": float(values.max()),
                    "n": int(values.size),
                }
        return out


def find_prediction(pred_dir: Path, case_id: str) -> Path | None:
    """``<case>_seg.nii.gz`` (brats3d predict), ``<case>.nii.gz`` (Decathlon/nnU-Net) or ``<case>-seg.nii.gz``."""
    for name in (f"{case_id}_seg", case_id, f"{case_id}-seg"):
        for suffix in (".nii.gz", ".nii"):
            if (pred_dir / f"{name}{suffix}").is_file():
                return pred_dir / f"{name}{suffix}"
    return None


def score_files(
    pred_path: Path, ref: Case, pred_convention: LabelConvention | str | None = None, with_hd95: bool = True
) -> CaseScores:
    """Score one prediction file against a reference case, each read in its own label numbering."""
    ref_vol, pred_vol = read_nifti(ref.label), read_nifti(pred_path)
    ref_arr, pred_arr = np.squeeze(ref_vol.array), np.squeeze(pred_vol.array)
    check_same_grid(pred_path, pred_arr.shape, pred_vol.affine, ref.label, ref_arr.shape, ref_vol.affine)
    pred = to_canonical(pred_arr, pred_convention or ref.convention, pred_path)
    truth = to_canonical(ref_arr, ref.convention, ref.label)
    spacing = voxel_spacing(ref_vol.affine)
    scores = score_case(pred, truth, spacing, with_hd95=with_hd95)
    for region in REGION_NAMES:
        pred_mask, ref_mask = structure_mask(pred, region), structure_mask(truth, region)
        scores[region].update(lesion_wise(pred_mask, ref_mask, spacing, with_hd95=with_hd95))
    return CaseScores(ref.case_id, scores, pred_path, ref)


def evaluate_folder(
    pred_dir: str | Path,
    ref_dir: str | Path,
    pred_convention: str | None = None,
    with_hd95: bool = True,
    keep_going: bool = False,
) -> Evaluation:
    """Pair predictions with reference cases by case id; a reference without prediction is an error.
    With ``keep_going`` a case whose files are bad is listed in ``failures`` and the others are scored."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise BratsInputError(pred_dir, "prediction folder not found")
    refs = discover(ref_dir).labelled()
    if not refs:
        raise BratsInputError(ref_dir, "no labelled reference cases found")
    paired = {case.case_id: find_prediction(pred_dir, case.case_id) for case in refs}
    missing = [case_id for case_id, path in paired.items() if path is None]
    if missing:
        more = f" (and {len(missing) - 3} more)" if len(missing) > 3 else ""
        raise BratsInputError(pred_dir, f"no prediction for case(s) {', '.join(missing[:3])}{more}")
    for path in sorted(pred_dir.glob("*.nii*")):
        stem = strip_nifti_suffix(path.name) or ""
        if path not in paired.values() and not stem.endswith("_prob"):
            raise BratsInputError(path, "prediction without a reference case of the same id")
    evaluation = Evaluation(keep_going=keep_going)
    for case in refs:
        evaluation.attempt(lambda case=case: score_files(paired[case.case_id], case, pred_convention, with_hd95))
    return evaluation


def evaluate_checkpoint(
    checkpoint: str | Path | list[str | Path],
    data_dir: str | Path,
    out_dir: str | Path,
    options=None,
    patches_per_case: int = 0,
    case_ids: list[str] | None = None,
    with_hd95: bool = True,
    keep_going: bool = False,
) -> Evaluation:
    """Predict every labelled case (or ``case_ids``) with one checkpoint or the ensemble of several into
    ``out_dir/predictions``, then score; optionally also score the model on tumour-biased training-style patches,
    to compare with whole-scan numbers."""
    options = options or PredictOptions(pictures=False)
    predictor = Predictor(checkpoint, options)
    refs = discover(data_dir).labelled()
    if case_ids:
        refs = [c for c in refs if c.case_id in set(case_ids)]
        if not refs:
            raise BratsInputError(data_dir, f"none of the cases {case_ids} is in the dataset")
    pred_dir = Path(out_dir) / "predictions"
    evaluation = Evaluation(keep_going=keep_going, inference=predictor.settings())
    for case in refs:
        evaluation.attempt(lambda case=case: predict_and_score(predictor, case, pred_dir, with_hd95))
    if patches_per_case > 0:
        evaluation.patch_scores = patch_level_scores(predictor, refs, patches_per_case)
    return evaluation


def predict_and_score(predictor: Predictor, case: Case, pred_dir: Path, with_hd95: bool = True) -> CaseScores:
    """Predict one labelled case into ``pred_dir`` and score the written file as ``--pred/--ref`` would."""
    prediction = predictor.predict(case)
    seg = predictor.write(prediction, pred_dir)[0]
    return score_files(seg, case, with_hd95=with_hd95)


def patch_level_scores(predictor: Predictor, cases: list[Case], patches_per_case: int, seed: int = 0) -> dict:
    """Mean metrics over tumour-biased patches drawn as in training, the network(s) applied to each patch alone."""
    arguments = predictor.config.train_transform_arguments(
        unbiased_fraction=0.0, samples_per_case=patches_per_case, target="classes", augment=None
    )
    chain = build_train_transforms(**arguments)
    chain.set_random_state(seed)
    rows = []
    for case in cases:
        for patch in chain(case.to_dict()):
            probs = 0
            for model in predictor.models:
                with torch.no_grad(), autocast(predictor.device, predictor.options.amp):
                    logits = model(patch["image"][None].to(predictor.device)).float()
                probs = probs + predictor.target.probabilities(logits[0]).cpu()
            pred = predictor.target.labels(probs / len(predictor.models), predictor.rules.thresholds)
            rows.append(score_case(pred, patch["label"][0].numpy().astype(np.uint8), with_hd95=False))
    return {
        s: {m: float(np.mean([r[s][m] for r in rows])) for m in ("dice", "sensitivity", "specificity")}
        for s in STRUCTURES
    }


def write_tables(evaluation: Evaluation, out_dir: str | Path) -> tuple[Path, Path]:
    """``per_case.csv`` (one row per case and structure) and ``summary.json``."""
    out_dir = Path(out_dir)
    csv_path, json_path = out_dir / "per_case.csv", out_dir / "summary.json"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["case", "structure", *ALL_METRICS])
        for case in evaluation.cases:
            for structure, values in case.scores.items():
                cells = (f"{values[m]:.6g}" if m in values else "" for m in ALL_METRICS)
                writer.writerow([case.case_id, structure, *cells])
    payload = {
        "cases": len(evaluation.cases),
        "conventions": {
            "empty_both": "Dice 1, sensitivity 1, HD95 0",
            "empty_one": "Dice 0, HD95 373.13 mm",
            "specificity": "true negatives over the whole scan",
            "lesion_wise": "BraTS 2023, regions only: 26-connected lesions merged by 3 dilations, lesions of at most "
            "50 voxels not scored, a miss or false positive scores Dice 0 and HD95 374 mm",
        },
        "whole_scan": evaluation.summary(),
    }
    if evaluation.inference is not None:
        payload["inference"] = evaluation.inference
    if evaluation.patch_scores is not None:
        payload["patches"] = evaluation.patch_scores
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(payload, indent=2))
    return csv_path, json_path
