"""``brats3d predict`` for 2D: an image, a patient folder or a dataset folder in, a mask per image out (same size,
same file type, the dataset's mask values), with an overlay PNG per image and a GIF through each patient.

The network sees the image resized to its training size; the probabilities are resized back before thresholding,
so the mask matches its image pixel for pixel whatever the input size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from brats3d.data.slices import IMAGE_SUFFIXES, LGG_SLICE, Slice, mask_suffix, read_image, write_mask
from brats3d.data.targets import Target, slice_target
from brats3d.errors import BratsInputError
from brats3d.models.device import autocast, select_device
from brats3d.transforms.slices import SlicePostProcessing, build_slice_load_transforms


@dataclass
class SliceModels:
    """An ensemble of 2D networks and what they were trained on."""

    models: list[nn.Module]
    target: Target
    class_values: list[int]
    image_size: list[int]
    in_channels: int
    device: torch.device
    amp: str = "auto"
    stats: tuple[list[float], list[float]] | None = None  # the training set's channel mean and std, if used

    @classmethod
    def load(cls, checkpoints: Sequence[str | Path], device: str = "auto", amp: str = "auto") -> SliceModels:
        from brats3d.inference.predict import load_ensemble

        torch_device = select_device(device)
        models, payload = load_ensemble(checkpoints, torch_device)
        if payload.get("kind") != "slices2d":
            raise BratsInputError(checkpoints[0], "a 3D checkpoint; 2D images need a checkpoint trained on slices")
        values, data = list(payload["class_values"]), payload["config"]["data"]
        stats = (data["channel_mean"], data["channel_std"]) if data.get("normalisation") == "dataset" else None
        return cls(
            models, slice_target(values), values, payload["image_size"], payload["in_channels"], torch_device, amp,
            stats,
        )  # fmt: skip

    def load_transforms(self):
        """The chain that reads and scales an image (and its mask) as the networks were trained."""
        return build_slice_load_transforms(self.class_values, self.stats)

    def probabilities(self, image: torch.Tensor | np.ndarray) -> np.ndarray:
        """Normalised (C, H, W) image -> mean probabilities of the ensemble (K, H, W) at the image's size."""
        x = torch.as_tensor(np.asarray(image), dtype=torch.float32)[None].to(self.device)
        if x.shape[1] != self.in_channels:
            raise BratsInputError(
                None, f"image has {x.shape[1]} channel(s); the network was trained on {self.in_channels}"
            )
        size = x.shape[-2:]
        x = F.interpolate(x, size=list(self.image_size), mode="bilinear", align_corners=False)
        total = None
        with torch.no_grad(), autocast(self.device, self.amp):
            for model in self.models:
                probs = self.target.probabilities(model(x).float(), channel_dim=1)
                total = probs if total is None else total + probs
        probs = F.interpolate(total / len(self.models), size=size, mode="bilinear", align_corners=False)
        return probs[0].cpu().numpy()

    def classes(self, probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
        """Probabilities (K, H, W) -> class indices (H, W) uint8."""
        if self.target.sigmoid:
            return (probs[0] > threshold).astype(np.uint8)
        return probs.argmax(0).astype(np.uint8)


def prediction_inputs(path: str | Path) -> list[Slice]:
    """The images under ``path`` (one image, an LGG patient folder, or a dataset folder; masks are skipped),
    grouped into patients by the LGG naming or else by folder."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(
            p for p in path.rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            and not p.stem.endswith("_mask") and "masks" not in p.relative_to(path).parts
        )  # fmt: skip
    else:
        raise BratsInputError(path, "no such image or folder")
    if not files:
        raise BratsInputError(path, f"no images ({', '.join(IMAGE_SUFFIXES)}) found")
    slices = []
    for order, f in enumerate(files):
        match = LGG_SLICE.match(f.stem)
        group = f.stem if path.is_file() else f.parent.name  # a lone image is its own patient
        patient, index = (match["patient"], int(match["n"])) if match else (group, order)
        slices.append(Slice(f, None, patient, index))
    return slices


@dataclass
class SlicePredictOptions:
    postprocessing: SlicePostProcessing = field(default_factory=SlicePostProcessing)
    pictures: bool = True


def predict_slices(
    models: SliceModels, inputs: Sequence[Slice], out_dir: str | Path, options: SlicePredictOptions
) -> list[Path]:
    """Write ``<stem>_mask<suffix>`` per image (and overlays, and a GIF per patient with several slices) into
    ``out_dir``, mirroring the input's patient folders; returns the masks written."""
    from brats3d.visualize.slices import overlay, write_gif, write_png

    out_dir = Path(out_dir)
    load = models.load_transforms()
    written, frames = [], {}
    for item in sorted(inputs, key=lambda s: (s.patient, s.index)):
        raw = read_image(item.image)  # read once: scaled for the network, shown as it is in the overlay
        probs = models.probabilities(load({"image": raw}, start=1)["image"])  # start=1: past the file reading
        classes = options.postprocessing.apply(models.classes(probs, options.postprocessing.threshold))
        folder = out_dir / item.patient if item.image.parent.name == item.patient else out_dir
        mask_path = folder / f"{item.image.stem}_mask{mask_suffix(item.image)}"
        write_mask(mask_path, classes, models.class_values)
        written.append(mask_path)
        if options.pictures:
            picture = overlay(raw, classes)
            write_png(folder / f"{item.image.stem}_overlay.png", picture)
            frames.setdefault((folder, item.patient), []).append(picture)
    for (folder, patient), pictures in frames.items():
        if len(pictures) > 1 and len({p.shape for p in pictures}) == 1:
            write_gif(folder / f"{patient}.gif", pictures)
    return written
