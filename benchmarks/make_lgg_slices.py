"""Cut 3D BraTS cases into a 2D dataset in the Kaggle LGG layout, so that 2D training is measured on real scans.

Per case and axial slice within the brain: a 256x256 three-channel ``.tif`` (T1 / FLAIR / T1ce, the LGG set's
pre-contrast / FLAIR / post-contrast order), each channel scaled to 0-255 over the case's brain (0.5th to 99.5th
percentile, as the LGG images are windowed per patient), and the whole-tumour mask as 0/255.

    python benchmarks/make_lgg_slices.py --out /tmp/brats-lgg        # from ../shared/data/brats18-sample
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from _common import REAL_DATA

from brats3d.data.io import load_case
from brats3d.data.layouts import MODALITIES, discover
from brats3d.data.slices import write_mask
from brats3d.files import atomic_path

CHANNELS = ("t1", "flair", "t1ce")
SIZE = 256
MIN_BRAIN_SHARE = 0.05  # a slice is "within the brain" when at least this share of its pixels is brain


def _to_uint8(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(volume[brain], (0.5, 99.5))
    return (np.clip((volume - lo) / max(hi - lo, 1e-6), 0, 1) * 255 * brain).astype(np.uint8)


def _square(plane: np.ndarray) -> np.ndarray:
    """Pad (or centre-crop) the first two axes to SIZE x SIZE."""
    out = np.zeros((SIZE, SIZE, *plane.shape[2:]), dtype=plane.dtype)
    src = [slice(max(0, (s - SIZE) // 2), max(0, (s - SIZE) // 2) + min(s, SIZE)) for s in plane.shape[:2]]
    dst = [slice(max(0, (SIZE - s) // 2), max(0, (SIZE - s) // 2) + min(s, SIZE)) for s in plane.shape[:2]]
    out[dst[0], dst[1]] = plane[src[0], src[1]]
    return out


def cut_case(case, out: Path) -> int:
    """Write one case's slices; returns how many."""
    import imageio.v3 as iio

    loaded = load_case(case, ras=True)
    brain = loaded.image.any(axis=0)
    channels = np.stack([_to_uint8(loaded.image[MODALITIES.index(m)], brain) for m in CHANNELS], axis=-1)
    tumour = loaded.label > 0
    written = 0
    for z in range(brain.shape[2]):
        if brain[:, :, z].mean() < MIN_BRAIN_SHARE:
            continue
        # RAS (x right-to-left on screen, y anterior up): rotate so the image reads like a radiological axial slice
        image = _square(np.rot90(channels[:, :, z]))
        mask = _square(np.rot90(tumour[:, :, z]))
        written += 1
        name = f"{case.case_id}_{written}"
        with atomic_path(out / case.case_id / f"{name}.tif") as tmp:
            iio.imwrite(tmp, image, extension=".tif")
        write_mask(out / case.case_id / f"{name}_mask.tif", mask.astype(np.uint8), [0, 255])
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(REAL_DATA), help="a 3D BraTS dataset (default: the shared ten cases)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = Path(args.out)
    for case in discover(args.data).labelled():
        print(f"{case.case_id}: {cut_case(case, out)} slices")


if __name__ == "__main__":
    main()
