"""Load a case dictionary into channel-first arrays with canonical labels."""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.transforms import MapTransform

from brats3d.data.io import load_case
from brats3d.data.layouts import Case


class LoadCased(MapTransform):
    """Read a ``Case.to_dict()`` dictionary: ``image`` (4, X, Y, Z) float32, ``label`` (1, X, Y, Z) canonical uint8.

    Our own loader rather than MONAI's ``LoadImaged`` because it validates every file with a one-line error
    (grids, channels, NaNs, label values) and converts each layout's label numbering; the readers underneath are
    nibabel, or MONAI's ``ITKReader``. Arrays are reoriented to RAS (permutations and flips, no resampling) so the
    network always sees one anatomical orientation, whatever the file's voxel order. The RAS affine and spacing ride
    along for inference and HD95.
    """

    def __init__(self, reader: str = "nibabel", with_label: bool = True, keep_source: bool = False) -> None:
        super().__init__(keys=("image", "label"), allow_missing_keys=True)
        self.reader = reader
        self.with_label = with_label
        self.keep_source = keep_source  # prediction: ``source`` holds the whole LoadedCase, to write results back

    def __call__(self, data: Mapping[Hashable, object]) -> dict:
        d = dict(data)
        loaded = load_case(Case.from_dict(d), reader=self.reader, with_label=self.with_label, ras=True)
        d["image"] = loaded.image
        if loaded.label is not None:
            d["label"] = loaded.label[None]  # channel-first like every MONAI array
        else:
            d.pop("label", None)
        d["affine"] = loaded.affine
        d["spacing"] = loaded.spacing
        d["spatial_shape"] = loaded.image.shape[1:]
        if self.keep_source:
            d["source"] = loaded
        return d
