"""How an institution's scans differ after the recipe's standardisation, and where a model that never saw the
institution puts its false positives.

First table, per case: healthy-brain mean of each channel standardised as the recipe does (`brain_normalisation`:
zero mean, unit variance over each channel's non-zero voxels) in the inferior brain (the cerebellum and brain stem:
the lowest --inferior-mm of RAS z) and the rest. On the ten shared cases the CBICA scans are brighter in the
inferior brain on FLAIR and T2 than every other site's, and a fold that held out both CBICA cases predicted tumour
there (BENCHMARKS.md, "Folds by institution").

Second table, with --predictions (a folder of `<case>_seg.nii.gz`, e.g. bench_crossval's `--out .../predictions`):
whole-tumour false positives per case, how much lies over 10 mm from the true tumour, its largest connected piece,
where it sits (RAS z above the brain's lowest voxel) and the labels it was given.

Run from benchmarks/:
    python bench_site_shift.py
    python bench_site_shift.py --normalisation flattened
    python bench_site_shift.py --predictions /tmp/brats3d-crossval-bysite/2520patches/ours/predictions
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import REAL_DATA, print_table
from scipy import ndimage

from brats3d.data.brain import brain_mask
from brats3d.data.io import load_image, load_label, to_ras, voxel_spacing
from brats3d.data.labels import EDEMA, ENHANCING, NON_ENHANCING
from brats3d.data.layouts import MODALITIES, discover, site_of
from brats3d.transforms.intensity import NORMALISATIONS, brain_normalisation

FAR_MM = 10.0  # a false positive this far from the true tumour is not a boundary disagreement


def case_in_ras(case, segmentation: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple]:
    """Image, canonical truth and (when given) prediction in RAS voxel order, so the third axis runs upwards."""
    image, ref = load_image(case.images)
    truth = load_label(case.label, case.convention, ref, image.shape[1:])
    predicted = None if segmentation is None else load_label(segmentation, case.convention, ref, image.shape[1:])
    ras_image, ras_truth, affine, _ = to_ras(image, truth, ref.affine)
    if predicted is not None:
        predicted = to_ras(image[:1], predicted, ref.affine)[1]
    return ras_image, ras_truth, predicted, voxel_spacing(affine)


def lowest_slice(brain: np.ndarray) -> int:
    """The RAS z index of the brain's lowest voxel."""
    return int(np.nonzero(brain.any(axis=(0, 1)))[0][0])


def intensity_row(
    case_id: str, image: np.ndarray, truth: np.ndarray, brain: np.ndarray, spacing, inferior_mm, normalisation: str
) -> dict:
    z = np.asarray(brain_normalisation("image", normalisation)({"image": image})["image"])  # as a recipe would
    inferior = np.zeros_like(brain)
    inferior[:, :, : lowest_slice(brain) + round(inferior_mm / spacing[2])] = True
    healthy = brain & (truth == 0)
    row = {"case": case_id, "site": site_of(case_id) or "-"}
    for c, name in enumerate(MODALITIES):
        row[f"{name} inferior"] = round(float(z[c][healthy & inferior].mean()), 2)
        row[f"{name} rest"] = round(float(z[c][healthy & ~inferior].mean()), 2)
    return row


def false_positive_row(case_id: str, truth: np.ndarray, predicted: np.ndarray, brain: np.ndarray, spacing) -> dict:
    tumour = truth > 0
    voxel_ml = float(np.prod(spacing)) / 1000
    false_positive = (predicted > 0) & ~tumour
    far = false_positive & (ndimage.distance_transform_edt(~tumour, sampling=spacing) > FAR_MM)
    pieces, count = ndimage.label(far)
    largest = np.bincount(pieces.ravel())[1:].max() if count else 0
    height = (np.nonzero(far)[2] - lowest_slice(brain)) * spacing[2]
    return {
        "case": case_id,
        "FP ml": round(false_positive.sum() * voxel_ml, 1),
        f"FP >{FAR_MM:g} mm ml": round(far.sum() * voxel_ml, 1),
        "largest piece ml": round(largest * voxel_ml, 1),
        "its height above brain bottom, median mm": round(float(np.median(height))) if far.any() else "-",
        **{
            f"as {name} ml": round(float((predicted[far] == label).sum() * voxel_ml), 1)
            for name, label in (("edema", EDEMA), ("core", NON_ENHANCING), ("enhancing", ENHANCING))
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REAL_DATA))
    parser.add_argument("--inferior-mm", type=float, default=35.0, help="height of the inferior brain, from its bottom")
    parser.add_argument("--predictions", help="folder of <case>_seg.nii.gz to locate false positives in")
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default="brain", help="data.normalisation to apply")
    args = parser.parse_args()
    intensity, positives = [], []
    for case in discover(args.data).labelled():
        seg = Path(args.predictions) / f"{case.case_id}_seg.nii.gz" if args.predictions else None
        image, truth, predicted, spacing = case_in_ras(case, seg if seg and seg.is_file() else None)
        brain = brain_mask(image)
        intensity.append(
            intensity_row(case.case_id, image, truth, brain, spacing, args.inferior_mm, args.normalisation)
        )
        if predicted is not None:
            positives.append(false_positive_row(case.case_id, truth, predicted, brain, spacing))
    print(f"healthy-brain mean of the channels ({args.normalisation}), inferior {args.inferior_mm:g} mm and the rest")
    print_table(intensity, list(intensity[0]))
    if positives:
        print(f"\nwhole-tumour false positives of {args.predictions}")
        print_table(positives, list(positives[0]))


if __name__ == "__main__":
    main()
