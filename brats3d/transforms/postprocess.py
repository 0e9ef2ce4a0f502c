"""Post-processing of predicted label maps, and the rules a run chose for it from out-of-fold predictions.

The rules (``PostProcessing``) come with a recipe (the ``postprocessing`` section of its config, chosen by
cross-validating that recipe) or are written by ``brats3d postprocess`` into a run folder as ``postprocessing.json``
(chosen from that run's own out-of-fold predictions, and preferred); ``brats3d predict`` applies them by default:
per-region probability thresholds, removal of small tumour components, optionally the rule that enhancing tumour
must be bright on T1ce, and the BraTS winners' rule that a scan with less predicted enhancing tumour than a minimum
volume has none (those voxels become necrotic / non-enhancing core), because a few enhancing voxels are far more often
a false positive than a real, tiny enhancing tumour.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from scipy import ndimage

from brats3d.data.brain import brain_mask
from brats3d.data.labels import ENHANCING, NON_ENHANCING
from brats3d.data.layouts import MODALITIES
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path

RULES_FILE = "postprocessing.json"


@dataclass
class PostProcessing:
    """Rules applied to probabilities and labels; the defaults change nothing beyond a 0.5 threshold."""

    # WT, TC, ET; for the classes target, on the summed class probabilities (``Target.region_probabilities``)
    thresholds: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    min_component: int = 0  # voxels; tumour components (26-connected) below this are removed, except the largest
    min_enhancing: int = 0  # voxels; less predicted ET than this in a scan is relabelled as non-enhancing core
    # T1ce z-score against the scan's predicted healthy brain; predicted ET darker than this becomes core (None: off)
    min_enhancing_contrast: float | None = None

    def apply(self, labels: np.ndarray, image: np.ndarray | None = None) -> np.ndarray:
        """The label-level rules (components, T1ce contrast, enhancing volume) on canonical labels; ``image`` is the
        scan (C, X, Y, Z) on the labels' grid, needed by the contrast rule only."""
        labels = remove_small_components(labels, self.min_component)
        if self.min_enhancing_contrast is not None:
            if image is None:
                raise ValueError("the enhancing-contrast rule needs the scan's image")
            labels = relabel_unenhanced(labels, image, self.min_enhancing_contrast)
        return relabel_small_enhancing(labels, self.min_enhancing)

    def for_voxel_volume(self, ratio: float) -> PostProcessing:
        """These rules on a grid whose voxels hold ``ratio`` times the volume of the grid they were chosen on: the
        voxel counts scaled so that each rule removes the same volume in ml."""
        return replace(
            self,
            thresholds=list(self.thresholds),
            min_component=round(self.min_component / ratio),
            min_enhancing=round(self.min_enhancing / ratio),
        )

    def check(self) -> None:
        """ValueError when a rule is out of range (shared by the config schema and the rules file)."""
        if len(self.thresholds) != 3 or not all(0 < t < 1 for t in self.thresholds):
            raise ValueError(f"thresholds must be three numbers between 0 and 1, got {self.thresholds}")
        if self.min_component < 0 or self.min_enhancing < 0:
            raise ValueError("min_component and min_enhancing must be >= 0 voxels")
        if self.min_enhancing_contrast is not None and not -5 <= self.min_enhancing_contrast <= 5:
            raise ValueError(
                f"min_enhancing_contrast must be a z-score between -5 and 5, got {self.min_enhancing_contrast}"
            )

    def save(self, path: str | Path, evidence: dict | None = None) -> Path:
        """Write the rules (and the numbers that chose them) as JSON."""
        path = Path(path)
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"rules": asdict(self), "evidence": evidence or {}}, indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> PostProcessing:
        path = Path(path)
        try:
            rules = json.loads(path.read_text())["rules"]
            contrast = rules.get("min_enhancing_contrast")  # absent from rules written before it existed
            loaded = cls(
                [float(t) for t in rules["thresholds"]],
                int(rules["min_component"]),
                int(rules["min_enhancing"]),
                None if contrast is None else float(contrast),
            )
            loaded.check()
            return loaded
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BratsInputError(path, f"not valid post-processing rules ({exc})") from exc


def remove_small_components(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """Drop tumour components (26-connected, whole-tumour mask) smaller than ``min_voxels``, with all their labels.

    The largest component always stays: a scan sent for tumour segmentation has a tumour, and a size threshold chosen
    on cases with large tumours must not erase the whole prediction of a small one.

    Written with scipy rather than MONAI's ``RemoveSmallObjects`` because that one needs scikit-image, which would
    be a large dependency for one call.
    """
    if min_voxels <= 0:
        return labels
    components, count = ndimage.label(labels > 0, structure=np.ones((3, 3, 3), bool))
    if count == 0:
        return labels
    sizes = np.bincount(components.ravel())
    small = sizes < min_voxels
    small[0] = False
    small[1 + int(np.argmax(sizes[1:]))] = False
    out = labels.copy()
    out[small[components]] = 0
    return out


def relabel_small_enhancing(labels: np.ndarray, min_voxels: int) -> np.ndarray:
    """When the whole scan holds fewer than ``min_voxels`` enhancing voxels, make them non-enhancing core."""
    enhancing = labels == ENHANCING
    count = int(np.count_nonzero(enhancing))
    if count == 0 or count >= min_voxels:
        return labels
    out = labels.copy()
    out[enhancing] = NON_ENHANCING
    return out


def relabel_unenhanced(labels: np.ndarray, image: np.ndarray, min_z: float) -> np.ndarray:
    """Predicted enhancing voxels that are not bright on T1ce become non-enhancing core.

    BraTS annotators label enhancing tumour where T1ce is hyperintense against healthy white matter; a network
    trained on ring-enhancing glioblastomas tends to paint the whole core of a low-enhancing tumour as enhancing,
    dark on T1ce as it is. Brightness is the T1ce z-score against the scan's own predicted healthy brain (brain
    voxels outside the predicted tumour), so it needs no intensity calibration across scanners.
    """
    enhancing = labels == ENHANCING
    healthy = brain_mask(image) & (labels == 0)
    if not enhancing.any() or np.count_nonzero(healthy) < 2:
        return labels
    z = healthy_z_scores(image, healthy, "t1ce")
    out = labels.copy()
    out[enhancing & (z < min_z)] = NON_ENHANCING
    return out


def healthy_z_scores(image: np.ndarray, healthy: np.ndarray, modality: str) -> np.ndarray:
    """One modality of ``image`` (C, X, Y, Z) as z-scores against its own ``healthy`` voxels (X, Y, Z)."""
    channel = np.asarray(image[MODALITIES.index(modality)], dtype=np.float32)
    reference = channel[healthy]
    return (channel - reference.mean()) / max(float(reference.std()), 1e-6)


def restrict_to_brain(labels: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Zero every label outside the brain (voxels where all channels are zero).

    BraTS and Decathlon scans are skull-stripped, so tumour outside the brain is always a false positive; without
    this, windows that hang over the background produce blobs in empty space.
    """
    return np.where(brain_mask(image), labels, 0).astype(labels.dtype)
