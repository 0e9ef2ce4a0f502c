"""Cross-validation folds: disjoint, complete, saved with the run, and the same for every fold's run."""

from __future__ import annotations

import json
import re

import pytest
import torch

from brats3d.config import load_config
from brats3d.data.layouts import discover
from brats3d.errors import BratsInputError
from brats3d.training.data import fold_assignment, split_cases, write_split

IDS = [f"case_{i:02d}" for i in range(11)]


@pytest.mark.parametrize("folds", [2, 3, 5])
def test_folds_are_disjoint_complete_and_balanced(folds):
    assignment = fold_assignment(IDS, folds, seed=0)
    flat = [i for fold in assignment for i in fold]
    assert sorted(flat) == sorted(IDS) and len(flat) == len(set(flat))
    sizes = [len(f) for f in assignment]
    assert max(sizes) - min(sizes) <= 1


def test_assignment_depends_only_on_the_ids_and_the_seed():
    assert fold_assignment(IDS, 5, 0) == fold_assignment(list(reversed(IDS)), 5, 0)
    assert fold_assignment(IDS, 5, 0) != fold_assignment(IDS, 5, 1)


def test_too_few_cases_for_the_folds_is_a_clear_error():
    with pytest.raises(BratsInputError, match="5-fold cross-validation needs at least 5 cases, found 3"):
        fold_assignment(IDS[:3], 5)


# the ten shared BraTS 2018 cases: six institutions, four of them with two cases
SHARED_TEN = [
    "Brats18_2013_11_1", "Brats18_2013_3_1", "Brats18_CBICA_ABM_1", "Brats18_CBICA_ALU_1", "Brats18_TCIA01_201_1",
    "Brats18_TCIA01_378_1", "Brats18_TCIA02_135_1", "Brats18_TCIA02_370_1", "Brats18_TCIA10_628_1",
    "Brats18_TCIA13_623_1",
]  # fmt: skip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_site_folds_keep_each_institution_in_one_fold(seed):
    assignment = fold_assignment(SHARED_TEN, 5, seed, by="site")
    assert sorted(i for fold in assignment for i in fold) == sorted(SHARED_TEN)
    fold_of_site: dict[str, set[int]] = {}
    for k, fold in enumerate(assignment):
        for case_id in fold:
            fold_of_site.setdefault(case_id.split("_")[1], set()).add(k)
    assert all(len(folds) == 1 for folds in fold_of_site.values())
    assert sorted(len(f) for f in assignment) == [2, 2, 2, 2, 2]  # the two single-case sites share a fold
    assert fold_assignment(list(reversed(SHARED_TEN)), 5, seed, by="site") == assignment


def test_site_folds_need_site_ids_and_enough_sites():
    with pytest.raises(BratsInputError, match="'case_00' does not"):
        fold_assignment(IDS, 2, by="site")
    with pytest.raises(BratsInputError, match=re.escape("needs at least 4 sites, found 2 (2013, CBICA)")):
        fold_assignment(SHARED_TEN[:4], 4, by="site")


def test_a_site_split_of_cases_without_sites_fails_before_training(make_dataset):
    cases = discover(make_dataset("msd", cases=2, shape=(24, 24, 16))).labelled()
    config = load_config(None, ["data.folds=2", "data.fold_by=site", "data.patch_size=[16,16,16]"])
    with pytest.raises(BratsInputError, match="needs case ids that name their institution"):
        split_cases(cases, config)


def test_every_case_is_validated_exactly_once_across_the_fold_runs(make_dataset, tmp_path):
    cases = discover(make_dataset("msd", cases=5, shape=(24, 24, 16))).labelled()
    validated = []
    for k in range(3):
        config = load_config(None, ["data.folds=3", f"data.fold={k}", "data.patch_size=[16,16,16]"])
        train, val = split_cases(cases, config)
        assert not {c.case_id for c in train} & {c.case_id for c in val}
        assert len(train) + len(val) == len(cases)
        validated += [c.case_id for c in val]
        write_split(tmp_path / f"split_{k}.json", train, val, config)
        saved = json.loads((tmp_path / f"split_{k}.json").read_text())
        assert saved["fold"] == k and saved["validation"] == [c.case_id for c in val]
        assert saved["folds"] == fold_assignment([c.case_id for c in cases], 3, config.seed)
    assert sorted(validated) == sorted(c.case_id for c in cases)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.folds=1"], "data.folds must be 0 .off. or at least 2"),
        (["data.folds=5", "data.fold=5"], "0 <= data.fold < data.folds"),
        (["data.folds=5", "data.val_cases=[a]"], "data.folds and data.val_cases both choose"),
        (["data.folds=5", "data.fold_by=hospital"], "data.fold_by"),
    ],
)
def test_bad_fold_settings_are_refused(overrides, message):
    with pytest.raises(BratsInputError, match=message):
        load_config(None, overrides)


def test_no_validation_trains_on_every_case(make_dataset):
    cases = discover(make_dataset("msd", cases=3, shape=(24, 24, 16))).labelled()
    train, val = split_cases(cases, load_config(None, ["data.val_fraction=0", "data.patch_size=[16,16,16]"]))
    assert len(train) == 3 and val == []


def test_loader_workers_follow_the_device_and_the_cores(monkeypatch):
    from brats3d.training import data

    config = load_config(None)
    monkeypatch.setattr(data, "available_cores", lambda: 16)
    assert data.loader_workers(config, "cuda") == 12  # a GPU waits for augmentation: all cores but two, at most 12
    assert data.loader_workers(config, "cuda", world=4) == 2  # four ranks share the 16 cores
    assert data.loader_workers(config, "cpu") == 4
    monkeypatch.setattr(data, "available_cores", lambda: 2)
    assert data.loader_workers(config, "cpu") == 0  # workers would only compete with the training threads
    assert data.loader_workers(load_config(None, ["data.num_workers=3"]), "cuda") == 3


def test_an_epoch_draws_its_cases_in_one_loader_of_whole_permutations():
    from brats3d.training.data import train_loader

    config = load_config(None, ["train.batch_size=2", "data.patches_per_case=1"])
    dataset = [{"image": torch.full((1,), float(i))} for i in range(3)]
    order = [int(v) for b in train_loader(dataset, config, 7, 0, steps=6) for v in b["image"].flatten()]
    assert len(order) == 12 and all(sorted(order[i : i + 3]) == [0, 1, 2] for i in range(0, 12, 3))
    again = [int(v) for b in train_loader(dataset, config, 7, 0, steps=6) for v in b["image"].flatten()]
    assert again == order  # the epoch seed alone fixes the order (exact resume)
