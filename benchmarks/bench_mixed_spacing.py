"""Training on cases of mixed voxel spacing: what resampling them to the dataset's median spacing is worth.

A dataset of synthetic phantoms (1 mm) is written; some of its training cases are rewritten as thick-slice
acquisitions (1x1x3 mm by default, each voxel the mean of the 1 mm voxels it covers, as `bench_spacing.py` makes
them). The same recipe then trains twice on that folder, with `data.resample: true` (the default: cases far from
the median spacing resampled to it) and `false` (every case as it is), and both checkpoints segment held-out cases
at 1 mm and as thick-slice copies (`predict`'s defaults, which show a scan to the network at its training spacing),
scored on each copy's own grid. Phantoms keep it to minutes on a CPU; `--data` takes real cases instead (slow).

Run from benchmarks/:
    python bench_mixed_spacing.py --json results/mixed_spacing.json
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
from _common import print_table, write_json
from bench_spacing import coarse_copy, region_dice

from brats3d.config import load_config
from brats3d.data.io import load_case
from brats3d.data.layouts import Case, Layout, discover
from brats3d.data.synthetic import write_dataset
from brats3d.inference.predict import PredictOptions, Predictor
from brats3d.training.trainer import train


def training_folder(cases: list[Case], coarse: int, block: tuple[int, ...], root: Path) -> Path:
    """A Decathlon-layout folder of ``cases``, the first ``coarse`` of them as thick-slice copies."""
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    for i, case in enumerate(cases):
        source = coarse_copy(case, block, root / "coarse" / case.case_id) if i < coarse else case
        shutil.copy(source.images[0], root / "imagesTr" / f"{case.case_id}.nii.gz")
        shutil.copy(source.label, root / "labelsTr" / f"{case.case_id}.nii.gz")
    shutil.rmtree(root / "coarse", ignore_errors=True)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="a labelled dataset to use instead of phantoms")
    parser.add_argument("--train", type=int, default=8, help="training cases")
    parser.add_argument("--coarse", type=int, default=3, help="of them rewritten as thick-slice copies")
    parser.add_argument("--test", type=int, default=4, help="held-out cases")
    parser.add_argument("--block", type=int, nargs=3, default=[1, 1, 3], help="voxels of 1 mm per coarse voxel")
    parser.add_argument("--config", default="demo")
    parser.add_argument("--set", action="append", default=[], help="more config overrides")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    block = tuple(args.block)
    tmp = Path(tempfile.mkdtemp(prefix="brats3d-mixed-spacing-"))
    if args.data:
        source = discover(args.data).labelled()
    else:
        write_dataset(tmp / "phantoms", args.train + args.test, layout=Layout.MSD, seed=args.seed)
        source = discover(tmp / "phantoms").labelled()
    cases = source[: args.train + args.test]
    train_cases, test_cases = cases[: args.train], cases[args.train :]
    folder = training_folder(train_cases, args.coarse, block, tmp / "train")
    thick = [coarse_copy(c, block, tmp / "test_coarse" / c.case_id) for c in test_cases]
    rows = []
    for resample in (True, False):
        overrides = ["data.val_fraction=0", f"seed={args.seed}", f"data.resample={str(resample).lower()}", *args.set]
        run = tmp / f"run_resample_{resample}"
        train(load_config(args.config, overrides), run, data_dir=folder, log=lambda _: None)
        predictor = Predictor(run / "best.pt", PredictOptions(pictures=False))
        for kind, held_out in (("1 mm", test_cases), ("x".join(map(str, block)) + " mm", thick)):
            per_case = [region_dice(predictor.predict(c).labels_ras, load_case(c, ras=True)) for c in held_out]
            row = {"training": "resampled" if resample else "as they are", "held-out scans": kind}
            row.update({key: float(np.mean([s[key] for s in per_case])) for key in per_case[0]})
            rows.append(row)
            print(row, flush=True)
    print(
        f"\n{args.train} training cases ({args.coarse} of them as {'x'.join(map(str, block))} mm copies), "
        f"{args.test} held out; config {args.config} {' '.join(args.set)}"
    )
    print_table(rows, list(rows[0]))
    if args.json:
        write_json(args.json, {"arguments": vars(args), "rows": rows})
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
