"""Data pipeline: patches per second delivered to the model, brats3d vs a MONAI-tutorial-style pipeline.

Reference (as in MONAI's BraTS tutorial): ``Dataset`` without cache, ``LoadImaged`` of the NIfTI files for every
sample, random 160x160x16 crop, channel-wise normalisation over non-zero voxels, three random flips, random
intensity scale and shift. Ours: the training chain of ``brats3d train`` (cached load/crop/normalise/patch index,
then tumour-biased patches and the same augmentations). Both run in this process (no workers), one after the other.
Run: python benchmarks/bench_data_pipeline.py
"""

from __future__ import annotations

import argparse
import time

from _common import RESULTS, benchmark_cases, machine, print_table, write_json
from monai.data import CacheDataset, DataLoader, Dataset
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    LoadImaged,
    NormalizeIntensityd,
    RandFlipd,
    RandScaleIntensityd,
    RandShiftIntensityd,
    RandSpatialCropd,
)

from brats3d.config import load_config
from brats3d.training.data import train_transforms

PATCH = (160, 160, 16)


def tutorial_transforms() -> Compose:
    keys = ["image", "label"]
    return Compose(
        [
            LoadImaged(keys=keys, image_only=True),
            EnsureChannelFirstd(keys=keys),
            RandSpatialCropd(keys=keys, roi_size=PATCH, random_size=False),
            NormalizeIntensityd(keys="image", nonzero=True, channel_wise=True),
            *[RandFlipd(keys=keys, prob=0.5, spatial_axis=a) for a in range(3)],
            RandScaleIntensityd(keys="image", factors=0.1, prob=1.0),
            RandShiftIntensityd(keys="image", offsets=0.1, prob=1.0),
        ]
    )


def patches_per_second(loader: DataLoader, batches: int) -> tuple[float, int]:
    n, t0, done = 0, time.perf_counter(), 0
    while done < batches:
        for batch in loader:
            n += batch["image"].shape[0]
            done += 1
            if done >= batches:
                break
    return n / (time.perf_counter() - t0), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--json", default=str(RESULTS / "data_pipeline.json"))
    args = parser.parse_args()
    cases, source = benchmark_cases(args.cases)

    tutorial_items = [{"image": [str(p) for p in c.images], "label": str(c.label)} for c in cases]
    tutorial = DataLoader(Dataset(tutorial_items, tutorial_transforms()), batch_size=2, shuffle=True, num_workers=0)
    ref_rate, ref_n = patches_per_second(tutorial, args.batches)

    config = load_config(None, ["data.patches_per_case=2", "train.batch_size=4"])
    t0 = time.perf_counter()
    dataset = CacheDataset([c.to_dict() for c in cases], train_transforms(config), progress=False, copy_cache=False)
    fill = time.perf_counter() - t0
    ours = DataLoader(dataset, batch_size=2, shuffle=True, num_workers=0)
    our_rate, our_n = patches_per_second(ours, args.batches)

    rows = [
        {
            "pipeline": "MONAI-tutorial style (Dataset, LoadImaged each sample)",
            "patches": ref_n,
            "patches_per_s": ref_rate,
            "cache_fill_s": 0.0,
        },
        {
            "pipeline": "brats3d (CacheDataset + tumour-biased sampler)",
            "patches": our_n,
            "patches_per_s": our_rate,
            "cache_fill_s": fill,
        },
    ]
    print(f"data: {source}, {len(cases)} cases; patch {PATCH}; one process, no workers")
    print_table(rows, list(rows[0]))
    print(f"\nratio (ours / tutorial): {our_rate / ref_rate:.1f}x")
    write_json(args.json, {"machine": machine(), "source": source, "rows": rows, "ratio": our_rate / ref_rate})


if __name__ == "__main__":
    main()
