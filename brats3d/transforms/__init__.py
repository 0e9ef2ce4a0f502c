"""MONAI dictionary transforms: load a case, normalise it, sample tumour-biased patches, augment."""

from brats3d.transforms.intensity import NormalizeFlattenedd, NormalizeSlicesd
from brats3d.transforms.loading import LoadCased
from brats3d.transforms.pipeline import (
    Augmentation,
    build_train_transforms,
    build_val_transforms,
)
from brats3d.transforms.sampling import FindTumourPatchesd, RandTumourPatchd, tumour_patch_counts
from brats3d.transforms.targets import LabelToTargetd

__all__ = [
    "Augmentation",
    "FindTumourPatchesd",
    "LabelToTargetd",
    "LoadCased",
    "NormalizeFlattenedd",
    "NormalizeSlicesd",
    "RandTumourPatchd",
    "build_train_transforms",
    "build_val_transforms",
    "tumour_patch_counts",
]
