import numpy as np
import pytest
import torch
from monai.transforms import ConvertToMultiChannelBasedOnBratsClasses

from brats3d.data.labels import (
    EDEMA,
    ENHANCING,
    NON_ENHANCING,
    LabelConvention,
    allowed_values,
    from_canonical,
    labels_to_regions,
    regions_to_labels,
    to_canonical,
)
from brats3d.errors import BratsInputError

# What each dataset's numbers mean, written out by hand from the datasets' documentation.
PINNED = {
    "msd": {0: 0, 1: EDEMA, 2: NON_ENHANCING, 3: ENHANCING},
    "brats2021": {0: 0, 1: NON_ENHANCING, 2: EDEMA, 4: ENHANCING},
    "brats2023": {0: 0, 1: NON_ENHANCING, 2: EDEMA, 3: ENHANCING},
}


@pytest.mark.parametrize("convention", sorted(PINNED))
def test_to_canonical_matches_dataset_documentation(convention):
    on_disk = np.array(list(PINNED[convention]), dtype=np.int16)
    assert to_canonical(on_disk, convention).tolist() == list(PINNED[convention].values())


@pytest.mark.parametrize("convention", sorted(PINNED))
def test_round_trip_both_ways(convention):
    rng = np.random.default_rng(0)
    canonical = rng.integers(0, 4, size=(7, 6, 5)).astype(np.uint8)
    on_disk = from_canonical(canonical, convention)
    assert set(np.unique(on_disk)) <= set(allowed_values(convention))
    np.testing.assert_array_equal(to_canonical(on_disk, convention), canonical)
    disk = rng.choice(allowed_values(convention), size=(4, 4, 4))
    np.testing.assert_array_equal(from_canonical(to_canonical(disk, convention), convention), disk)


def test_enhancing_written_back_as_4_for_brats2018_2021():
    assert from_canonical(np.array([ENHANCING]), "brats2021").tolist() == [4]
    assert from_canonical(np.array([ENHANCING]), "brats2023").tolist() == [3]
    assert from_canonical(np.array([ENHANCING]), "msd").tolist() == [3]


@pytest.mark.parametrize(("convention", "bad"), [("brats2021", 3), ("msd", 4), ("brats2023", 4), ("msd", 7)])
def test_unknown_label_value_is_a_clear_error(convention, bad):
    with pytest.raises(BratsInputError, match=rf"seg.nii.gz: label values \[{bad}\] are not part of"):
        to_canonical(np.array([0, 1, bad]), convention, path="seg.nii.gz")


def test_float_labels_must_be_whole_numbers():
    with pytest.raises(BratsInputError, match="non-integer"):
        to_canonical(np.array([0.0, 1.5]), "msd")
    assert to_canonical(np.array([0.0, 2.0]), LabelConvention.MSD).tolist() == [0, NON_ENHANCING]


def test_regions_are_nested_wt_tc_et():
    canonical = np.array([0, EDEMA, NON_ENHANCING, ENHANCING])
    wt, tc, et = labels_to_regions(canonical)
    assert wt.tolist() == [0, 1, 1, 1]
    assert tc.tolist() == [0, 0, 1, 1]
    assert et.tolist() == [0, 0, 0, 1]
    np.testing.assert_array_equal(regions_to_labels(labels_to_regions(canonical)), canonical)
    torch_regions = labels_to_regions(torch.as_tensor(canonical))
    np.testing.assert_array_equal(torch_regions.numpy(), labels_to_regions(canonical))


def test_regions_to_labels_enforces_et_inside_tc_inside_wt():
    # voxel 0: ET without TC/WT -> background; voxel 1: TC+ET without WT -> background; voxel 2: WT+ET -> edema
    regions = np.array([[0, 0, 1], [0, 1, 0], [1, 1, 1]], dtype=bool)
    assert regions_to_labels(regions).tolist() == [0, 0, EDEMA]


@pytest.mark.parametrize("convention", sorted(PINNED))
def test_regions_from_every_convention_match_brats_definition(convention):
    """WT = all tumour, TC = core + enhancing, ET = enhancing, whatever numbering the file used."""
    names = {v: k for k, v in PINNED[convention].items()}
    disk = np.array([names[0], names[EDEMA], names[NON_ENHANCING], names[ENHANCING]])
    wt, tc, et = labels_to_regions(to_canonical(disk, convention))
    assert (wt.tolist(), tc.tolist(), et.tolist()) == ([0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1])


def test_monai_brats_converter_misreads_decathlon_labels():
    """Why we do not use MONAI's converter: on Decathlon numbering (ET = 3) it yields an empty ET channel."""
    decathlon = torch.tensor([[[[0, 1, 2, 3]]]])
    monai_et = ConvertToMultiChannelBasedOnBratsClasses()(decathlon)[2]
    assert monai_et.sum() == 0
    ours = labels_to_regions(to_canonical(decathlon.numpy()[0], "msd"))
    assert ours[2].sum() == 1
