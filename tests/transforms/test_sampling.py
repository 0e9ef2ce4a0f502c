import itertools

import numpy as np
import pytest

from brats3d.transforms.sampling import FindTumourPatchesd, RandTumourPatchd, tumour_patch_counts


def _volume(shape=(30, 28, 20), seed=0):
    rng = np.random.default_rng(seed)
    label = np.zeros(shape, dtype=np.uint8)
    label[8:20, 6:18, 5:14] = rng.integers(1, 4, size=(12, 12, 9))
    image = rng.normal(size=(4, *shape)).astype(np.float32)
    return {"image": image, "label": label[None]}


def test_counts_match_brute_force():
    rng = np.random.default_rng(1)
    tumour = rng.random((9, 8, 7)) < 0.3
    patch = (4, 3, 5)
    counts = tumour_patch_counts(tumour, patch)
    assert counts.shape == (6, 6, 3)
    for x, y, z in itertools.product(*(range(s) for s in counts.shape)):
        assert counts[x, y, z] == tumour[x : x + 4, y : y + 3, z : z + 5].sum()


def test_patch_larger_than_volume_is_refused():
    with pytest.raises(ValueError, match="larger than the volume"):
        tumour_patch_counts(np.zeros((4, 4, 4), bool), (8, 4, 4))


@pytest.mark.parametrize("min_fraction", [0.05, 0.2])
def test_every_biased_patch_meets_the_tumour_rule(min_fraction):
    patch = (16, 16, 8)
    data = FindTumourPatchesd(patch, min_fraction)(_volume())
    assert data["patch_rule"] == "tumour"
    sampler = RandTumourPatchd(["image", "label"], patch, num_samples=500, unbiased_fraction=0.0)
    sampler.set_random_state(0)
    patches = sampler(data)
    fractions = np.array([(np.asarray(p["label"]) > 0).mean() for p in patches])
    assert len(patches) == 500
    assert fractions.min() >= min_fraction
    # Image and label come from the same window.
    for p in patches[:20]:
        x, y, z = p["patch_start"]
        np.testing.assert_array_equal(p["image"], data["image"][:, x : x + 16, y : y + 16, z : z + 8])


def test_unbiased_share_draws_background_patches_too():
    patch = (16, 16, 8)
    data = _volume(shape=(80, 80, 40))  # tumour in one corner: most uniform patches miss it
    data = FindTumourPatchesd(patch, 0.05)(data)
    sampler = RandTumourPatchd(["image", "label"], patch, num_samples=2000, unbiased_fraction=0.5)
    sampler.set_random_state(3)
    fractions = np.array([(np.asarray(p["label"]) > 0).mean() for p in sampler(data)])
    low = (fractions < 0.05).mean()
    assert 0.2 < low < 0.5  # some of the uniform draws miss the tumour; the biased half never does


def test_same_seed_same_patches():
    patch = (16, 16, 8)
    data = FindTumourPatchesd(patch)(_volume())
    starts = []
    for _ in range(2):
        sampler = RandTumourPatchd(["image", "label"], patch, num_samples=10, unbiased_fraction=0.2)
        sampler.set_random_state(42)
        starts.append([tuple(p["patch_start"]) for p in sampler(data)])
    assert starts[0] == starts[1]


def test_small_tumour_falls_back_to_the_most_tumorous_patches():
    data = _volume()
    data["label"][:] = 0
    data["label"][0, 10:12, 10:12, 10:12] = 3  # 8 voxels: no 16x16x8 patch can be 5 % tumour
    found = FindTumourPatchesd((16, 16, 8), 0.05)(data)
    assert found["patch_rule"] == "fallback"
    sampler = RandTumourPatchd(["image", "label"], (16, 16, 8), num_samples=50)
    sampler.set_random_state(0)
    assert all((p["label"] > 0).sum() >= 4 for p in sampler(found))


def test_no_tumour_means_uniform_patches():
    data = _volume()
    data["label"][:] = 0
    found = FindTumourPatchesd((16, 16, 8), 0.05)(data)
    assert found["patch_rule"] == "none"
    sampler = RandTumourPatchd(["image", "label"], (16, 16, 8), num_samples=5)
    assert all(p["image"].shape == (4, 16, 16, 8) for p in sampler(found))


def test_unbiased_patches_are_centred_in_the_brain():
    data = _volume(shape=(80, 80, 40))
    data["image"][:, :, :40] = 0  # half the volume is background outside the brain
    found = FindTumourPatchesd((16, 16, 8), 0.05)(data)
    sampler = RandTumourPatchd(["image", "label"], (16, 16, 8), num_samples=300, unbiased_fraction=1.0)
    sampler.set_random_state(1)
    for p in sampler(found):
        x, y, z = p["patch_start"] + np.array([8, 8, 4])
        assert np.any(data["image"][:, x, y, z] != 0)


def _edema_with_small_rim():
    """A large edema block with a small enhancing blob in one corner: uniform tumour patches rarely see it."""
    label = np.zeros((60, 60, 30), dtype=np.uint8)
    label[10:50, 10:50, 5:25] = 1
    label[12:15, 12:15, 6:9] = 3
    image = np.ones((4, 60, 60, 30), dtype=np.float32)
    return {"image": image, "label": label[None]}


@pytest.mark.parametrize("balance", [False, True])
def test_class_balance_shows_the_rare_class_in_about_half_the_patches(balance):
    patch = (16, 16, 8)
    found = FindTumourPatchesd(patch, 0.05, class_balance=balance)(_edema_with_small_rim())
    sampler = RandTumourPatchd(["image", "label"], patch, num_samples=1000, unbiased_fraction=0.0)
    sampler.set_random_state(5)
    patches = sampler(found)
    with_rim = np.mean([(p["label"] == 3).any() for p in patches])
    assert (
        min((np.asarray(p["label"]) > 0).mean() for p in patches) >= 0.05
    )  # the tumour rule still holds for every patch
    if balance:  # two classes present: half the draws go to the enhancing one
        assert 0.4 < with_rim < 0.65, with_rim
    else:
        assert with_rim < 0.1, with_rim


def test_hard_patches_are_drawn_at_their_share_and_only_for_their_case():
    patch = (16, 16, 8)
    data = FindTumourPatchesd(patch, 0.05)({**_volume(shape=(80, 80, 40)), "case_id": "a"})
    hard = [(60, 60, 30), (0, 0, 0)]
    sampler = RandTumourPatchd(["image", "label"], patch, num_samples=2000, unbiased_fraction=0.5, hard_fraction=0.3)
    sampler.set_hard_starts({"a": hard})
    sampler.set_random_state(5)
    starts = [tuple(int(s) for s in p["patch_start"]) for p in sampler(data)]
    share = np.mean([s in hard for s in starts])
    assert 0.25 < share < 0.35  # plus the rare ordinary draw that lands on one of them
    assert {s for s in starts if s in hard} == set(hard)

    sampler.set_random_state(5)
    other = sampler({**data, "case_id": "b"})  # no pool for this case: ordinary draws, as without hard sampling
    plain = RandTumourPatchd(["image", "label"], patch, num_samples=2000, unbiased_fraction=0.5)
    plain.set_random_state(5)
    expected = plain(data)
    assert [tuple(p["patch_start"]) for p in other] == [tuple(p["patch_start"]) for p in expected]
