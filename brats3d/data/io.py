"""Read and validate NIfTI cases; write label maps back in the input's own grid.

nibabel is the default reader because writing outputs needs the input's header (qform/sform codes) verbatim;
ITK (through MONAI's ``ITKReader``) is the alternative, and both give the same array and RAS affine.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from brats3d.data.labels import LabelConvention, from_canonical, to_canonical
from brats3d.data.layouts import MODALITIES, Case
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path

READERS = ("nibabel", "itk")
AFFINE_TOLERANCE = 1e-3  # mm; headers of one case written by different tools differ by float noise
# Voxels one file may hold: a 240x240x155 BraTS scan has 9 M, a 4-channel Decathlon file 36 M. A header claiming
# more is corrupt (or not a brain MRI), and is refused before anything is allocated for it.
MAX_VOXELS = 300_000_000


@dataclass
class Volume:
    """One NIfTI file as stored: array in file axis order, RAS affine, and the nibabel header if read by nibabel."""

    path: Path
    array: np.ndarray
    affine: np.ndarray
    header: nib.Nifti1Header | None = None


@dataclass
class LoadedCase:
    """A validated case: image (4, X, Y, Z) float32 in MODALITIES order, canonical uint8 label (X, Y, Z) or None.

    With ``ras=True`` the arrays are reoriented to RAS (the network always sees one anatomical orientation);
    ``source_affine``/``header`` and ``from_ras`` give predictions back in the input's own voxel order and grid.
    """

    case: Case
    image: np.ndarray
    label: np.ndarray | None
    affine: np.ndarray  # of ``image`` as held here (RAS-ordered when reoriented)
    header: nib.Nifti1Header | None
    source_affine: np.ndarray | None = None
    back_to_source: np.ndarray | None = None  # nibabel orientation transform RAS -> input voxel order

    @property
    def spacing(self) -> tuple[float, float, float]:
        return voxel_spacing(self.affine)

    def from_ras(self, volume: np.ndarray) -> np.ndarray:
        """A volume on this case's (RAS) grid, put back in the input file's voxel order."""
        if self.back_to_source is None:
            return volume
        return np.ascontiguousarray(nib.orientations.apply_orientation(volume, self.back_to_source))


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(s) for s in np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(0)))


def ras_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel spacing (mm) along the RAS-ordered axes that ``to_ras`` gives a file with this affine."""
    spacing = voxel_spacing(affine)
    ras = [0.0, 0.0, 0.0]
    for axis, (ras_axis, _) in enumerate(nib.orientations.io_orientation(affine)):
        ras[int(ras_axis)] = spacing[axis]
    return tuple(ras)


def case_spacing(case: Case) -> tuple[float, float, float]:
    """A case's RAS voxel spacing (mm) from its first file's header, without reading voxels."""
    return ras_spacing(load_header(case.images[0]).affine)


def to_ras(image: np.ndarray, label: np.ndarray | None, affine: np.ndarray):
    """Reorient channel-first ``image`` and ``label`` to the closest RAS voxel order (a permutation and flips only,
    no resampling). Returns (image, label, ras_affine, transform back to the source order)."""
    shape = image.shape[1:]
    source = nib.orientations.io_orientation(affine)
    ras = nib.orientations.axcodes2ornt(("R", "A", "S"))
    forward = nib.orientations.ornt_transform(source, ras)
    if np.array_equal(forward, ras):  # already RAS
        return image, label, affine, None
    image = np.stack([nib.orientations.apply_orientation(c, forward) for c in image])
    if label is not None:
        label = np.ascontiguousarray(nib.orientations.apply_orientation(label, forward))
    new_affine = affine @ nib.orientations.inv_ornt_aff(forward, shape)
    return np.ascontiguousarray(image), label, new_affine, nib.orientations.ornt_transform(ras, source)


def load_header(path: str | Path) -> nib.Nifti1Image:
    """A NIfTI file's header, checked without reading voxels: readable, within ``MAX_VOXELS``, and as long as the
    header says (a download cut short is caught here, in O(1) for a whole file)."""
    path = Path(path)
    if not path.is_file():
        raise BratsInputError(path, "file not found")
    try:
        img = nib.load(str(path))
    except Exception as exc:  # nibabel raises many types for a file that is not NIfTI
        raise BratsInputError(path, f"not a readable NIfTI file ({_short(exc)})") from exc
    voxels = int(np.prod(img.shape, dtype=np.int64))
    if voxels > MAX_VOXELS:
        raise BratsInputError(
            path,
            f"header claims {'x'.join(map(str, img.shape))} = {voxels / 1e6:.0f} M voxels, over the "
            f"{MAX_VOXELS / 1e6:.0f} M-voxel limit for one scan (a BraTS scan has 9 M): corrupt header?",
        )
    expected = int(img.dataobj.offset) + voxels * img.get_data_dtype().itemsize
    check_complete(path, expected)
    return img


def check_complete(path: Path, expected_bytes: int) -> None:
    """Raise if the (uncompressed) file holds fewer bytes than ``expected_bytes``.

    For .gz the gzip trailer stores the uncompressed size modulo 2^32, so a complete file is confirmed by reading
    its last 4 bytes; only when the trailer disagrees (a truncated file, or a multi-member gzip whose trailer
    counts the last member alone) is the stream decompressed to count its bytes.
    """
    if path.name.endswith(".gz"):
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            if fh.tell() >= 4:
                fh.seek(-4, 2)
                if int.from_bytes(fh.read(4), "little") == expected_bytes % 2**32:
                    return
        try:
            with gzip.open(path, "rb") as fh:
                actual = sum(len(chunk) for chunk in iter(lambda: fh.read(1 << 24), b""))
        except (EOFError, OSError, zlib.error) as exc:
            raise BratsInputError(path, f"file is truncated or corrupt ({_short(exc)})") from exc
    else:
        actual = path.stat().st_size
    if actual < expected_bytes:
        raise BratsInputError(
            path, f"file is truncated: it holds {actual} bytes of the {expected_bytes} its header describes"
        )


def read_nifti(path: str | Path, reader: str = "nibabel") -> Volume:
    """Read one NIfTI file fully; an unreadable or truncated file is a BratsInputError naming it."""
    path = Path(path)
    img = load_header(path)
    if reader == "nibabel":
        try:
            array = np.asanyarray(img.dataobj)
        except (EOFError, OSError, zlib.error, gzip.BadGzipFile, ValueError) as exc:
            raise BratsInputError(path, f"file is truncated or corrupt ({_short(exc)})") from exc
        return Volume(path, array, np.asarray(img.affine, dtype=np.float64), img.header)
    if reader == "itk":
        from monai.data import ITKReader

        try:
            itk_reader = ITKReader()
            array, meta = itk_reader.get_data(itk_reader.read(str(path)))
        except Exception as exc:
            raise BratsInputError(path, f"ITK cannot read this file ({_short(exc)})") from exc
        return Volume(path, np.asarray(array), np.asarray(meta["affine"], dtype=np.float64), None)
    raise ValueError(f"unknown reader {reader!r}; choose one of {READERS}")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def _as_3d(vol: Volume, what: str) -> np.ndarray:
    arr = vol.array
    while arr.ndim > 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim != 3:
        raise BratsInputError(vol.path, f"{what} must be a 3D volume, got shape {tuple(vol.array.shape)}")
    return arr


def _check_finite(path: Path, arr: np.ndarray) -> None:
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if bad:
            raise BratsInputError(path, f"contains {bad} NaN/Inf voxels")


def check_same_grid(
    path: Path, shape: tuple, affine: np.ndarray, reference: Path, ref_shape: tuple, ref_affine: np.ndarray
) -> None:
    """``path`` must lie on ``reference``'s voxel grid (same shape, same affine within float noise)."""
    if tuple(shape) != tuple(ref_shape):
        raise BratsInputError(
            path, f"grid mismatch: shape {tuple(shape)} differs from {Path(reference).name} {tuple(ref_shape)}"
        )
    if not np.allclose(affine, ref_affine, atol=AFFINE_TOLERANCE):
        raise BratsInputError(path, f"grid mismatch: affine differs from {Path(reference).name}")


def load_image(paths: list[Path] | tuple[Path, ...], reader: str = "nibabel") -> tuple[np.ndarray, Volume]:
    """Stack a case's modalities channel-first in MODALITIES order; returns (image, reference volume)."""
    if len(paths) == 1:
        vol = read_nifti(paths[0], reader)
        arr = vol.array
        if arr.ndim != 4 or arr.shape[-1] != len(MODALITIES):
            got = f"{arr.shape[-1]} channels" if arr.ndim == 4 else f"a {arr.ndim}D volume"
            raise BratsInputError(
                vol.path,
                f"expected a 4D image with {len(MODALITIES)} channels (FLAIR, T1w, T1gd, T2w) in the last "
                f"dimension, got {got} of shape {tuple(arr.shape)}",
            )
        image = np.moveaxis(np.asarray(arr, dtype=np.float32), -1, 0)
        _check_finite(vol.path, image)
        return np.ascontiguousarray(image), vol
    if len(paths) != len(MODALITIES):
        raise BratsInputError(
            paths[0] if paths else None, f"expected {len(MODALITIES)} modality files, got {len(paths)}"
        )
    vols = [read_nifti(p, reader) for p in paths]
    arrays = [_as_3d(v, f"{m} image") for v, m in zip(vols, MODALITIES)]
    for vol, arr in zip(vols[1:], arrays[1:]):
        check_same_grid(vol.path, arr.shape, vol.affine, vols[0].path, arrays[0].shape, vols[0].affine)
    image = np.empty((len(MODALITIES), *arrays[0].shape), dtype=np.float32)
    for c, (vol, arr) in enumerate(zip(vols, arrays)):
        image[c] = arr
        _check_finite(vol.path, image[c])
    return image, vols[0]


def load_label(path: Path, convention: LabelConvention | str, ref: Volume, ref_shape: tuple, reader: str = "nibabel"):
    """Read a label map, check it sits on the image grid, and convert it to canonical labels."""
    vol = read_nifti(path, reader)
    arr = _as_3d(vol, "label map")
    check_same_grid(vol.path, arr.shape, vol.affine, ref.path, ref_shape, ref.affine)
    return to_canonical(arr, convention, path)


def load_case(case: Case, reader: str = "nibabel", with_label: bool = True, ras: bool = False) -> LoadedCase:
    """Read and validate every file of a case; any problem is one BratsInputError naming the file."""
    image, ref = load_image(case.images, reader)
    label = None
    if with_label and case.label is not None:
        label = load_label(case.label, case.convention, ref, image.shape[1:], reader)
    if not ras:
        return LoadedCase(case, image, label, ref.affine, ref.header, ref.affine)
    image, label, affine, back = to_ras(image, label, ref.affine)
    return LoadedCase(case, image, label, affine, ref.header, ref.affine, back)


def write_label_map(
    label: np.ndarray,
    out_path: str | Path,
    affine: np.ndarray,
    header: nib.Nifti1Header | None,
    convention: LabelConvention | str,
    protect: tuple[Path, ...] = (),
) -> Path:
    """Write canonical labels as uint8 NIfTI in ``convention``, on the reference grid (shape, affine, codes)."""
    data = from_canonical(label, convention)
    if header is not None:
        hdr = header.copy()
        if len(hdr.get_data_shape()) != 3:
            hdr.set_data_shape(data.shape)
        img = nib.Nifti1Image(data, affine, header=hdr)
        # Keep the input's qform/sform codes so viewers place the overlay exactly on the scan.
        img.set_qform(affine, code=int(header["qform_code"]) or 1)
        img.set_sform(affine, code=int(header["sform_code"]) or 1)
    else:
        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, code=1)
        img.set_sform(affine, code=1)
    img.set_data_dtype(np.uint8)
    img.header["scl_slope"], img.header["scl_inter"] = 1.0, 0.0
    img.header["cal_min"], img.header["cal_max"] = 0, int(data.max()) if data.size else 0
    out_path = Path(out_path)
    with atomic_path(out_path, protect=protect) as tmp:
        nib.save(img, str(tmp))
    return out_path
