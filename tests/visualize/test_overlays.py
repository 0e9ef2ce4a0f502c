import imageio.v3 as iio
import numpy as np

from brats3d.visualize import write_case_pictures, write_montage
from brats3d.visualize.overlays import PRED_OUTLINE, TRUE_OUTLINE


def _volume():
    image = np.zeros((30, 26, 12), np.float32)
    image[3:27, 3:23, 1:11] = 100.0
    labels = np.zeros(image.shape, np.uint8)
    labels[20:25, 15:20, 4:8] = 3  # patient's right (high x in RAS), anterior (high y)
    return image, labels


def test_gifs_have_one_frame_per_slice_and_a_montage(tmp_path):
    image, labels = _volume()
    written = write_case_pictures(tmp_path, "c1", image, labels)
    assert [p.name for p in written] == ["c1_axial.gif", "c1_coronal.gif", "c1_sagittal.gif", "c1_montage.png"]
    for plane, count in (("axial", 12), ("coronal", 26), ("sagittal", 30)):
        assert iio.imread(tmp_path / f"c1_{plane}.gif").shape[0] == count
    assert not list(tmp_path.glob(".*"))


def test_axial_view_is_radiological(tmp_path):
    """Patient's right appears on the viewer's left, anterior at the top."""
    image, labels = _volume()
    write_case_pictures(tmp_path, "c1", image, labels)
    frame = iio.imread(tmp_path / "c1_axial.gif")[5].astype(int)
    tumour = (frame[..., 0] - frame[..., 2]) > 60  # enhancing overlay is yellow; the scan itself is grey
    rows, cols = np.nonzero(tumour)
    height, width = frame.shape[0], frame.shape[1]
    assert rows.size > 0
    assert rows.mean() < height / 2 and cols.mean() < width / 2


def test_montage_with_ground_truth_draws_both_outlines(tmp_path):
    image, labels = _volume()
    truth = np.roll(labels, 2, axis=0)
    path = write_montage(tmp_path / "m.png", image, labels, truth)
    pixels = iio.imread(path).reshape(-1, 3)
    for colour in (PRED_OUTLINE, TRUE_OUTLINE):
        assert (np.abs(pixels.astype(int) - colour).sum(1) < 10).any()
