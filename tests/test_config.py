import dataclasses
import inspect
import json
import re

import pytest
import yaml

from brats3d.config import RunConfig, SliceRunConfig, config_from_dict, load_config
from brats3d.errors import BratsInputError
from brats3d.transforms import Augmentation, build_train_transforms


def _write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_shipped_configs_are_valid():
    from brats3d.config import PACKAGED_CONFIGS

    configs = sorted(PACKAGED_CONFIGS.glob("*.yaml"))
    assert {p.name for p in configs} >= {"demo.yaml", "unet3d.yaml", "vnet.yaml", "lgg2d.yaml", "binary2d.yaml"}
    for path in configs:
        expected = SliceRunConfig if "kind: slices2d" in path.read_text() else RunConfig
        assert isinstance(load_config(path), expected)
        assert isinstance(config_from_dict(load_config(path).to_dict()), expected)  # what a checkpoint rebuilds
    assert load_config(configs[0].parent / "vnet.yaml").model.network == "vnet"
    assert load_config(configs[0].parent / "unet3d.yaml").data.patch_size == [160, 160, 16]


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(BratsInputError, match=r"c.yaml: unknown config key train.epoch \(known:"):
        load_config(_write(tmp_path, "train:\n  epoch: 3\n"))


def test_mistyped_value_is_named(tmp_path):
    with pytest.raises(BratsInputError, match=r"config key 'train.epochs' must be int, got 'many'"):
        load_config(_write(tmp_path, "train:\n  epochs: many\n"))
    with pytest.raises(BratsInputError, match=r"'model.network'|model.target"):
        load_config(_write(tmp_path, "model:\n  target: blobs\n"))


def test_overrides_and_yaml_exponent_floats(tmp_path):
    config = load_config(_write(tmp_path, "train:\n  lr: 1e-3\n"), ["train.epochs=5", "data.patch_size=[32,32,16]"])
    assert config.train.lr == pytest.approx(1e-3)
    assert config.train.epochs == 5 and config.data.patch_size == [32, 32, 16]
    with pytest.raises(BratsInputError, match=r"unknown config key data\.patchsize"):
        load_config(None, ["data.patchsize=[1,2,3]"])


def test_cross_field_rules():
    with pytest.raises(BratsInputError, match=r"multiple of data\.patches_per_case"):
        load_config(None, ["train.batch_size=3", "data.patches_per_case=2"])
    for config in (None, "demo2d"):  # the 3D and the 2D schema share the training keys
        with pytest.raises(BratsInputError, match=r"train\.ema_decay must lie in \[0, 1\)"):
            load_config(config, ["train.ema_decay=1.0"])
        for setting, message in (
            ("train.lr=-1", "train.lr must be > 0, got -1.0"),
            ("train.lr=0", "train.lr must be > 0, got 0.0"),
            ("train.batch_size=0", "train.batch_size must be >= 1, got 0"),
            ("train.max_minutes=0", "train.max_minutes must be > 0, got 0.0"),
            ("train.weight_decay=-0.1", "train.weight_decay must be >= 0, got -0.1"),
        ):  # before these, a typo surfaced as the optimiser's or the loader's traceback
            with pytest.raises(BratsInputError, match=re.escape(message)):
                load_config(config, [setting])
    assert load_config(None, ["train.grad_clip=0", "train.threads=0"]).train.grad_clip == 0  # 0: off, and auto
    with pytest.raises(BratsInputError, match=r"data\.bias_field_prob must lie in \[0, 1\]"):
        load_config(None, ["data.bias_field_prob=1.5"])
    with pytest.raises(BratsInputError, match=r"data\.elastic_prob must lie in \[0, 1\]"):
        load_config(None, ["data.elastic_prob=1.5"])
    with pytest.raises(BratsInputError, match=r"data\.modality_dropout_prob must lie in \[0, 1\]"):
        load_config(None, ["data.modality_dropout_prob=-0.2"])
    for config in (None, "demo2d"):  # a setting that would change nothing is refused
        with pytest.raises(BratsInputError, match=r"loss\.squared: false applies to dice, .*'tversky'"):
            load_config(config, ["loss.name=tversky", "loss.squared=false"])
    assert not load_config(None, ["loss.squared=false"]).loss.squared
    both = r"data\.contrast_prob and data\.low_resolution_prob must lie in \[0, 1\]"
    with pytest.raises(BratsInputError, match=both):
        load_config(None, ["data.contrast_prob=-0.1", "data.low_resolution_prob=2"])
    with pytest.raises(BratsInputError, match=r"bias_field_prob needs data\.normalisation: brain"):
        load_config(None, ["data.bias_field_prob=0.3", "data.normalisation=slice"])
    assert load_config(None, ["data.bias_field_prob=0.3", "data.normalisation=flattened"]).data.bias_field_prob == 0.3
    with pytest.raises(BratsInputError, match=r"data\.rotation_degrees must lie in \[0, 180\] and data\.scaling"):
        load_config(None, ["data.scaling=1.5"])
    for axes in ("[0,0]", "[3]"):
        with pytest.raises(BratsInputError, match=r"data\.flip_axes must be distinct axes among 0, 1 and 2"):
            load_config(None, [f"data.flip_axes={axes}"])
    assert load_config(None, ["data.flip_axes=[]"]).data.flip_axes == []  # no flips at all
    with pytest.raises(BratsInputError, match=r"inference\.window: unet3d needs every patch dimension divisible by 16"):
        load_config(None, ["inference.window=[160,160,20]"])


def test_the_inference_window_is_the_training_patch_unless_the_recipe_sets_one():
    assert load_config(None, ["data.patch_size=[96,96,32]"]).inference_window == [96, 96, 32]
    deeper = load_config(None, ["inference.window=[160,160,48]"])
    assert deeper.inference_window == [160, 160, 48] and deeper.data.patch_size == [160, 160, 16]


def test_every_training_transform_setting_comes_from_the_config():
    arguments = load_config(None, ["data.intensity_per_channel=true"]).train_transform_arguments()
    assert set(arguments) == set(inspect.signature(build_train_transforms).parameters)  # none left at its default
    assert arguments["augment"].intensity_per_channel is True


def test_every_augmentation_setting_is_read_from_its_data_key():
    changed = {
        "flip_axes": [0],
        "rotation_degrees": 30.0,
        "scaling": 0.2,
        "elastic_prob": 0.1,
        "bias_field_prob": 0.2,
        "noise_std": 0.05,
        "intensity_per_channel": True,
        "contrast_prob": 0.3,
        "channel_contrast_prob": 0.4,
        "inverted_gamma_prob": 0.5,
        "low_resolution_prob": 0.6,
        "modality_dropout_prob": 0.7,
    }
    assert set(changed) == {f.name for f in dataclasses.fields(Augmentation)}  # a new setting gets a case here
    config = load_config(None, [f"data.{key}={json.dumps(value)}" for key, value in changed.items()])
    assert config.data.augmentation() == Augmentation(**{**changed, "flip_axes": (0,)})
    assert load_config(None, []).data.augmentation() == Augmentation()  # the recipes' defaults have one owner
    assert load_config(None, ["data.augment=false", "data.elastic_prob=0.5"]).data.augmentation() is None


def test_saved_config_round_trips(tmp_path):
    config = load_config(None, ["train.epochs=7", "model.kwargs={channels: [8, 16]}"])
    config.save(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == config
    assert config_from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == config


def test_2d_and_3d_settings_are_not_mixed(tmp_path):
    with pytest.raises(BratsInputError, match="unet3d is a 3D"):
        load_config("lgg2d", ["model.network=unet3d"])
    with pytest.raises(BratsInputError, match="normalisation of a 3D config must be one of brain, slice, flattened"):
        load_config(None, ["data.normalisation=dataset"])
    with pytest.raises(BratsInputError, match="image_size must be two sizes"):
        load_config("lgg2d", ["data.image_size=[64,64,16]"])
