"""What `predict`'s resampling to the training spacing is worth on scans acquired at another resolution.

Each real case is rewritten as a coarser acquisition would store it: 2 mm isotropic voxels and 1x1x3 mm thick
slices, each voxel the mean of the 1 mm voxels it covers (a region counts where it fills at least half of them).
`--acquisitions` can add a 0.5 mm isotropic copy instead, interpolated from the 1 mm scan as training resamples a
case (trilinear image, nearest labels): it lacks a real fine scan's detail, but it has its 8x the voxels, so it
measures the time and memory of such a scan and whether resampling brings it back. A checkpoint trained on 1 mm
scans then segments every copy twice, as it is and resampled to its training spacing (`--resample`, the default,
and `--no-resample`), and both are scored against the copy's reference on the copy's grid, with the seconds each
prediction took and the process's peak memory. Use a checkpoint that never saw the cases (a cross-validation
fold's model and the cases it held out).

Run from benchmarks/:
    python bench_spacing.py --checkpoint runs/cv/fold_0/last.pt --cases Brats18_TCIA01_201_1 Brats18_TCIA01_378_1
    python bench_spacing.py ... --acquisitions "0.5 mm isotropic"
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from _common import REAL_DATA, print_table, write_json

from brats3d.data.io import LoadedCase, load_case
from brats3d.data.labels import REGION_NAMES, REGION_SHORT, labels_to_regions
from brats3d.data.layouts import Case, Layout, discover
from brats3d.evaluation.metrics import score_case
from brats3d.inference.predict import PredictOptions, Predictor
from brats3d.transforms.resampling import ResampleToSpacingd

COARSER = {"2 mm isotropic": (2, 2, 2), "1x1x3 mm slices": (1, 1, 3)}  # 1 mm voxels per coarse voxel
FINER = {"0.5 mm isotropic": 2}  # fine voxels per 1 mm, each axis


def block_mean(volume: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """Mean over non-overlapping blocks (the edge that does not fill a block is dropped)."""
    shape = [n // b for n, b in zip(volume.shape, block)]
    trimmed = volume[tuple(slice(0, n * b) for n, b in zip(shape, block))].astype(np.float32)
    return trimmed.reshape(shape[0], block[0], shape[1], block[1], shape[2], block[2]).mean(axis=(1, 3, 5))


def coarse_labels(label: np.ndarray, block: tuple[int, ...]) -> np.ndarray:
    """Canonical (Decathlon-numbered) labels of the coarse grid: each nested region where it fills half a block."""
    wt, tc, et = (block_mean(r, block) >= 0.5 for r in labels_to_regions(label))
    out = np.zeros(wt.shape, np.uint8)
    out[wt] = 1  # oedema
    out[tc] = 2  # necrotic / non-enhancing core
    out[et] = 3  # enhancing
    return out


def coarse_copy(case: Case, block: tuple[int, ...], folder: Path) -> Case:
    """The case as a 4D Decathlon file and label on the coarse grid; the affine keeps it in place in the world."""
    folder.mkdir(parents=True)
    loaded = load_case(case)  # file voxel order, canonical labels
    affine = loaded.affine.copy()
    affine[:3, :3] = loaded.affine[:3, :3] @ np.diag(block)
    affine[:3, 3] = (loaded.affine @ np.array([*(np.array(block) - 1) / 2, 1.0]))[:3]  # centre of the first block
    image = np.stack([block_mean(channel, block) for channel in loaded.image], axis=-1)
    image_path, label_path = folder / f"{case.case_id}.nii.gz", folder / f"{case.case_id}_label.nii.gz"
    nib.save(nib.Nifti1Image(image.astype(np.float32), affine), str(image_path))
    nib.save(nib.Nifti1Image(coarse_labels(loaded.label, block), affine), str(label_path))
    return Case(case.case_id, Layout.MSD, (image_path,), label_path)


def fine_copy(case: Case, factor: int, folder: Path) -> Case:
    """The case on a grid ``factor`` times finer per axis, in the same place: resampled as training resamples a case
    (``ResampleToSpacingd``: trilinear image, nearest labels, zero background kept)."""
    folder.mkdir(parents=True)
    loaded = load_case(case)  # file voxel order, canonical labels
    fine = [s / factor for s in loaded.spacing]
    item = {"image": loaded.image, "label": loaded.label[None], "affine": loaded.affine, "spacing": loaded.spacing}
    item = ResampleToSpacingd(fine)(item)
    image_path, label_path = folder / f"{case.case_id}.nii.gz", folder / f"{case.case_id}_label.nii.gz"
    nib.save(nib.Nifti1Image(np.moveaxis(item["image"], 0, -1).astype(np.float32), item["affine"]), str(image_path))
    nib.save(nib.Nifti1Image(item["label"][0].astype(np.uint8), item["affine"]), str(label_path))
    return Case(case.case_id, Layout.MSD, (image_path,), label_path)


def region_dice(labels_ras: np.ndarray, truth: LoadedCase) -> dict[str, float]:
    """Dice per BraTS region of a prediction (RAS grid) against the truth of its copy, keyed "WT Dice" and so on."""
    scores = score_case(labels_ras, truth.label, truth.spacing, REGION_NAMES, False)
    return {f"{REGION_SHORT[r]} Dice": scores[r]["dice"] for r in REGION_NAMES}


def make_copy(case: Case, acquisition: str, folder: Path) -> Case:
    if acquisition in FINER:
        return fine_copy(case, FINER[acquisition], folder)
    return coarse_copy(case, COARSER[acquisition], folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint trained on 1 mm scans")
    parser.add_argument("--cases", nargs="+", required=True, help="case ids the checkpoint never saw")
    parser.add_argument("--data", default=str(REAL_DATA))
    parser.add_argument("--tta", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--acquisitions", nargs="+", choices=[*COARSER, *FINER], default=list(COARSER))
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    cases = [c for c in discover(args.data).labelled() if c.case_id in args.cases]
    predictors = {
        flag: Predictor(args.checkpoint, PredictOptions(pictures=False, tta=args.tta, resample=flag))
        for flag in (True, False)
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="brats3d-spacing-") as tmp:
        for name in args.acquisitions:
            for case in cases:
                copy = make_copy(case, name, Path(tmp) / name.replace(" ", "_") / case.case_id)
                truth = load_case(copy, ras=True)
                for flag, predictor in predictors.items():
                    start = time.perf_counter()
                    prediction = predictor.predict(copy)
                    seconds = time.perf_counter() - start
                    row = {"acquisition": name, "case": case.case_id, "resample": flag, "seconds": round(seconds, 1)}
                    row.update({f"{step} s": round(prediction.timings[step], 1) for step in ("load", "infer")})
                    row.update(region_dice(prediction.labels_ras, truth))
                    rows.append(row)
                    print(row, flush=True)
    columns = [
        "acquisition",
        "case",
        "resample",
        "seconds",
        "load s",
        "infer s",
        *(f"{REGION_SHORT[r]} Dice" for r in REGION_NAMES),
    ]
    print_table(rows, columns)
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak memory of this process: {peak_gb:.1f} GB")
    for name in args.acquisitions:
        for flag in (True, False):
            mine = [r for r in rows if r["acquisition"] == name and r["resample"] == flag]
            means = " / ".join(f"{np.mean([r[f'{REGION_SHORT[n]} Dice'] for r in mine]):.3f}" for n in REGION_NAMES)
            print(f"{name}, resample {'on ' if flag else 'off'}: mean Dice WT / TC / ET {means}")
    if args.json:
        write_json(args.json, {"checkpoint": args.checkpoint, "tta": args.tta, "rows": rows, "peak_gb": peak_gb})


if __name__ == "__main__":
    main()
