"""``brats3d evaluate`` for 2D: DSC, IoU, sensitivity, specificity and HD95 (pixels) per image, DSC per patient
volume (the patient's slices stacked: the metric the LGG reference program reports), and the report.

Structures scored: ``foreground`` (any non-zero class; the whole mask of a binary task) and, with more than two
classes, each class on its own.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from brats3d.data.slices import Slice, mask_suffix, read_image, read_mask
from brats3d.errors import BratsInputError
from brats3d.evaluation.metrics import Confusion, hd95
from brats3d.evaluation.report import markdown_html
from brats3d.files import atomic_path, ensure_output_dir

PER_IMAGE = ("dsc", "iou", "sensitivity", "specificity", "hd95_px")


def structures(class_values: Sequence[int]) -> list[str]:
    return ["foreground", *([f"class_{v}" for v in class_values[1:]] if len(class_values) > 2 else [])]


def _mask_of(classes: np.ndarray, structure: str, class_values: Sequence[int]) -> np.ndarray:
    if structure == "foreground":
        return classes > 0
    return classes == list(class_values).index(int(structure.removeprefix("class_")))


def _overlap(c: Confusion) -> dict[str, float]:
    """DSC, IoU, sensitivity and specificity of one confusion (an image's, or a patient's slices summed)."""
    union = c.tp + c.fp + c.fn
    return {
        "dsc": c.dice,
        "iou": 1.0 if union == 0 else c.tp / union,
        "sensitivity": c.sensitivity,
        "specificity": c.specificity,
    }


def _hd95_px(p: np.ndarray, t: np.ndarray) -> float:
    """HD95 in pixels; an empty mask against a non-empty one: the image diagonal."""
    if p.any() and t.any():
        return hd95(p, t, (1.0, 1.0))
    return 0.0 if p.any() == t.any() else float(np.hypot(*p.shape))


def _structure_scores(
    pred: np.ndarray, truth: np.ndarray, class_values: Sequence[int], with_hd95: bool = True
) -> dict[str, tuple[Confusion, dict[str, float]]]:
    """Per structure: the confusion and the image's metrics (one pass over the masks for both)."""
    out = {}
    for name in structures(class_values):
        p, t = _mask_of(pred, name, class_values), _mask_of(truth, name, class_values)
        c = Confusion.of(p, t)
        out[name] = (c, {**_overlap(c), **({"hd95_px": _hd95_px(p, t)} if with_hd95 else {})})
    return out


def score_image(pred: np.ndarray, truth: np.ndarray, class_values: Sequence[int]) -> dict[str, dict[str, float]]:
    """Metrics per structure for one image; HD95 in pixels (an empty mask against a non-empty one: the diagonal)."""
    return {name: metrics for name, (_, metrics) in _structure_scores(pred, truth, class_values).items()}


@dataclass
class SliceEvaluation:
    class_values: list[int]
    images: list[dict] = field(default_factory=list)  # slice id, patient, then "<structure>_<metric>"
    confusion: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (patient, structure) -> tp fp fn tn
    # The best and worst images holding a lesion (truth or prediction), for the report's examples: only these
    # few are kept, so scoring thousands of slices holds no more than a handful of masks.
    examples: list[tuple[float, str, Path, np.ndarray, np.ndarray]] = field(default_factory=list)
    keep: int = 3
    with_hd95: bool = True  # training's validation needs only DSC: HD95 per image is the slow part

    def add(self, item: Slice, pred: np.ndarray, truth: np.ndarray) -> dict:
        if pred.shape != truth.shape:
            raise BratsInputError(item.mask, f"prediction size {pred.shape} differs from the mask's {truth.shape}")
        row = {"slice": item.slice_id, "patient": item.patient}
        for name, (c, values) in _structure_scores(pred, truth, self.class_values, self.with_hd95).items():
            row |= {f"{name}_{k}": v for k, v in values.items()}
            total = self.confusion.setdefault((item.patient, name), [0, 0, 0, 0])
            for i, v in enumerate((c.tp, c.fp, c.fn, c.tn)):
                total[i] += v
        self.images.append(row)
        if pred.any() or truth.any():
            self._remember((row["foreground_dsc"], item.slice_id, item.image, pred, truth))
        return row

    def _remember(self, example: tuple) -> None:
        ranked = sorted([*self.examples, example], key=lambda e: (e[0], e[1]))
        self.examples = ranked if len(ranked) <= 2 * self.keep else ranked[: self.keep] + ranked[-self.keep :]

    def patients(self) -> list[dict]:
        """DSC, IoU, sensitivity and specificity per patient volume (all its slices together)."""
        rows: dict[str, dict] = {}
        for (patient, name), counts in sorted(self.confusion.items()):
            scores = _overlap(Confusion(*counts))
            rows.setdefault(patient, {"patient": patient}).update({f"{name}_{k}": v for k, v in scores.items()})
        return list(rows.values())

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and median of each metric per image and of DSC per patient."""
        out = {}
        for name in structures(self.class_values):
            for metric in PER_IMAGE if self.with_hd95 else PER_IMAGE[:-1]:
                values = [r[f"{name}_{metric}"] for r in self.images]
                out[f"{name}_{metric}_per_image"] = _stats(values)
            out[f"{name}_dsc_per_patient"] = _stats([r[f"{name}_dsc"] for r in self.patients()])
        return out


def _stats(values: Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=float)
    return {"mean": float(array.mean()), "median": float(np.median(array)), "n": int(array.size)}


def evaluate_with_models(models, slices: Iterable[Slice], options, with_hd95: bool = True) -> SliceEvaluation:
    """Predict every labelled slice with ``models`` (an ``inference.slices.SliceModels``) and score it."""
    load = models.load_transforms()
    evaluation = SliceEvaluation(list(models.class_values), with_hd95=with_hd95)
    for item in slices:
        data = load({"image": str(item.image), "label": str(item.mask)})
        pred = options.postprocessing.apply(
            models.classes(models.probabilities(data["image"]), options.postprocessing.threshold)
        )
        truth = np.asarray(data["label"][0]).astype(np.uint8)
        evaluation.add(item, pred, truth)
    return evaluation


def evaluate_out_of_fold(run_dir: str | Path, data: str | Path, options) -> SliceEvaluation:
    """Each fold's final model (``last.pt``) scores the patients that fold held out: every patient once."""
    from brats3d.data.slices import discover_slices
    from brats3d.evaluation.crossval import fold_runs
    from brats3d.inference.slices import SliceModels

    slices = discover_slices(data).require_clean().labelled()
    combined: SliceEvaluation | None = None
    for folder, patients in fold_runs(run_dir):
        held_out = [s for s in slices if s.patient in set(patients)]
        if not held_out:
            raise BratsInputError(folder, f"none of this fold's patients are in {data}")
        part = evaluate_with_models(SliceModels.load([folder / "last.pt"]), held_out, options)
        if combined is None:
            combined = part
        else:
            combined.images += part.images
            combined.confusion |= part.confusion
            for example in part.examples:
                combined._remember(example)
    return combined


def evaluate_predictions(pred_dir: str | Path, slices: Iterable[Slice], class_values: Sequence[int]) -> SliceEvaluation:
    """Score masks written by ``brats3d predict`` (``<stem>_mask.<ext>`` anywhere under ``pred_dir``)."""
    pred_dir = Path(pred_dir)
    found = {p.name: p for p in pred_dir.rglob("*_mask.*")}
    evaluation = SliceEvaluation(list(class_values))
    for item in slices:
        name = f"{item.image.stem}_mask{mask_suffix(item.image)}"
        if name not in found:
            raise BratsInputError(pred_dir, f"no prediction {name} for {item.image}")
        pred, truth = read_mask(found[name], class_values), read_mask(item.mask, class_values)
        evaluation.add(item, pred, truth)
    return evaluation


def _write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()})


def _plot_dsc(evaluation: SliceEvaluation, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
    for ax, (title, values) in zip(
        axes,
        (
            ("DSC per patient", [r["foreground_dsc"] for r in evaluation.patients()]),
            ("DSC per image", [r["foreground_dsc"] for r in evaluation.images]),
        ),
    ):
        ax.boxplot(values, widths=0.5)
        ax.scatter(np.random.default_rng(0).normal(1, 0.04, len(values)), values, s=8, alpha=0.6)
        ax.axhline(np.mean(values), color="tab:red", lw=1, label=f"mean {np.mean(values):.3f}")
        ax.axhline(np.median(values), color="tab:green", lw=1, ls="--", label=f"median {np.median(values):.3f}")
        ax.set_title(title)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xticks([])
        ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def _examples(evaluation: SliceEvaluation, out_dir: Path, count: int = 3) -> list[tuple[str, str, float]]:
    """Overlays of the best and worst images that hold a lesion in the truth or the prediction."""
    from brats3d.visualize.slices import overlay, write_png

    ranked = evaluation.examples
    chosen = [("worst", e) for e in ranked[:count]] + [("best", e) for e in ranked[::-1][:count]]
    out = []
    for kind, (dsc, slice_id, image_path, pred, truth) in chosen:
        name = f"{kind}_{slice_id}.png"
        write_png(out_dir / name, overlay(read_image(image_path), pred, truth))
        out.append((kind, name, dsc))
    return out


def write_slice_report(evaluation: SliceEvaluation, out_dir: str | Path) -> Path:
    """per_image.csv, per_patient.csv, summary.json, dsc.png, example overlays, report.md and report.html."""
    if not evaluation.images:
        raise BratsInputError(None, "nothing to evaluate: no labelled images")
    out_dir = ensure_output_dir(out_dir)
    _write_csv(out_dir / "per_image.csv", evaluation.images)
    _write_csv(out_dir / "per_patient.csv", evaluation.patients())
    summary = evaluation.summary()
    with atomic_path(out_dir / "summary.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    _plot_dsc(evaluation, out_dir / "dsc.png")
    examples = _examples(evaluation, out_dir)
    lines = [
        "# brats3d 2D evaluation",
        "",
        f"{len(evaluation.patients())} patients, {len(evaluation.images)} images. HD95 in pixels.",
        "",
        "| measure | mean | median |",
        "|---|---|---|",
        *(f"| {k} | {v['mean']:.4f} | {v['median']:.4f} |" for k, v in summary.items()),
        "",
        "![DSC](dsc.png)",
        "",
        "## Examples (filled: prediction; outline: truth)",
        "",
    ]
    for kind, name, dsc in examples:
        lines += [f"{kind}: {name.split('_', 1)[1][:-4]} (DSC {dsc:.3f})", f"![{kind}]({name})"]
    with atomic_path(out_dir / "report.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    with atomic_path(out_dir / "report.html") as tmp:
        tmp.write_text(markdown_html(lines))
    return out_dir / "report.md"
