import gzip

import nibabel as nib
import numpy as np
import pytest

from brats3d.data.io import load_case, read_nifti, write_label_map
from brats3d.data.layouts import discover
from brats3d.errors import BratsInputError


def _case(root, i=0):
    return discover(root).cases[i]


def _rewrite(path, data=None, affine=None, dtype=None):
    img = nib.load(str(path))
    arr = np.asanyarray(img.dataobj) if data is None else data
    out = nib.Nifti1Image(arr.astype(dtype or arr.dtype), img.affine if affine is None else affine)
    nib.save(out, str(path))


@pytest.mark.parametrize("layout", ["msd", "brats2021", "brats2023"])
def test_every_layout_loads_to_the_same_canonical_case(tmp_path, layout):
    from brats3d.data.synthetic import make_phantom, write_case

    image, label = make_phantom((40, 40, 24), seed=5)
    write_case(tmp_path, "case1", image, label, layout)
    loaded = load_case(_case(tmp_path))
    assert loaded.image.shape == (4, 40, 40, 24) and loaded.image.dtype == np.float32
    np.testing.assert_array_equal(loaded.label, label)
    tolerance = 0.5 if layout != "msd" else 1e-3  # BraTS layouts store int16
    np.testing.assert_allclose(loaded.image, image, atol=tolerance)


def test_itk_reader_gives_same_array_and_affine_as_nibabel(make_dataset):
    case = _case(make_dataset("brats2021", cases=1))
    nib_case, itk_case = load_case(case, reader="nibabel"), load_case(case, reader="itk")
    np.testing.assert_array_equal(nib_case.image, itk_case.image)
    np.testing.assert_array_equal(nib_case.label, itk_case.label)
    np.testing.assert_allclose(nib_case.affine, itk_case.affine, atol=1e-4)


def test_truncated_file_is_named(make_dataset):
    case = _case(make_dataset("brats2021", cases=1))
    data = case.images[2].read_bytes()
    case.images[2].write_bytes(data[: len(data) // 2])
    with pytest.raises(BratsInputError, match=r"_t1ce.nii.gz: .*(truncated|corrupt|readable)"):
        load_case(case)


def test_not_a_nifti_file(tmp_path):
    bad = tmp_path / "x.nii.gz"
    bad.write_bytes(gzip.compress(b"hello, not an image"))
    with pytest.raises(BratsInputError, match=r"x\.nii\.gz: not a readable NIfTI"):
        read_nifti(bad)


def test_wrong_channel_count_in_4d_decathlon_file(make_dataset):
    case = _case(make_dataset("msd", cases=1))
    img = nib.load(str(case.images[0]))
    _rewrite(case.images[0], np.asanyarray(img.dataobj)[..., :3])
    with pytest.raises(BratsInputError, match=r"expected a 4D image with 4 channels .* got 3 channels"):
        load_case(case)


def test_3d_file_where_4d_decathlon_file_expected(make_dataset):
    case = _case(make_dataset("msd", cases=1))
    img = nib.load(str(case.images[0]))
    _rewrite(case.images[0], np.asanyarray(img.dataobj)[..., 0])
    with pytest.raises(BratsInputError, match="got a 3D volume"):
        load_case(case)


def test_wrong_dimensionality_of_a_modality_file(make_dataset):
    case = _case(make_dataset("brats2021", cases=1))
    _rewrite(case.images[1], np.zeros((8, 8), dtype=np.int16))
    with pytest.raises(BratsInputError, match=r"_t1.nii.gz: t1 image must be a 3D volume"):
        load_case(case)


def test_shape_mismatch_between_modalities(make_dataset):
    case = _case(make_dataset("brats2021", cases=1))
    arr = np.asanyarray(nib.load(str(case.images[3])).dataobj)
    _rewrite(case.images[3], arr[:, :, :-1])
    with pytest.raises(BratsInputError, match=r"_t2.nii.gz: grid mismatch: shape \(48, 48, 31\)"):
        load_case(case)


def test_affine_mismatch_between_image_and_label(make_dataset):
    case = _case(make_dataset("brats2021", cases=1))
    affine = nib.load(str(case.label)).affine.copy()
    affine[0, 3] += 5.0
    _rewrite(case.label, affine=affine)
    with pytest.raises(BratsInputError, match=r"_seg.nii.gz: grid mismatch: affine differs"):
        load_case(case)


def test_nan_voxels_are_rejected(make_dataset):
    case = _case(make_dataset("msd", cases=1))
    arr = np.asanyarray(nib.load(str(case.images[0])).dataobj).astype(np.float32)
    arr[3, 4, 5, 1] = np.nan
    arr[5, 5, 5, 2] = np.inf
    _rewrite(case.images[0], arr)
    with pytest.raises(BratsInputError, match=r"contains 2 NaN/Inf voxels"):
        load_case(case)


def test_label_value_outside_convention(make_dataset):
    case = _case(make_dataset("brats2021", cases=1))
    arr = np.asanyarray(nib.load(str(case.label)).dataobj).copy()
    arr[0, 0, 0] = 3  # BraTS 2018-2021 has no label 3
    _rewrite(case.label, arr)
    with pytest.raises(BratsInputError, match=r"_seg.nii.gz: label values \[3\] are not part of the brats2021"):
        load_case(case)


@pytest.mark.parametrize("layout", ["msd", "brats2021"])
def test_written_label_map_keeps_input_geometry(make_dataset, tmp_path, layout):
    case = _case(make_dataset(layout, cases=1))
    loaded = load_case(case)
    out = write_label_map(
        loaded.label, tmp_path / "out" / "pred_seg.nii.gz", loaded.affine, loaded.header, case.convention
    )
    ref, written = nib.load(str(case.images[0])), nib.load(str(out))
    assert written.shape == ref.shape[:3]
    np.testing.assert_allclose(written.affine, ref.affine)
    assert int(written.header["qform_code"]) == int(ref.header["qform_code"])
    assert int(written.header["sform_code"]) == int(ref.header["sform_code"])
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), np.asanyarray(nib.load(str(case.label)).dataobj))
    itk_written = read_nifti(out, reader="itk")
    np.testing.assert_allclose(itk_written.affine, ref.affine, atol=1e-4)
    assert not list(out.parent.glob(".*tmp*")), "temporary files left behind"
