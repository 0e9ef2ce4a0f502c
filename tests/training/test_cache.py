"""The memory-mapped cache: patches read from disk obey the tumour rule, stale cases (and only they) are redone,
an interrupted run goes on, and a bad case is named and skipped without a half-written entry."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from brats3d.cli import main
from brats3d.config import load_config
from brats3d.data.layouts import discover
from brats3d.training.cache import MANIFEST, MmapCaseDataset, open_case, preprocess
from brats3d.transforms import build_train_transforms

SMALL = ["data.patch_size=[32,32,16]", "data.patches_per_case=2", "train.batch_size=2"]


@pytest.fixture
def dataset(make_dataset):
    return make_dataset("brats2021", cases=3, shape=(48, 48, 32))


def test_patches_come_from_memory_maps_and_keep_the_tumour_rule(dataset, tmp_path):
    config = load_config(None, SMALL)
    cases = discover(dataset).labelled()
    done, failures = preprocess(cases, config, tmp_path / "cache", progress=False)
    assert sorted(done) == sorted(c.case_id for c in cases) and not failures
    item = open_case(tmp_path / "cache" / cases[0].case_id)
    assert isinstance(item["image"], np.memmap) and item["image"].dtype == np.float16
    assert isinstance(item["label"], np.memmap) and item["label"].dtype == np.uint8
    transform = build_train_transforms(**config.train_transform_arguments(unbiased_fraction=0.0, augment=None))
    data = MmapCaseDataset(tmp_path / "cache", cases, transform)
    for i in range(len(data)):
        for patch in data[i]:
            assert tuple(patch["image"].shape) == (4, 32, 32, 16) and patch["image"].dtype.is_floating_point
            assert float(patch["label"][0].sum()) >= 0.05 * 32 * 32 * 16  # whole-tumour channel, the >= 5 % rule


def test_only_a_changed_case_is_preprocessed_again(dataset, tmp_path):
    config = load_config(None, SMALL)
    cases = discover(dataset).labelled()
    preprocess(cases, config, tmp_path / "cache", progress=False)
    assert preprocess(cases, config, tmp_path / "cache", progress=False) == ([], [])
    changed = cases[1].images[2]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    assert preprocess(cases, config, tmp_path / "cache", progress=False) == ([cases[1].case_id], [])
    other = load_config(None, [*SMALL, "data.min_tumour_fraction=0.1"])  # a setting that shapes the index
    assert len(preprocess(cases, other, tmp_path / "cache", progress=False)[0]) == 3
    flattened = load_config(None, [*SMALL, "data.min_tumour_fraction=0.1", "data.normalisation=flattened"])
    assert len(preprocess(cases, flattened, tmp_path / "cache", progress=False)[0]) == 3  # and one that shapes voxels
    mirrored = load_config(  # and one that adds channels
        None, [*SMALL, "data.min_tumour_fraction=0.1", "data.normalisation=flattened", "data.mirror_difference=true"]
    )
    assert len(preprocess(cases, mirrored, tmp_path / "cache", progress=False)[0]) == 3
    assert open_case(tmp_path / "cache" / cases[0].case_id)["image"].shape[0] == 8


def test_the_dataset_spacing_shapes_the_cache_only_with_resampling_on(dataset, tmp_path):
    cases = discover(dataset).labelled()
    config = load_config(None, SMALL)

    def tumour_voxels() -> int:
        return int(np.count_nonzero(open_case(tmp_path / "cache" / cases[0].case_id)["label"]))

    preprocess(cases, config, tmp_path / "cache", progress=False)
    as_is = tumour_voxels()
    assert len(preprocess(cases, config, tmp_path / "cache", progress=False, spacing=[2.0, 2.0, 2.0])[0]) == 3
    assert 0.8 < tumour_voxels() * 8 / as_is < 1.2  # 2 mm voxels: an eighth as many for the same tumour
    off = load_config(None, [*SMALL, "data.resample=false"])
    assert len(preprocess(cases, off, tmp_path / "cache", progress=False, spacing=[2.0, 2.0, 2.0])[0]) == 3
    assert tumour_voxels() == as_is


def test_an_interrupted_preprocess_goes_on_where_it_stopped(dataset, tmp_path):
    config = load_config(None, SMALL)
    cases = discover(dataset).labelled()
    preprocess(cases[:1], config, tmp_path / "cache", progress=False)  # as if killed after the first case
    (tmp_path / "cache" / f".{cases[1].case_id}.99999.tmp").mkdir()  # and mid-way through the second
    done, _ = preprocess(cases, config, tmp_path / "cache", progress=False)
    assert done == [c.case_id for c in cases[1:]]


def test_a_corrupt_case_is_named_and_skipped_with_a_non_zero_exit(dataset, tmp_path, capsys):
    cases = discover(dataset).labelled()
    bad = cases[1].label
    img_bytes = bad.read_bytes()
    bad.write_bytes(img_bytes[: len(img_bytes) // 2])
    out = tmp_path / "cache"
    args = ["preprocess", str(dataset), "--out", str(out), "--workers", "1"]
    assert main([*args, *[f"--set={s}" for s in SMALL]]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: file is truncated" in err and "1 of 3 cases failed (listed above); the others are done" in err
    assert sorted(p.name for p in out.iterdir()) == sorted(c.case_id for c in (cases[0], cases[2]))
    assert all(json.loads((out / c.case_id / MANIFEST).read_text())["shape"][0] == 4 for c in (cases[0], cases[2]))


def test_auto_cache_keeps_cases_in_memory_only_when_they_fit(dataset, monkeypatch):
    from brats3d.training import data as training_data

    cases = discover(dataset).labelled()
    config = load_config(None, [*SMALL, "data.cache=auto"])
    needed = sum(48 * 48 * 32 for _ in cases) * training_data.CACHED_BYTES_PER_VOXEL
    monkeypatch.setattr(training_data, "available_memory", lambda: int(needed * 10))
    assert training_data.choose_cache(cases, config) == "memory"
    assert training_data.choose_cache(cases, config, world=8) == "mmap"  # eight ranks on one machine each cache
    monkeypatch.setattr(training_data, "available_memory", lambda: int(needed))
    assert training_data.choose_cache(cases, config) == "mmap"
    assert training_data.choose_cache(cases, load_config(None, [*SMALL, "data.cache=memory"])) == "memory"


def test_an_open_case_stays_mapped_up_to_the_bound(dataset, tmp_path):
    config = load_config(None, SMALL)
    cases = discover(dataset).labelled()
    preprocess(cases, config, tmp_path / "cache", progress=False)
    chain = build_train_transforms(**config.train_transform_arguments())
    ds = MmapCaseDataset(tmp_path / "cache", cases, chain, keep_open=2)
    for i in (0, 1, 0, 2):
        ds[i]
    assert list(ds._open) == [0, 2]  # 1 was least recently used
