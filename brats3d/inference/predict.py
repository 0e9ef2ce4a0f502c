"""``brats3d predict``: a checkpoint applied to whole scans, written back in each input's own grid and labels."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn as nn

from brats3d.config import config_from_dict
from brats3d.data.io import LoadedCase, write_label_map
from brats3d.data.labels import REGION_NAMES, REGION_SHORT, LabelConvention, labels_to_regions
from brats3d.data.layouts import MODALITIES, Case, Layout, discover
from brats3d.data.targets import Target, get_target
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path
from brats3d.inference.sliding_window import sliding_window_predict
from brats3d.models.checkpoint import load_checkpoint, model_from_checkpoint
from brats3d.models.device import select_device
from brats3d.models.registry import check_network
from brats3d.transforms import build_val_transforms
from brats3d.transforms.pipeline import EVERY_AXIS
from brats3d.transforms.postprocess import RULES_FILE, PostProcessing, restrict_to_brain
from brats3d.transforms.resampling import resample, resampled_shape, resampling_factors


@dataclass
class PredictOptions:
    window: Sequence[int] | None = None  # sliding-window size; None: the recipe's (inference.window, else its patch)
    overlap: float = 0.5
    sw_batch_size: int = 4
    tta: bool | None = None  # average over the flips (8 on 3 axes); None: the recipe's choice (inference.tta)
    flip_axes: Sequence[int] | None = None  # the axes TTA flips across; None: those the recipe trained its flips on
    # None: the run's post-processing rules (postprocessing.json beside the checkpoint or in its parent folder),
    # else those of the checkpoint's recipe (its config's postprocessing section); a value given here overrides.
    threshold: float | None = None
    min_component: int | None = None  # voxels
    min_enhancing: int | None = None  # voxels
    enhancing_contrast: float | str | None = None  # T1ce z-score of the enhancing-contrast rule, or "off"
    device: str = "auto"
    # None: the precision the recipe trained in (train.amp; bf16 also on CPUs with AVX512-BF16): with flip TTA on
    # 2 such cores 15 s a scan instead of 26 s, the same out-of-fold Dice to three decimals (BENCHMARKS.md)
    amp: str | None = None
    # a scan whose voxel spacing is over 10 % from the training data's is predicted at the training spacing
    resample: bool = True
    save_probabilities: bool = False
    pictures: bool = True
    picture_modality: str = "flair"


@dataclass
class Prediction:
    case: Case
    labels_ras: np.ndarray  # canonical labels on the scan's own grid, its axes in RAS order
    probabilities_ras: torch.Tensor | None
    loaded: LoadedCase
    timings: dict[str, float] = field(default_factory=dict)

    def labels_in_source_order(self) -> np.ndarray:
        return self.loaded.from_ras(self.labels_ras)

    def volumes_cm3(self) -> dict[str, float]:
        voxel_cm3 = float(np.prod(self.loaded.spacing)) / 1000.0
        regions = labels_to_regions(self.labels_ras)
        return {name: float(regions[i].sum()) * voxel_cm3 for i, name in enumerate(REGION_NAMES)}


# What must agree between the checkpoints of an ensemble: averaging probabilities of networks that see other
# inputs or predict other channels would be meaningless.
ENSEMBLE_KEYS = (
    "kind", "network", "network_kwargs", "target", "patch_size", "normalisation", "mirror_difference", "modalities",
    "in_channels", "class_values", "image_size",
)  # fmt: skip


def load_ensemble(checkpoints: Sequence[str | Path], device: torch.device) -> tuple[list[nn.Module], dict]:
    """Networks of one or more checkpoints (e.g. the fold models of a cross-validation), in eval mode on
    ``device``, and the first one's payload; a checkpoint that differs in network or inputs is refused."""
    if not checkpoints:
        raise BratsInputError(None, "no checkpoint given")
    models, first = [], None
    for path in checkpoints:
        payload = load_checkpoint(path)
        if first is None:
            first = payload
        different = [k for k in ENSEMBLE_KEYS if payload.get(k) != first.get(k)]
        if different:
            raise BratsInputError(
                path,
                f"cannot ensemble with {checkpoints[0]}: {', '.join(different)} differ ({different[0]} "
                f"{payload.get(different[0])!r} vs {first.get(different[0])!r})",
            )
        model, _ = model_from_checkpoint(payload)
        models.append(model.to(device).eval())
        payload.pop("model")
    return models, first


def find_rules(checkpoint: str | Path) -> Path | None:
    """The post-processing rules of a checkpoint's run: beside it, or one folder up (a cross-validation run)."""
    folder = Path(checkpoint).resolve().parent
    for candidate in (folder / RULES_FILE, folder.parent / RULES_FILE):
        if candidate.is_file():
            return candidate
    return None


def ensemble_probabilities(
    models: Sequence[nn.Module],
    image: torch.Tensor,
    target: str,
    window: Sequence[int],
    options: PredictOptions,
    device: torch.device,
) -> torch.Tensor:
    """Mean of the models' sliding-window probabilities (C, X, Y, Z) for one preprocessed scan."""
    total = None
    for model in models:
        probs = sliding_window_predict(
            model,
            image,
            window,
            target,
            options.overlap,
            options.sw_batch_size,
            device,
            options.amp,
            options.tta,
            options.flip_axes if options.flip_axes is not None else EVERY_AXIS,
        )
        total = probs if total is None else total + probs
    return total / len(models)


def segment_cropped(
    models: Sequence[nn.Module],
    image: torch.Tensor,
    target: Target,
    window: Sequence[int],
    options: PredictOptions,
    device: torch.device,
    thresholds: float | Sequence[float] = 0.5,
    zoom: Sequence[float] | None = None,
) -> tuple[torch.Tensor, np.ndarray]:
    """Probabilities and canonical labels for a scan preprocessed by the validation chain (cropped to the brain,
    normalised), labels restricted to brain voxels. Validation and ``brats3d predict`` both call this.

    ``zoom`` (``resampling_factors``): the normalised scan is predicted resampled to the network's training spacing
    and its probabilities are resampled back to the scan's grid before the thresholds."""
    image = image.float()
    if zoom is None:
        probs = ensemble_probabilities(models, image, target.name, window, options, device)
    else:
        at_training_spacing = resample(image, resampled_shape(image.shape[1:], zoom))
        probs = ensemble_probabilities(models, at_training_spacing, target.name, window, options, device)
        probs = resample(probs, image.shape[1:])
    return probs, restrict_to_brain(target.labels(probs, thresholds), image.numpy())


def probabilities_on_scan(
    probs: torch.Tensor, box: tuple[slice, ...], grid_shape: Sequence[int], scan_shape: Sequence[int]
) -> torch.Tensor:
    """Probabilities predicted on the brain ``box`` of a scan resampled to ``grid_shape`` (the training spacing),
    brought back onto the scan's own grid: the whole resampled grid maps onto the whole scan, so the way back is the
    exact inverse of the way there. One channel at a time, so that a fine scan holds one full-size copy, not three."""
    out = torch.empty((probs.shape[0], *scan_shape), dtype=torch.float32)
    for c in range(probs.shape[0]):
        grid = torch.zeros((1, *grid_shape), dtype=torch.float32)
        grid[(0, *box)] = probs[c]
        out[c] = resample(grid, scan_shape)[0]
    return out


def resolve_inputs(
    paths: list[str], modality_files: dict[str, str | None], convention: str | None = None
) -> list[Case]:
    """Cases from: a 4D Decathlon file, a BraTS case folder, a whole dataset folder, or four explicit files."""
    explicit = {m: p for m, p in modality_files.items() if p}
    if explicit:
        missing = [m for m in MODALITIES if m not in explicit]
        if missing:
            raise BratsInputError(None, f"missing modality file(s): {', '.join('--' + m for m in missing)}")
        if paths:
            raise BratsInputError(None, "give either input paths or --flair/--t1/--t1ce/--t2, not both")
        first = Path(explicit["flair"])
        stem = first.name.split(".")[0]
        for ending in ("_flair", "-t2f", "_0000"):
            stem = stem.removesuffix(ending)
        layout = Layout(convention or "brats2021")
        return [Case(stem, layout, tuple(Path(explicit[m]) for m in MODALITIES))]
    if not paths:
        raise BratsInputError(None, "nothing to predict: give a scan, a case folder or a dataset folder")
    cases: list[Case] = []
    for text in paths:
        path = Path(text)
        if path.is_file():
            stem = path.name.split(".nii")[0]
            cases.append(Case(stem, Layout(convention) if convention else Layout.MSD, (path,)))
        elif path.is_dir():
            index = discover(path)
            if index.problems:
                raise BratsInputError(path, index.problems[0])
            cases.extend(index.cases)
        else:
            raise BratsInputError(path, "input not found")
    return cases


class Predictor:
    """Loaded checkpoint(s) plus the inference settings; ``predict`` runs one case through the validation chain."""

    def __init__(self, checkpoint: str | Path | Sequence[str | Path], options: PredictOptions | None = None) -> None:
        options = options or PredictOptions()
        checkpoints = [checkpoint] if isinstance(checkpoint, str | Path) else list(checkpoint)
        self.device = select_device(options.device)
        self.models, payload = load_ensemble(checkpoints, self.device)
        self.config = config_from_dict(payload["config"])
        if options.tta is None:
            options = replace(options, tta=self.config.inference.tta)
        if options.amp is None:
            options = replace(options, amp=self.config.train.amp)
        if options.flip_axes is None:
            options = replace(options, flip_axes=tuple(self.config.data.flip_axes))
        self.options = options
        self.target = get_target(payload["target"])
        self.window = list(options.window or self.config.inference_window)
        problem = check_network(payload["network"], self.window)
        if problem:
            raise BratsInputError(None, f"sliding window {'x'.join(map(str, self.window))}: {problem}")
        self.checkpoints = [str(c) for c in checkpoints]
        self.training_spacing = payload.get("spacing")  # None in checkpoints from before it was recorded
        self.rules = self._rules(checkpoints[0])
        # A scan finer than the training spacing is resampled before it is cropped and normalised (a 0.5 mm scan is
        # normalised on an eighth of its voxels: 14 s instead of 33 s to load, the same Dice); any other scan is
        # normalised on its own grid and resampled afterwards (``segment_cropped``). Normalised after upsampling,
        # interpolated voxels lack the scan's noise and the standardisation stretches the contrast: 2 mm copies of
        # six held-out cases lost 0.021 WT Dice that way (BENCHMARKS.md, "Scans at another voxel spacing").
        self.chain = build_val_transforms(
            normalisation=payload["normalisation"],
            reader=self.config.data.reader,
            with_label=False,
            keep_source=True,
            mirror_difference=payload["mirror_difference"],
            spacing=self.training_spacing if options.resample else None,
            only_finer=True,
        )

    def _rules(self, checkpoint: str | Path) -> PostProcessing:
        """The run's post-processing rules (its postprocessing.json, else its recipe's), with any value given in the
        options taking precedence."""
        path = find_rules(checkpoint)
        recipe = self.config.postprocessing
        rules = PostProcessing.load(path) if path else replace(recipe, thresholds=list(recipe.thresholds))
        o = self.options
        if o.threshold is not None:
            rules.thresholds = [o.threshold] * 3
        if o.min_component is not None:
            rules.min_component = o.min_component
        if o.min_enhancing is not None:
            rules.min_enhancing = o.min_enhancing
        if o.enhancing_contrast is not None:
            rules.min_enhancing_contrast = None if o.enhancing_contrast == "off" else float(o.enhancing_contrast)
        return rules

    def settings(self) -> dict:
        """How this predictor turns scans into labels, for a report to state: checkpoints, sliding window, flip TTA
        and post-processing rules."""
        o = self.options
        return {
            "checkpoints": list(self.checkpoints),  # a copy: a cross-validation report appends the other folds
            "window": list(self.window),
            "overlap": o.overlap,
            "tta": bool(o.tta),
            "flip_axes": list(o.flip_axes),
            "amp": o.amp,
            # scans this far from the training spacing (None: not recorded, or --no-resample) are resampled to it
            "resample_to": self.training_spacing if o.resample else None,
            "postprocessing": asdict(self.rules),
        }

    def predict(self, case: Case) -> Prediction:
        o = self.options
        t0 = time.perf_counter()
        item = self.chain(case.to_dict())
        start, end = item["foreground_start_coord"], item["foreground_end_coord"]
        if any(e <= s for s, e in zip(start, end)):
            raise BratsInputError(case.images[0], "image is empty (every voxel is zero)")
        box = tuple(slice(int(s), int(e)) for s, e in zip(start, end))
        loaded: LoadedCase = item["source"]
        zoom = resampling_factors(loaded.spacing, self.training_spacing) if o.resample else None
        rules = self.rules if zoom is None else self.rules.for_voxel_volume(float(np.prod(zoom)))
        t1 = time.perf_counter()
        scan_shape = loaded.image.shape[1:]
        if item["spacing"] != loaded.spacing:  # the chain resampled it; thresholds and rules on the scan's grid
            probs = ensemble_probabilities(
                self.models, item["image"].float(), self.target.name, self.window, o, self.device
            )
            probs = probabilities_on_scan(probs, box, item["spatial_shape"], scan_shape)
            labels = restrict_to_brain(self.target.labels(probs, rules.thresholds), loaded.image)
            box = (slice(None),) * len(scan_shape)
        else:
            probs, cropped = segment_cropped(
                self.models, item["image"], self.target, self.window, o, self.device, rules.thresholds, zoom
            )
            labels = np.zeros(scan_shape, np.uint8)
            labels[box] = cropped
        if not torch.isfinite(probs).all():  # thresholds would silently turn NaN into background
            raise BratsInputError(
                case.images[0],
                "the network's output holds NaN or infinite values: the checkpoint's weights are broken, or this "
                "machine's low-precision kernels failed",
            )
        labels = rules.apply(labels, loaded.image)
        full_probs = None
        if o.save_probabilities:
            full_probs = torch.zeros((probs.shape[0], *scan_shape), dtype=torch.float16)
            full_probs[(slice(None), *box)] = probs.half()
        t2 = time.perf_counter()
        return Prediction(case, labels, full_probs, loaded, {"load": t1 - t0, "infer": t2 - t1})

    def write(self, prediction: Prediction, out_dir: str | Path, truth: np.ndarray | None = None) -> list[Path]:
        """Label map (input grid, input label numbering) with its viewer label tables, optional probabilities, and
        pictures."""
        o, case, loaded = self.options, prediction.case, prediction.loaded
        out_dir = Path(out_dir)
        protect = (*case.images, *([case.label] if case.label else []))
        t0 = time.perf_counter()
        written = [
            write_label_map(
                prediction.labels_in_source_order(),
                out_dir / f"{case.case_id}_seg.nii.gz",
                loaded.source_affine,
                loaded.header,
                case.convention,
                protect=protect,
            )
        ]
        if prediction.probabilities_ras is not None:
            probs = prediction.probabilities_ras.float().numpy()
            scaled = np.stack([loaded.from_ras(p) for p in probs], axis=-1)
            img = nib.Nifti1Image(np.round(scaled * 255).astype(np.uint8), loaded.source_affine)
            img.header["scl_slope"], img.header["scl_inter"] = 1 / 255, 0.0  # viewers show 0..1 probabilities
            path = out_dir / f"{case.case_id}_prob.nii.gz"
            with atomic_path(path, protect=protect) as tmp:
                nib.save(img, str(tmp))
            written.append(path)
        from brats3d.visualize import write_label_tables  # pictures and tables load their modules only when used

        written += write_label_tables(written[0], case.convention)
        prediction.timings["write"] = time.perf_counter() - t0
        if o.pictures:
            from brats3d.visualize import write_case_pictures

            t1 = time.perf_counter()
            channel = MODALITIES.index(o.picture_modality)
            written += write_case_pictures(out_dir, case.case_id, loaded.image[channel], prediction.labels_ras, truth)
            prediction.timings["pictures"] = time.perf_counter() - t1
        return written


def load_truth(path: str | Path, prediction: Prediction, convention: str | None = None) -> np.ndarray:
    """A ground-truth label file for a predicted case, on the prediction's RAS grid."""
    from brats3d.data.io import Volume, load_label, to_ras

    ref = Volume(prediction.case.images[0], np.empty(0), prediction.loaded.source_affine)
    shape = prediction.loaded.from_ras(prediction.labels_ras).shape
    label = load_label(Path(path), LabelConvention(convention or prediction.case.convention.value), ref, shape)
    _, label_ras, _, _ = to_ras(np.zeros((1, *label.shape), np.float32), label, prediction.loaded.source_affine)
    return label_ras


def summary_line(prediction: Prediction) -> str:
    vols = prediction.volumes_cm3()
    text = "  ".join(f"{REGION_SHORT[n]} {vols[n]:7.1f} cm³" for n in REGION_NAMES)
    t = prediction.timings
    parts = " + ".join(f"{k} {v:.1f}s" for k, v in t.items())
    return f"{prediction.case.case_id}: {text}  ({sum(t.values()):.1f}s: {parts})"
