"""``brats3d predict``: a checkpoint applied to whole scans, written back in each input's own grid and labels."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from monai.transforms.utils import generate_spatial_bounding_box

from brats3d.data.io import LoadedCase, load_case, write_label_map
from brats3d.data.labels import REGION_NAMES, REGION_SHORT, LabelConvention, labels_to_regions
from brats3d.data.layouts import MODALITIES, Case, Layout, discover
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path
from brats3d.inference.postprocess import remove_small_components, restrict_to_brain
from brats3d.inference.sliding_window import probabilities_to_labels, select_device, sliding_window_predict
from brats3d.training.checkpoint import load_checkpoint, model_from_checkpoint
from brats3d.transforms.intensity import brain_normalisation
from brats3d.transforms.pipeline import BRAIN_CROP_MARGIN, is_brain


@dataclass
class PredictOptions:
    overlap: float = 0.5
    sw_batch_size: int = 4
    tta: bool = False
    threshold: float = 0.5
    min_component: int = 0  # voxels; 0 keeps every component
    device: str = "auto"
    amp: str = "auto"
    save_probabilities: bool = False
    pictures: bool = True
    picture_modality: str = "flair"


@dataclass
class Prediction:
    case: Case
    labels_ras: np.ndarray  # canonical labels on the RAS-ordered grid the network saw
    probabilities_ras: torch.Tensor | None
    loaded: LoadedCase
    timings: dict[str, float] = field(default_factory=dict)

    def labels_in_source_order(self) -> np.ndarray:
        return self.loaded.from_ras(self.labels_ras)

    def volumes_cm3(self) -> dict[str, float]:
        voxel_cm3 = float(np.prod(self.loaded.spacing)) / 1000.0
        regions = labels_to_regions(self.labels_ras)
        return {name: float(regions[i].sum()) * voxel_cm3 for i, name in enumerate(REGION_NAMES)}


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
    """A loaded checkpoint plus the inference settings; ``predict`` runs one case."""

    def __init__(self, checkpoint: str | Path, options: PredictOptions | None = None) -> None:
        self.options = options or PredictOptions()
        payload = load_checkpoint(checkpoint)
        self.model, self.config = model_from_checkpoint(payload)
        self.target = payload["target"]
        self.patch_size = payload["patch_size"]
        self.normalise = brain_normalisation("image", per_slice=payload["normalisation"] == "slice")
        self.device = select_device(self.options.device)
        self.model.to(self.device).eval()

    def predict(self, case: Case) -> Prediction:
        o = self.options
        t0 = time.perf_counter()
        loaded = load_case(case, with_label=False, ras=True)
        start, end = generate_spatial_bounding_box(
            loaded.image, select_fn=is_brain, margin=BRAIN_CROP_MARGIN, allow_smaller=True
        )
        if any(e <= s for s, e in zip(start, end)):
            raise BratsInputError(case.images[0], "image is empty (every voxel is zero)")
        box = tuple(slice(s, e) for s, e in zip(start, end))
        image = torch.as_tensor(self.normalise({"image": loaded.image[(slice(None), *box)]})["image"])
        t1 = time.perf_counter()
        probs = sliding_window_predict(
            self.model,
            image.float(),
            self.patch_size,
            self.target,
            o.overlap,
            o.sw_batch_size,
            self.device,
            o.amp,
            o.tta,
        )
        labels = np.zeros(loaded.image.shape[1:], np.uint8)
        labels[box] = probabilities_to_labels(probs, self.target, o.threshold)
        labels = remove_small_components(restrict_to_brain(labels, loaded.image), o.min_component)
        full_probs = None
        if o.save_probabilities:
            full_probs = torch.zeros((probs.shape[0], *loaded.image.shape[1:]), dtype=torch.float16)
            full_probs[(slice(None), *box)] = probs.half()
        t2 = time.perf_counter()
        return Prediction(case, labels, full_probs, loaded, {"load": t1 - t0, "infer": t2 - t1})

    def write(self, prediction: Prediction, out_dir: str | Path, truth: np.ndarray | None = None) -> list[Path]:
        """Label map (input grid, input label numbering), optional probabilities, and pictures."""
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
