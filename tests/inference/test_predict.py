import shutil

import nibabel as nib
import numpy as np
import pytest
import torch

from brats3d.cli import main
from brats3d.data.io import load_case, read_nifti
from brats3d.data.labels import allowed_values
from brats3d.data.layouts import Case, Layout, discover
from brats3d.errors import BratsInputError
from brats3d.inference.predict import Prediction, PredictOptions, Predictor, resolve_inputs
from brats3d.models.checkpoint import load_checkpoint


def _predictor(checkpoint, **kw):
    return Predictor(checkpoint, PredictOptions(pictures=False, overlap=0.25, **kw))


@pytest.mark.parametrize("layout", ["msd", "brats2021", "brats2023"])
def test_output_has_input_geometry_with_nibabel_and_itk(make_dataset, checkpoint, tmp_path, layout):
    case = discover(make_dataset(layout, cases=1)).cases[0]
    predictor = _predictor(checkpoint)
    out = predictor.write(predictor.predict(case), tmp_path / "out")[0]
    ref, seg = nib.load(str(case.images[0])), nib.load(str(out))
    assert out.name == f"{case.case_id}_seg.nii.gz"
    assert seg.shape == ref.shape[:3] and seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, ref.affine)
    assert int(seg.header["qform_code"]) == int(ref.header["qform_code"])
    assert int(seg.header["sform_code"]) == int(ref.header["sform_code"])
    np.testing.assert_allclose(read_nifti(out, "itk").affine, read_nifti(case.images[0], "itk").affine, atol=1e-4)
    assert set(np.unique(np.asanyarray(seg.dataobj))) <= set(allowed_values(layout))


@pytest.mark.parametrize("layout", ["msd", "brats2021", "brats2023"])
def test_labels_are_written_back_in_the_inputs_own_numbering(make_dataset, checkpoint, tmp_path, layout):
    """A prediction equal to the ground truth must reproduce the reference file value for value."""
    case = discover(make_dataset(layout, cases=1)).cases[0]
    predictor = _predictor(checkpoint)
    loaded = load_case(case, ras=True)
    out = predictor.write(Prediction(case, loaded.label, None, loaded), tmp_path)[0]
    np.testing.assert_array_equal(
        np.asanyarray(nib.load(str(out)).dataobj), np.asanyarray(nib.load(str(case.label)).dataobj)
    )


def _reoriented_copy(case: Case, folder):
    """The same scan stored with x/y swapped and z reversed; the affine keeps every voxel at its world position."""
    folder.mkdir()
    images = []
    for path in (*case.images, case.label):
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
        new = np.flip(np.swapaxes(data, 0, 1), 2)
        swap = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, data.shape[2] - 1], [0, 0, 0, 1]], float)
        out = folder / path.name
        nib.save(nib.Nifti1Image(np.ascontiguousarray(new), img.affine @ swap), str(out))
        images.append(out)
    return Case(case.case_id, case.layout, tuple(images[:4]), images[4])


def test_reoriented_input_gives_the_same_segmentation_in_world_space(make_dataset, checkpoint, tmp_path):
    case = discover(make_dataset("brats2021", cases=1)).cases[0]
    other = _reoriented_copy(case, tmp_path / "reoriented")
    predictor = _predictor(checkpoint, threshold=0.45)
    a = nib.load(str(predictor.write(predictor.predict(case), tmp_path / "a")[0]))
    b = nib.load(str(predictor.write(predictor.predict(other), tmp_path / "b")[0]))
    assert a.shape == (b.shape[1], b.shape[0], b.shape[2])
    a_ras, b_ras = nib.as_closest_canonical(a), nib.as_closest_canonical(b)
    np.testing.assert_allclose(a_ras.affine, b_ras.affine)
    np.testing.assert_array_equal(np.asanyarray(a_ras.dataobj), np.asanyarray(b_ras.dataobj))
    assert np.asanyarray(a.dataobj).any(), "the comparison needs some predicted tumour"


def test_pictures_have_one_frame_per_slice(make_dataset, checkpoint, tmp_path):
    import imageio.v3 as iio

    case = discover(make_dataset("msd", cases=1)).cases[0]
    predictor = Predictor(checkpoint, PredictOptions(overlap=0.25))
    written = predictor.write(predictor.predict(case), tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(
        f"{case.case_id}_{s}"
        for s in (
            "seg.nii.gz",
            "seg.itksnap.txt",
            "seg.ctbl",
            "axial.gif",
            "coronal.gif",
            "sagittal.gif",
            "montage.png",
        )
    )
    x, y, z = nib.load(str(case.images[0])).shape[:3]
    for plane, count in (("axial", z), ("coronal", y), ("sagittal", x)):
        assert iio.imread(tmp_path / f"{case.case_id}_{plane}.gif").shape[0] == count
    assert iio.imread(tmp_path / f"{case.case_id}_montage.png").ndim == 3


def test_probabilities_are_saved_in_the_input_grid(make_dataset, checkpoint, tmp_path):
    case = discover(make_dataset("brats2021", cases=1)).cases[0]
    predictor = _predictor(checkpoint, save_probabilities=True)
    written = predictor.write(predictor.predict(case), tmp_path)
    prob = nib.load(str(written[1]))
    assert prob.shape == (*nib.load(str(case.images[0])).shape, 3)
    values = prob.get_fdata()
    assert values.min() >= 0 and values.max() <= 1.0 + 1e-6


def test_an_input_is_never_overwritten(make_dataset, checkpoint):
    root = make_dataset("brats2021", cases=1)
    case = discover(root).cases[0]
    before = case.label.read_bytes()
    predictor = _predictor(checkpoint)
    with pytest.raises(BratsInputError, match="refusing to overwrite an input"):
        predictor.write(predictor.predict(case), case.label.parent)
    assert case.label.read_bytes() == before


def test_bad_inputs_fail_clearly_and_write_nothing(make_dataset, checkpoint, tmp_path, capsys):
    root = make_dataset("brats2021", cases=1)
    flair = next(root.glob("*/*_flair.nii.gz"))
    out = tmp_path / "out"
    # a 3D scan where a 4-channel image is needed
    assert main(["predict", str(flair), "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert "expected a 4D image with 4 channels" in capsys.readouterr().err
    # NaN voxels
    img = nib.load(str(flair))
    data = img.get_fdata().astype(np.float32)
    data[5, 5, 5] = np.nan
    nib.save(nib.Nifti1Image(data, img.affine), str(flair))
    assert main(["predict", str(flair.parent), "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert "contains 1 NaN/Inf voxels" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_a_model_trained_with_asymmetry_channels_predicts_with_them(make_dataset, mirror_checkpoint):
    case = discover(make_dataset("msd", cases=1)).cases[0]
    predictor = _predictor(mirror_checkpoint, amp="off", tta=False)
    assert predictor.chain(case.to_dict())["image"].shape[0] == 8
    assert predictor.predict(case).labels_in_source_order().shape == nib.load(str(case.images[0])).shape[:3]


def test_checkpoint_of_another_network_is_refused(checkpoint, tmp_path):
    payload = load_checkpoint(checkpoint)
    payload["network"], payload["network_kwargs"] = "segresnet", {}
    torch.save(payload, tmp_path / "other.pt")
    with pytest.raises(BratsInputError, match="weights do not fit network segresnet"):
        Predictor(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BratsInputError, match=r"junk.pt: not a readable checkpoint"):
        Predictor(tmp_path / "junk.pt")


def test_a_network_that_outputs_nan_is_an_error_not_an_empty_segmentation(make_dataset, checkpoint, tmp_path):
    payload = load_checkpoint(checkpoint)
    first = next(k for k, v in payload["model"].items() if v.is_floating_point())
    payload["model"][first] = torch.full_like(payload["model"][first], float("nan"))
    torch.save(payload, tmp_path / "nan.pt")
    case = discover(make_dataset("brats2021", cases=1)).cases[0]
    with pytest.raises(BratsInputError, match="output holds NaN or infinite values"):
        _predictor(tmp_path / "nan.pt").predict(case)


def test_the_sliding_window_is_the_recipes_unless_given_and_one_the_network_cannot_take_is_refused(
    make_dataset, checkpoint, tmp_path
):
    assert _predictor(checkpoint).window == [32, 32, 16]  # a recipe without inference.window: its training patch
    payload = load_checkpoint(checkpoint)
    payload["config"]["inference"]["window"] = [32, 32, 32]
    torch.save(payload, tmp_path / "deeper.pt")
    case = discover(make_dataset("brats2021", cases=1)).cases[0]
    deeper = _predictor(tmp_path / "deeper.pt", save_probabilities=True)
    assert deeper.window == [32, 32, 32] and deeper.settings()["window"] == [32, 32, 32]
    prediction = deeper.predict(case)
    assert prediction.labels_ras.shape == prediction.loaded.image.shape[1:]
    assert torch.isfinite(prediction.probabilities_ras.float()).all()
    assert _predictor(tmp_path / "deeper.pt", window=(48, 48, 16)).window == [48, 48, 16]  # --window wins
    with pytest.raises(BratsInputError, match=r"sliding window 32x32x20: unet3d needs every patch dimension divisible"):
        _predictor(checkpoint, window=(32, 32, 20))


def test_input_forms_resolve_to_cases(make_dataset, tmp_path):
    root = make_dataset("brats2021", cases=2)
    assert [c.case_id for c in resolve_inputs([str(root)], {})] == ["BraTS2021_00001", "BraTS2021_00002"]
    folder = root / "BraTS2021_00002"
    assert [c.case_id for c in resolve_inputs([str(folder)], {})] == ["BraTS2021_00002"]
    files = {m: str(folder / f"BraTS2021_00002_{m}.nii.gz") for m in ("flair", "t1", "t1ce", "t2")}
    (case,) = resolve_inputs([], files)
    assert case.case_id == "BraTS2021_00002" and case.layout is Layout.BRATS2021
    with pytest.raises(BratsInputError, match="missing modality file"):
        resolve_inputs([], {"flair": files["flair"]})


def test_cli_predicts_a_whole_dataset(make_dataset, checkpoint, tmp_path, capsys):
    root = make_dataset("brats2023", cases=2)
    out = tmp_path / "pred"
    assert (
        main(
            [
                "predict",
                str(root),
                "--checkpoint",
                str(checkpoint),
                "--out",
                str(out),
                "--no-pictures",
                "--overlap",
                "0.25",
                "--min-component",
                "10",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "BraTS-GLI-00001-000: WT" in text and "cm³" in text
    assert sorted(p.name for p in out.iterdir()) == [
        f"BraTS-GLI-0000{i}-000_seg.{suffix}" for i in (1, 2) for suffix in ("ctbl", "itksnap.txt", "nii.gz")
    ]
    assert not list(out.glob(".*"))


def test_show_writes_pictures_of_the_ground_truth(make_dataset, tmp_path):
    root = make_dataset("brats2021", cases=1)
    assert main(["show", str(root / "BraTS2021_00001"), "--out", str(tmp_path / "pics")]) == 0
    assert len(list((tmp_path / "pics").glob("*.gif"))) == 3
    shutil.rmtree(tmp_path / "pics")
