"""A BratsInputError reaches the user as one line however deep it was raised: inside MONAI's Compose (which wraps
it in a RuntimeError) or in a DataLoader worker (which re-raises it as text)."""

from __future__ import annotations

import pytest
import torch
from monai.transforms import Compose, Lambda

from brats3d.errors import BratsInputError, find_input_error


def _raise(_):
    raise BratsInputError("/data/case_1_t1ce.nii.gz", "file is truncated or corrupt")


def test_error_wrapped_by_monai_compose_is_found():
    with pytest.raises(RuntimeError) as info:
        Compose([Lambda(_raise)])({"image": 1})
    error = find_input_error(info.value)
    assert str(error) == "/data/case_1_t1ce.nii.gz: file is truncated or corrupt"


class _Bad(torch.utils.data.Dataset):
    def __len__(self):
        return 2

    def __getitem__(self, i):
        return Compose([Lambda(_raise)])(i)


def test_error_raised_in_a_loader_worker_is_found():
    loader = torch.utils.data.DataLoader(_Bad(), num_workers=1)
    with pytest.raises(Exception) as info:
        next(iter(loader))
    error = find_input_error(info.value)
    assert error is not None
    assert str(error) == "/data/case_1_t1ce.nii.gz: file is truncated or corrupt"


def test_other_errors_are_left_alone():
    assert find_input_error(ValueError("something else")) is None
