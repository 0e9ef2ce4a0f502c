"""Three-plane GIFs and a PNG montage of a scan with its tumour labels.

Frames are composed with numpy on whole volumes (one blend for all slices) rather than drawn by matplotlib slice by
slice: a 240x240x155 case gives ~550 frames, and a user waits for the segmentation, not for the pictures.
Input volumes are RAS-ordered (as the pipeline holds them); slices are shown in the radiological convention
(patient's right on the viewer's left, anterior / superior up).
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from brats3d.data.labels import EDEMA, ENHANCING, NON_ENHANCING, REGION_LABELS
from brats3d.files import atomic_path

PLANES = ("axial", "coronal", "sagittal")
AXIS_OF_PLANE = {"sagittal": 0, "coronal": 1, "axial": 2}
COLOURS = {EDEMA: (40, 200, 60), NON_ENHANCING: (230, 40, 40), ENHANCING: (250, 220, 30)}
LEGEND = [(COLOURS[EDEMA], "edema"), (COLOURS[NON_ENHANCING], "necrotic/non-enh."), (COLOURS[ENHANCING], "enhancing")]
PRED_OUTLINE, TRUE_OUTLINE = (0, 230, 255), (255, 0, 200)
ALPHA = 0.45


def _window(image: np.ndarray) -> np.ndarray:
    """Scale to uint8 between the 1st and 99.5th percentile of the brain voxels."""
    brain = image[image != 0]
    if brain.size == 0:
        return np.zeros(image.shape, np.uint8)
    lo, hi = np.percentile(brain, (1, 99.5))
    scaled = np.clip((image - lo) / max(hi - lo, 1e-6), 0, 1) * 255
    return np.where(image != 0, scaled, 0).astype(np.uint8)


def _outline(labels: np.ndarray, axis: int) -> np.ndarray:
    """In-plane boundaries of the three nested regions (WT, TC, ET), for slices taken along ``axis``."""
    structure = np.ones((3, 3, 3), bool)
    structure = np.take(structure, [1], axis=axis)  # 2D cross-section: erode within each slice only
    edges = np.zeros(labels.shape, bool)
    for region in REGION_LABELS:
        mask = np.isin(labels, region)
        if mask.any():
            edges |= mask & ~ndimage.binary_erosion(mask, structure=structure)
    return edges


def _compose(gray: np.ndarray, labels: np.ndarray | None, truth: np.ndarray | None, axis: int) -> np.ndarray:
    """RGB volume: labels filled (or, with a ground truth, both outlined in two colours) over the grey scan."""
    rgb = np.repeat(gray[..., None], 3, axis=-1).astype(np.float32)
    if truth is None and labels is not None:
        lut = np.zeros((256, 3), np.float32)
        for value, colour in COLOURS.items():
            lut[value] = colour
        painted = labels > 0
        rgb[painted] = (1 - ALPHA) * rgb[painted] + ALPHA * lut[labels[painted]]
    elif truth is not None:
        rgb[_outline(truth, axis)] = TRUE_OUTLINE
        if labels is not None:
            rgb[_outline(labels, axis)] = PRED_OUTLINE
    return rgb.astype(np.uint8)


def _frames(rgb: np.ndarray, plane: str) -> np.ndarray:
    """(N, H, W, 3) slices along the plane's axis, radiological orientation."""
    if plane == "axial":  # rows: anterior at top; columns: patient's right on the left
        return np.ascontiguousarray(np.transpose(rgb[::-1, ::-1, :], (2, 1, 0, 3)))
    if plane == "coronal":  # rows: superior at top
        return np.ascontiguousarray(np.transpose(rgb[::-1, :, ::-1], (1, 2, 0, 3)))
    return np.ascontiguousarray(np.transpose(rgb[:, ::-1, ::-1], (0, 2, 1, 3)))  # sagittal: anterior on the left


def _legend(width: int, with_truth: bool) -> np.ndarray:
    entries = [(PRED_OUTLINE, "prediction"), (TRUE_OUTLINE, "ground truth")] if with_truth else LEGEND
    height = 14 * len(entries) + 4
    img = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    for i, (colour, text) in enumerate(entries):
        y = 2 + 14 * i
        draw.rectangle((4, y + 2, 14, y + 11), fill=tuple(colour))
        draw.text((20, y), text, fill=(230, 230, 230))
    return np.asarray(img)


def _upscale(frames: np.ndarray) -> np.ndarray:
    factor = max(1, int(np.ceil(192 / max(frames.shape[1:3]))))
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def _with_legend(frames: np.ndarray, with_truth: bool, plane: str) -> np.ndarray:
    """Legend under every frame, with the slice number: it also keeps empty slices distinct, since GIF writers merge
    identical consecutive frames and the frame count must equal the slice count."""
    legend = _legend(frames.shape[2], with_truth)
    out = np.concatenate([frames, np.broadcast_to(legend, (frames.shape[0], *legend.shape))], axis=1)
    for i, frame in enumerate(out):
        tag = Image.fromarray(frame)
        ImageDraw.Draw(tag).text((frame.shape[1] - 70, frame.shape[0] - 14), f"{plane[:3]} {i}", fill=(160, 160, 160))
        out[i] = np.asarray(tag)
    return out


def montage(rgb_axial: np.ndarray, tumour_per_slice: np.ndarray, count: int = 12, columns: int = 4) -> np.ndarray:
    """A grid of axial slices spread evenly over the tumour's extent (the whole scan when there is none),
    each labelled with its index."""
    with_tumour = np.flatnonzero(tumour_per_slice > 0)
    pool = with_tumour if with_tumour.size else np.arange(len(tumour_per_slice))
    chosen = np.unique(pool[np.linspace(0, pool.size - 1, min(count, pool.size)).round().astype(int)])
    tiles = []
    for z in chosen:
        tile = Image.fromarray(rgb_axial[z])
        ImageDraw.Draw(tile).text((3, 2), f"z={z}", fill=(255, 255, 255))
        tiles.append(np.asarray(tile))
    rows = int(np.ceil(len(tiles) / columns))
    h, w = tiles[0].shape[:2]
    grid = np.zeros((rows * h, columns * w, 3), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = tile
    return grid


def write_case_pictures(
    out_dir: str | Path,
    case_id: str,
    image: np.ndarray,
    labels: np.ndarray | None,
    truth: np.ndarray | None = None,
    frame_ms: int = 80,
) -> list[Path]:
    """``<case>_axial/_coronal/_sagittal.gif`` (one frame per slice) and ``<case>_montage.png``.

    ``image`` is one RAS-ordered modality (X, Y, Z); ``labels`` and ``truth`` canonical labels on the same grid.
    """
    out_dir = Path(out_dir)
    gray = _window(np.asarray(image, np.float32))
    written = []
    axial_rgb = None
    for plane in PLANES:
        axis = AXIS_OF_PLANE[plane]
        frames = _upscale(_frames(_compose(gray, labels, truth, axis), plane))
        if plane == "axial":
            axial_rgb = frames
        path = out_dir / f"{case_id}_{plane}.gif"
        with atomic_path(path) as tmp:
            iio.imwrite(
                tmp, _with_legend(frames, truth is not None, plane), extension=".gif", duration=frame_ms, loop=0
            )
        written.append(path)
    written.append(write_montage(out_dir / f"{case_id}_montage.png", gray, labels, truth, axial_rgb))
    return written


def write_montage(
    path: str | Path,
    image: np.ndarray,
    labels: np.ndarray | None,
    truth: np.ndarray | None = None,
    axial_frames: np.ndarray | None = None,
) -> Path:
    """PNG grid of axial slices across the tumour; ``axial_frames`` reuses frames already composed for a GIF."""
    if axial_frames is None:
        gray = image if image.dtype == np.uint8 else _window(np.asarray(image, np.float32))
        axial_frames = _upscale(_frames(_compose(gray, labels, truth, AXIS_OF_PLANE["axial"]), "axial"))
    per_slice = np.zeros(image.shape[2])
    for volume in (labels, truth):
        if volume is not None:
            per_slice = per_slice + (volume > 0).sum(axis=(0, 1))
    grid = montage(axial_frames, per_slice)
    grid = np.concatenate([grid, _legend(grid.shape[1], truth is not None)], axis=0)
    path = Path(path)
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, grid, extension=".png")
    return path
