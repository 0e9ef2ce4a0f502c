import nibabel as nib
import numpy as np
import pytest
import torch

import brats3d.inference.predict as predict_module
from brats3d.data.io import ras_spacing
from brats3d.data.layouts import Case, Layout, discover
from brats3d.errors import BratsInputError
from brats3d.inference.predict import PredictOptions, Predictor, probabilities_on_scan
from brats3d.models.checkpoint import load_checkpoint
from brats3d.transforms import build_val_transforms
from brats3d.transforms.postprocess import PostProcessing
from brats3d.transforms.resampling import resample, resampled_shape


def test_ras_spacing_follows_the_axes_to_ras_gives():
    affine = np.array([[0, -3.0, 0, 0], [0, 0, 4.0, 0], [2.0, 0, 0, 0], [0, 0, 0, 1]])  # file axes: S, R, A
    assert ras_spacing(affine) == (3.0, 4.0, 2.0)


def test_rules_keep_their_volume_on_larger_voxels():
    rules = PostProcessing(thresholds=[0.3, 0.3, 0.6], min_component=10000, min_enhancing=500)
    scaled = rules.for_voxel_volume(8.0)  # 2 mm voxels against 1 mm ones
    assert (scaled.min_component, scaled.min_enhancing) == (1250, 62)
    assert scaled.thresholds == rules.thresholds and scaled.thresholds is not rules.thresholds


def test_checkpoints_record_the_training_spacing(checkpoint, tmp_path):
    payload = load_checkpoint(checkpoint)
    assert payload["spacing"] == [1.0, 1.0, 1.0]  # the synthetic scans' 1 mm voxels
    del payload["spacing"]  # a checkpoint from before spacings were kept: scans are predicted as they are
    torch.save(payload, tmp_path / "old.pt")
    assert Predictor(tmp_path / "old.pt").training_spacing is None
    payload["spacing"] = [1.0, -1.0, 1.0]
    torch.save(payload, tmp_path / "odd.pt")
    with pytest.raises(BratsInputError, match=r"odd.pt: checkpoint spacing \[1.0, -1.0, 1.0\] is not three positive"):
        load_checkpoint(tmp_path / "odd.pt")


def _copy_at_spacing(case: Case, folder, step: int) -> Case:
    """The scan as an acquisition at another resolution: every ``step``-th voxel kept and the affine saying so
    (``step`` 2: 2 mm voxels), or with ``step`` -2 the same voxels declared 0.5 mm (a finer scan of a smaller head)."""
    folder.mkdir()
    img = nib.load(str(case.images[0]))
    data = np.asanyarray(img.dataobj)
    data, scale = (data[::step, ::step, ::step], step) if step > 0 else (data, -1 / step)
    path = folder / case.images[0].name
    nib.save(nib.Nifti1Image(np.ascontiguousarray(data), img.affine @ np.diag([scale] * 3 + [1.0])), str(path))
    return Case(case.case_id, Layout.MSD, (path,))


@pytest.mark.parametrize(("step", "resample_scan"), [(2, True), (-2, True), (2, False)])
def test_a_scan_is_shown_to_the_network_at_its_training_spacing(
    make_dataset, checkpoint, tmp_path, monkeypatch, step, resample_scan
):
    case = _copy_at_spacing(discover(make_dataset("msd", cases=1, shape=(40, 40, 24))).cases[0], tmp_path / "s", step)
    seen = []
    original = predict_module.ensemble_probabilities

    def spy(models, image, *args):
        seen.append(image.clone())
        return original(models, image, *args)

    monkeypatch.setattr(predict_module, "ensemble_probabilities", spy)
    options = PredictOptions(pictures=False, overlap=0.25, resample=resample_scan, save_probabilities=True)
    predictor = Predictor(checkpoint, options)
    prediction = predictor.predict(case)
    out = predictor.write(prediction, tmp_path / "out")[0]
    normalisation = load_checkpoint(checkpoint)["normalisation"]
    own_grid = build_val_transforms(normalisation=normalisation, with_label=False)(case.to_dict())["image"].float()
    if not resample_scan:
        expected = own_grid
    elif step > 0:  # coarser: normalised on its own grid (real voxels), then resampled to 1 mm
        expected = resample(own_grid, resampled_shape(own_grid.shape[1:], (step,) * 3))
    else:  # finer: resampled to 1 mm first, then cropped and normalised there, as validation prepares a case
        chain = build_val_transforms(normalisation=normalisation, with_label=False, spacing=[1.0, 1.0, 1.0])
        expected = chain(case.to_dict())["image"].float()
        assert expected.shape[1:] == (20, 20, 12)
    assert len(seen) == 1
    torch.testing.assert_close(seen[0], expected)
    seg, ref = nib.load(str(out)), nib.load(str(case.images[0]))
    assert seg.shape == ref.shape[:3]  # written back on the scan's own grid
    np.testing.assert_allclose(seg.affine, ref.affine)
    assert prediction.labels_ras.shape == tuple(ref.shape[:3])
    assert prediction.probabilities_ras.shape == (3, *ref.shape[:3])  # --save-probabilities: on the scan's grid too


def test_probabilities_come_back_to_where_they_were_on_the_scan():
    # A scan of 10 x 12 x 6 voxels predicted at twice its resolution, its brain box starting at (4, 2, 2) there.
    scan_shape, grid_shape = (10, 12, 6), (20, 24, 12)
    box = (slice(4, 16), slice(2, 22), slice(2, 12))
    probs = torch.zeros((3, 12, 20, 10))
    probs[1, 4:8, 6:14, 2:6] = 1.0  # grid voxels 8-11, 8-15, 4-7: scan voxels 4-5, 4-7, 2-3
    back = probabilities_on_scan(probs, box, grid_shape, scan_shape)
    assert back.shape == (3, *scan_shape) and not back[0].any() and not back[2].any()
    expected = torch.zeros(scan_shape)
    expected[4:6, 4:8, 2:4] = 1.0
    torch.testing.assert_close(back[1], expected)
