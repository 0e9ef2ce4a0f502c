import nibabel as nib
import numpy as np
import pytest

from brats3d.data.labels import EDEMA, ENHANCING, NON_ENHANCING
from brats3d.data.layouts import discover
from brats3d.data.synthetic import BRATS_AFFINE, make_phantom


def test_phantom_has_every_tumour_class_inside_a_skull_stripped_brain(phantom):
    image, label = phantom
    assert image.shape == (4, 48, 48, 32) and label.shape == (48, 48, 32)
    counts = np.bincount(label.ravel(), minlength=4)
    assert counts[EDEMA] > counts[ENHANCING] > 0 and counts[NON_ENHANCING] > 0
    brain = image.any(0)
    assert brain.mean() > 0.25 and not brain[0, 0, 0]
    assert np.all(brain[label > 0]), "tumour outside the brain"


def test_modalities_show_the_expected_contrasts(phantom):
    image, label = phantom
    mean = {c: image[:, (label == c)].mean(1) / image[:, image.any(0) & (label == 0)].mean(1) for c in (1, 2, 3)}
    flair, t1ce = 0, 2
    assert mean[EDEMA][flair] > 1.2  # edema bright on FLAIR
    assert mean[ENHANCING][t1ce] > max(1.3, mean[NON_ENHANCING][t1ce] * 1.15)  # enhancing rim bright on T1ce


def test_same_seed_same_phantom():
    a, b = make_phantom((24, 24, 16), seed=9), make_phantom((24, 24, 16), seed=9)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[1], make_phantom((24, 24, 16), seed=10)[1])


@pytest.mark.parametrize(("layout", "enhancing_value"), [("msd", 3), ("brats2021", 4), ("brats2023", 3)])
def test_written_in_the_layouts_own_convention_and_headers(make_dataset, layout, enhancing_value):
    case = discover(make_dataset(layout, cases=1)).cases[0]
    seg = nib.load(str(case.label))
    assert enhancing_value in np.unique(np.asanyarray(seg.dataobj))
    assert int(seg.header["sform_code"]) == 1 and int(seg.header["qform_code"]) == 1
    img = nib.load(str(case.images[0]))
    if layout == "msd":
        assert img.shape == (48, 48, 32, 4)
        np.testing.assert_allclose(img.affine, np.eye(4))
    else:
        assert img.shape == (48, 48, 32) and img.get_data_dtype() == np.int16
        np.testing.assert_allclose(img.affine, BRATS_AFFINE)
