"""Three-plane GIFs and a PNG montage of a scan with its tumour labels.

Speed matters here: a 240x240x155 case gives ~550 GIF frames, and a user waits for the segmentation, not for the
pictures. So frames are not drawn one by one with matplotlib, nor handed to the GIF writer as RGB (which quantises
every frame): the whole volume is mapped once, with numpy, to indices into one fixed 256-colour palette (a grey
ramp, the grey ramp blended with each label colour, outline and text colours), and the frames are written as
palette images.

Input volumes are RAS-ordered (as the pipeline holds them); slices are shown in the radiological convention
(patient's right on the viewer's left, anterior / superior up).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from brats3d.data.labels import EDEMA, ENHANCING, NON_ENHANCING, REGION_LABELS
from brats3d.files import atomic_path

PLANES = ("axial", "coronal", "sagittal")
AXIS_OF_PLANE = {"sagittal": 0, "coronal": 1, "axial": 2}
COLOURS = {EDEMA: (40, 200, 60), NON_ENHANCING: (230, 40, 40), ENHANCING: (250, 220, 30)}
LEGEND = [(EDEMA, "edema"), (NON_ENHANCING, "necrotic/non-enh."), (ENHANCING, "enhancing")]
PRED_OUTLINE, TRUE_OUTLINE = (0, 230, 255), (255, 0, 200)
ALPHA = 0.45

# Palette layout: 0-127 grey ramp; 128-223 grey (32 levels) blended with label 1, 2, 3; then fixed colours.
GREY_LEVELS, BLEND_LEVELS = 128, 32
TRUE_INDEX, PRED_INDEX, TEXT_INDEX, DIM_TEXT_INDEX, BLACK_INDEX = 224, 225, 226, 227, 228
SWATCH_INDEX = {EDEMA: 229, NON_ENHANCING: 230, ENHANCING: 231}


def _palette() -> np.ndarray:
    pal = np.zeros((256, 3), np.float32)
    pal[:GREY_LEVELS] = (np.arange(GREY_LEVELS) * 2 + 1)[:, None]
    grey = (np.arange(BLEND_LEVELS) * 8 + 4)[:, None]
    for label, colour in COLOURS.items():
        start = GREY_LEVELS + BLEND_LEVELS * (label - 1)
        pal[start : start + BLEND_LEVELS] = (1 - ALPHA) * grey + ALPHA * np.array(colour)
        pal[SWATCH_INDEX[label]] = colour
    pal[TRUE_INDEX], pal[PRED_INDEX] = TRUE_OUTLINE, PRED_OUTLINE
    pal[TEXT_INDEX], pal[DIM_TEXT_INDEX], pal[BLACK_INDEX] = (230, 230, 230), (150, 150, 150), (0, 0, 0)
    return np.round(pal).astype(np.uint8)


PALETTE = _palette()


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
    structure = np.take(np.ones((3, 3, 3), bool), [1], axis=axis)  # erode within each slice only
    edges = np.zeros(labels.shape, bool)
    for region in REGION_LABELS:
        mask = np.isin(labels, region)
        if mask.any():
            edges |= mask & ~ndimage.binary_erosion(mask, structure=structure)
    return edges


def _compose(gray: np.ndarray, labels: np.ndarray | None, truth: np.ndarray | None, axis: int) -> np.ndarray:
    """Palette indices: labels filled over the grey scan, or (with a ground truth) both outlined in two colours."""
    index = (gray >> 1).astype(np.uint8)
    if truth is None and labels is not None:
        painted = labels > 0
        index[painted] = GREY_LEVELS + BLEND_LEVELS * (labels[painted].astype(np.int32) - 1) + (gray[painted] >> 3)
    elif truth is not None:
        index[_outline(truth, axis)] = TRUE_INDEX
        if labels is not None:
            index[_outline(labels, axis)] = PRED_INDEX
    return index


def _frames(volume: np.ndarray, plane: str) -> np.ndarray:
    """(N, H, W) slices along the plane's axis, radiological orientation."""
    if plane == "axial":  # rows: anterior at top; columns: patient's right on the left
        return np.ascontiguousarray(np.transpose(volume[::-1, ::-1, :], (2, 1, 0)))
    if plane == "coronal":  # rows: superior at top
        return np.ascontiguousarray(np.transpose(volume[::-1, :, ::-1], (1, 2, 0)))
    return np.ascontiguousarray(np.transpose(volume[:, ::-1, ::-1], (0, 2, 1)))  # sagittal: anterior on the left


def _upscale(frames: np.ndarray) -> np.ndarray:
    factor = max(1, int(np.ceil(192 / max(frames.shape[1:3]))))
    return frames.repeat(factor, axis=1).repeat(factor, axis=2) if factor > 1 else frames


def _legend(width: int, with_truth: bool) -> np.ndarray:
    entries = (
        [(PRED_INDEX, "prediction"), (TRUE_INDEX, "ground truth")]
        if with_truth
        else [(SWATCH_INDEX[label], text) for label, text in LEGEND]
    )
    img = Image.new("P", (width, 14 * len(entries) + 4), BLACK_INDEX)
    draw = ImageDraw.Draw(img)
    for i, (colour, text) in enumerate(entries):
        y = 2 + 14 * i
        draw.rectangle((4, y + 2, 14, y + 11), fill=colour)
        draw.text((20, y), text, fill=TEXT_INDEX)
    return np.asarray(img)


def _gif(path: Path, frames: np.ndarray, with_truth: bool, plane: str, frame_ms: int) -> Path:
    """Frames with the legend underneath and the slice number; the number also keeps empty slices distinct, since
    GIF writers merge identical consecutive frames and the frame count must equal the slice count."""
    legend = _legend(frames.shape[2], with_truth)
    images = []
    for i, frame in enumerate(frames):
        img = Image.fromarray(np.concatenate([frame, legend], axis=0), mode="P")
        ImageDraw.Draw(img).text((frame.shape[1] - 70, img.height - 14), f"{plane[:3]} {i}", fill=DIM_TEXT_INDEX)
        img.putpalette(PALETTE.ravel().tolist())
        images.append(img)
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
    return path


def montage(axial_frames: np.ndarray, tumour_per_slice: np.ndarray, count: int = 12, columns: int = 4) -> np.ndarray:
    """Palette-index grid of axial slices spread evenly over the tumour's extent (the whole scan when there is
    none), each labelled with its index."""
    with_tumour = np.flatnonzero(tumour_per_slice > 0)
    pool = with_tumour if with_tumour.size else np.arange(len(tumour_per_slice))
    chosen = np.unique(pool[np.linspace(0, pool.size - 1, min(count, pool.size)).round().astype(int)])
    h, w = axial_frames.shape[1:3]
    rows = int(np.ceil(len(chosen) / columns))
    grid = np.full((rows * h, columns * w), BLACK_INDEX, np.uint8)
    for i, z in enumerate(chosen):
        tile = Image.fromarray(axial_frames[z], mode="P")
        ImageDraw.Draw(tile).text((3, 2), f"z={z}", fill=TEXT_INDEX)
        r, c = divmod(i, columns)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = np.asarray(tile)
    return grid


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
        Image.fromarray(PALETTE[grid]).save(tmp, format="PNG")
    return path


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
    written, axial = [], None
    for plane in PLANES:
        frames = _upscale(_frames(_compose(gray, labels, truth, AXIS_OF_PLANE[plane]), plane))
        axial = frames if plane == "axial" else axial
        written.append(_gif(out_dir / f"{case_id}_{plane}.gif", frames, truth is not None, plane, frame_ms))
    written.append(write_montage(out_dir / f"{case_id}_montage.png", gray, labels, truth, axial))
    return written
