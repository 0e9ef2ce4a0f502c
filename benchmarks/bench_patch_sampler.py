"""Tumour-biased patch sampling: our summed-area sampler vs naive rejection sampling (as Keras BraTS notebooks do).

Both enforce "at most 95 % background" on 160x160x16 patches. The naive sampler draws random crops of a one-hot
label (as those notebooks do) until one passes, up to 1000 tries. Run: python benchmarks/bench_patch_sampler.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import RESULTS, benchmark_cases, machine, print_table, write_json

from brats3d.data.io import load_case
from brats3d.transforms.sampling import FindTumourPatchesd, RandTumourPatchd


def naive_rejection(label: np.ndarray, patch, min_fraction: float, rng: np.random.Generator, tries: int = 1000):
    """Random crops of the one-hot label until the background share is at most 1 - min_fraction."""
    one_hot = np.eye(4, dtype=np.float32)[label]  # (X, Y, Z, 4), as those notebooks build it
    for attempt in range(1, tries + 1):
        start = [rng.integers(0, s - p + 1) for s, p in zip(label.shape, patch)]
        crop = one_hot[tuple(slice(s, s + p) for s, p in zip(start, patch))]
        if crop[..., 0].mean() <= 1 - min_fraction:
            return start, attempt
    return None, tries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=3)
    parser.add_argument("--draws", type=int, default=200, help="patches drawn per case by each sampler")
    parser.add_argument("--json", default=str(RESULTS / "patch_sampler.json"))
    args = parser.parse_args()
    patch, min_fraction = (160, 160, 16), 0.05
    cases, source = benchmark_cases(args.cases)
    rows = []
    for case in cases:
        label = load_case(case).label
        rng = np.random.default_rng(0)
        t0 = time.perf_counter()
        accepted, attempts = 0, 0
        for _ in range(args.draws):
            start, n = naive_rejection(label, patch, min_fraction, rng)
            accepted += start is not None
            attempts += n
        naive_s = (time.perf_counter() - t0) / args.draws
        data = {"image": np.zeros((4, *label.shape), np.float32), "label": label[None]}
        t0 = time.perf_counter()
        data = FindTumourPatchesd(patch, min_fraction)(data)
        index_s = time.perf_counter() - t0
        sampler = RandTumourPatchd(["image", "label"], patch, num_samples=args.draws)
        sampler.set_random_state(0)
        t0 = time.perf_counter()
        patches = sampler(data)
        ours_s = (time.perf_counter() - t0) / args.draws
        fractions = [float((p["label"] > 0).mean()) for p in patches]
        rows.append(
            {
                "case": case.case_id,
                "naive_ms_per_patch": 1000 * naive_s,
                "naive_tries_per_patch": attempts / args.draws,
                "naive_failed": args.draws - accepted,
                "ours_index_ms_once": 1000 * index_s,
                "ours_ms_per_patch": 1000 * ours_s,
                "ours_min_tumour_share": min(fractions),
                "speedup": naive_s / ours_s,
            }
        )
    print(f"data: {source}; patch {patch}, min tumour share {min_fraction}, {args.draws} draws per case")
    print_table(rows, list(rows[0]))
    write_json(args.json, {"machine": machine(), "source": source, "rows": rows})


if __name__ == "__main__":
    main()
