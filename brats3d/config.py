"""Typed, validated run configuration: one schema for every YAML in configs/ and for ``--set`` overrides.

Unknown or mistyped keys are errors that name the key, so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from brats3d.data.io import READERS
from brats3d.data.layouts import Layout
from brats3d.data.slices import SliceLayout
from brats3d.data.targets import TARGETS
from brats3d.errors import BratsInputError
from brats3d.files import atomic_path
from brats3d.models.device import AMP_CHOICES
from brats3d.models.losses import LOSSES, SQUARABLE
from brats3d.models.registry import check_network
from brats3d.transforms.intensity import NORMALISATIONS
from brats3d.transforms.pipeline import EVERY_AXIS, RECIPE_AUGMENTATION, Augmentation
from brats3d.transforms.postprocess import PostProcessing


@dataclass
class DataConfig:
    root: str | None = None  # dataset directory; `--data` overrides it
    layout: str | None = None  # msd | brats2021 | brats2023; detected when None
    # share of cases held out for validation; 0 trains on every case and keeps the final weights as best.pt
    val_fraction: float = 0.2
    val_cases: list[str] = field(default_factory=list)  # explicit validation case ids (overrides val_fraction)
    folds: int = 0  # k-fold cross-validation: split the cases into this many folds (0: off)
    fold: int = 0  # with folds: the fold validated by this run (0 .. folds-1); the others train
    # with folds: case (shuffled cases) | site (each institution's cases in one fold; BraTS 2017-2019 case ids)
    fold_by: str = "case"
    patch_size: list[int] = field(default_factory=lambda: [160, 160, 16])
    min_tumour_fraction: float = 0.05  # a patch is kept only when at least this share of it is tumour
    unbiased_fraction: float = 0.1  # share of patches drawn uniformly, to show the network healthy brain
    # share of draws that revisit patches where training found false positives (training/hard_negatives.py)
    hard_negative_fraction: float = 0.0
    class_balance: bool = True  # tumour-biased draws pick a tumour class first, then a patch rich in it
    patches_per_case: int = 4
    # brain: per channel over brain voxels | slice: per channel and axial slice | flattened: each channel's smooth
    # intensity field divided out first, then as brain (transforms/intensity.py)
    normalisation: str = "brain"
    # each channel's left-right asymmetry as four more network inputs: the channel minus its mirror image across the
    # brain's mid-sagittal plane (transforms/symmetry.py); for atlas-registered scans such as BraTS and the Decathlon
    # (off in the recipes: cross-validated behind on tumour core, BENCHMARKS.md)
    mirror_difference: bool = False
    reader: str = "nibabel"  # nibabel | itk
    # cases whose voxel spacing is over 10 % from the median of the dataset's labelled cases are resampled to it for
    # training, as nnU-Net does (transforms/resampling.py); false: every case as it is
    resample: bool = True
    # memory (CacheDataset) | disk (PersistentDataset) | mmap (preprocessed once, memory-mapped; training/cache.py)
    # | none | auto: memory when the cases fit half the available RAM, else mmap (as fast: BENCHMARKS.md)
    cache: str = "auto"
    cache_rate: float = 1.0
    cache_dir: str | None = None  # for cache: disk or mmap (e.g. a `brats3d preprocess` folder); default RUN_DIR/cache
    num_workers: int | None = None  # loader processes; None: from the cores (GPU: all but 2, up to 12; CPU: 0 on <= 4)
    augment: bool = True  # flips, small in-plane rotation/scaling, gamma, intensity scale/shift, noise, blur
    noise_std: float = RECIPE_AUGMENTATION.noise_std  # standard deviation of the Gaussian-noise augmentation (0: none)
    low_resolution_prob: float = 0.0  # chance a patch is resampled at 0.5-1x resolution and back (nnU-Net's)
    contrast_prob: float = 0.0  # chance a patch's contrast is scaled by 0.75-1.25 about its mean (nnU-Net's)
    # in-plane rotation of up to this angle, for one patch in five
    rotation_degrees: float = RECIPE_AUGMENTATION.rotation_degrees
    scaling: float = RECIPE_AUGMENTATION.scaling  # in-plane scaling by 1 +- this, for one patch in five
    elastic_prob: float = 0.0  # chance a patch is deformed elastically in-plane, a few voxels (transforms/spatial.py)
    bias_field_prob: float = 0.0  # chance a drawn case gets a smooth coil-like gain (1.5-1.8-fold over the brain)
    intensity_per_channel: bool = False  # intensity scale and shift drawn for each MRI channel, not one for all four
    # chance a patch's MRI channels each get their own contrast to the brain mean, scaled by 0.65-1.5 (pipeline.py)
    channel_contrast_prob: float = 0.0
    # chance a patch gets nnU-Net's inverted gamma (0.7-1.5 on the negated intensities, mean and SD kept): it
    # stretches or squeezes the bright end, where oedema on FLAIR and enhancing tumour on T1ce lie (pipeline.py)
    inverted_gamma_prob: float = 0.0
    # chance one MRI sequence of a patch is zeroed, so no sequence's look at one site is relied on (intensity.py;
    # off in the recipes: behind on tumour core in random folds, BENCHMARKS.md)
    modality_dropout_prob: float = 0.0
    # array axes (RAS: 0 left-right, 1 back-front, 2 down-up) a patch is flipped across, each with chance 0.5; flip
    # TTA averages over the same axes, so a network only sees orientations it trained on
    flip_axes: list[int] = field(default_factory=lambda: list(EVERY_AXIS))

    def augmentation(self) -> Augmentation | None:
        """The patch augmentation these keys describe (``transforms.Augmentation``); None when ``augment`` is off."""
        if not self.augment:
            return None
        named = {f.name: getattr(self, f.name) for f in dataclasses.fields(Augmentation)}
        return Augmentation(**{**named, "flip_axes": tuple(self.flip_axes)})


@dataclass
class ModelConfig:
    network: str = "unet3d"  # unet3d | vnet | segresnet | attention_unet | unetr | swin_unetr
    target: str = "regions"  # regions: WT/TC/ET with sigmoid | classes: 4 classes with softmax, summed into regions
    kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the MONAI network's constructor


@dataclass
class LossConfig:
    name: str = "dice"  # dice (soft Dice, squared denominator) | dice_ce | dice_focal | tversky
    smooth: float = 1e-5
    squared: bool = True  # Dice denominators Σp² + Σq² (V-Net's) or Σp + Σq (nnU-Net's); dice, dice_ce, dice_focal


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 4  # patches per optimiser step; a multiple of data.patches_per_case
    steps_per_epoch: int | None = None  # None: one pass over the training cases
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-5
    scheduler: str = "cosine"  # cosine | poly (nnU-Net's (1 - progress) ** 0.9) | none
    warmup_epochs: int = 0
    # auto: bf16 on CUDA where supported (else fp16), fp32 on CPUs | bf16: also on CPUs with AVX512-BF16 and no AMX,
    # fp32 on other CPUs (models/device.py says why) | fp16 | off
    amp: str = "auto"
    grad_clip: float | None = 12.0
    # Polyak averaging: > 0 keeps an exponential moving average of the weights (this decay per step), which
    # validation, best.pt and last.pt's predicting weights use; 0.995 spans about the last 200 steps. 0: off.
    ema_decay: float = 0.0
    patience: int | None = None  # stop after this many validations without improvement
    # wall-clock budget, counted across --resume: the cosine schedule ends with it, and the epoch that crosses it is
    # the last (and validated)
    max_minutes: float | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    threads: int | None = None  # CPU threads for torch; None: the cores available minus the loader processes
    checkpoint_minutes: float = 1.0  # write last.pt at most this often (and always after the last epoch)


@dataclass
class ValidationConfig:
    every: int = 1  # validate every N epochs (and after the last)
    overlap: float = 0.5
    sw_batch_size: int = 4
    threshold: float = 0.5
    max_cases: int | None = None


@dataclass
class InferenceConfig:
    # Average each window's logits over the flips across data.flip_axes (8 for all three axes) in `brats3d predict`
    # and `evaluate` (unless --tta/--no-tta says otherwise): 8x the inference compute; not used by validation.
    tta: bool = False
    # Sliding-window size of predict, evaluate and whole-scan validation; None: the training patch. A fully
    # convolutional network takes a window deeper than its patches: more context across slices, fewer seams.
    window: list[int] | None = None


class _Saved:
    """What every run config does the same way: a plain dict, its YAML file, and whether it holds cases out."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def validates(self) -> bool:
        """Whether this run holds cases out for validation (folds, explicit cases or a fraction)."""
        return bool(self.data.folds or self.data.val_cases or self.data.val_fraction > 0)

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            tmp.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


@dataclass
class RunConfig(_Saved):
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    # The rules `brats3d predict` applies to this recipe's models unless the run has its own postprocessing.json
    # (from `brats3d postprocess`) or the command line says otherwise; the packaged recipes carry the rules their
    # cross-validation chose.
    postprocessing: PostProcessing = field(default_factory=PostProcessing)

    @property
    def inference_window(self) -> list[int]:
        """The sliding window that predicts whole scans: ``inference.window``, else the training patch."""
        return list(self.inference.window or self.data.patch_size)

    def train_transform_arguments(self, spacing: Sequence[float] | None = None, **changes: Any) -> dict[str, Any]:
        """Arguments of ``transforms.build_train_transforms`` that this config describes (``changes`` win);
        ``spacing`` is the dataset's median voxel spacing, which cases are resampled to with ``data.resample``."""
        d = self.data
        arguments = {
            "spacing": [float(v) for v in spacing] if spacing is not None and d.resample else None,
            "patch_size": d.patch_size,
            "min_tumour_fraction": d.min_tumour_fraction,
            "unbiased_fraction": d.unbiased_fraction,
            "hard_negative_fraction": d.hard_negative_fraction,
            "class_balance": d.class_balance,
            "samples_per_case": d.patches_per_case,
            "target": self.model.target,
            "normalisation": d.normalisation,
            "mirror_difference": d.mirror_difference,
            "reader": d.reader,
            "augment": d.augmentation(),
        }
        return {**arguments, **changes}


SLICES = "slices2d"  # the `kind` of a 2D config


@dataclass
class SliceDataConfig:
    root: str | None = None  # dataset folder; `--data` overrides it
    layout: str | None = None  # lgg | paired; detected when None
    patient_pattern: str | None = None  # paired layout: a regex whose first group is the patient id in a file name
    class_values: list[int] | None = None  # mask value of each class (index = class); None: read from the masks
    image_size: list[int] = field(default_factory=lambda: [256, 256])  # the network's input (H, W); images resized
    # dataset: each channel scaled by its mean and standard deviation over the training images (kept in the run, so
    # every slice of a patient is scaled alike, as the slices' shared windowing intends) | image: z-score per image
    normalisation: str = "dataset"
    channel_mean: list[float] | None = None  # filled in at training with normalisation: dataset
    channel_std: list[float] | None = None
    val_fraction: float = 0.2  # share of patients held out for validation
    val_cases: list[str] = field(default_factory=list)  # explicit validation patient ids
    folds: int = 0  # k-fold cross-validation by patient (0: off)
    fold: int = 0
    augment: bool = True  # flips, rotation, scaling, contrast, brightness, noise, blur
    num_workers: int | None = None  # loader processes; None: from the cores, as in 3D

    @property
    def patches_per_case(self) -> int:
        """One training sample per drawn slice (the loader and step count are shared with 3D)."""
        return 1


@dataclass
class SliceModelConfig:
    network: str = "unet2d"  # unet2d | resunet2d | attention_unet2d | unetplusplus2d | segresnet2d | fcn2d
    in_channels: int | None = None  # image channels (1 grey, 3 RGB); None: from the data at training
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class SliceValidationConfig:
    every: int = 1
    threshold: float = 0.5  # binary tasks: probability above which a pixel is foreground
    max_cases: int | None = None


@dataclass
class SliceRunConfig(_Saved):
    """A 2D slice task (``kind: slices2d`` in its YAML); trains through the same Trainer as 3D."""

    kind: str = SLICES
    seed: int = 0
    data: SliceDataConfig = field(default_factory=SliceDataConfig)
    model: SliceModelConfig = field(default_factory=SliceModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation: SliceValidationConfig = field(default_factory=SliceValidationConfig)


AnyConfig = RunConfig | SliceRunConfig

# Allowed values per key; lists owned elsewhere are taken from their owner.
CHOICES = {
    "data.layout": (None, *(layout.value for layout in Layout), *(layout.value for layout in SliceLayout)),
    "data.normalisation": (*NORMALISATIONS, "dataset", "image"),  # 3D: NORMALISATIONS; 2D: dataset | image
    "data.reader": READERS,
    "data.cache": ("memory", "disk", "mmap", "none", "auto"),
    "data.fold_by": ("case", "site"),
    "model.target": tuple(TARGETS),
    "loss.name": LOSSES,
    "train.optimizer": ("adamw", "adam", "sgd"),
    "train.scheduler": ("cosine", "poly", "none"),
    "train.amp": AMP_CHOICES,
    "kind": (SLICES,),
}


def _check_value(value: Any, annotation: Any, where: str, source: object) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_value(value, inner[0], where, source)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise BratsInputError(source, f"config key {where!r} must be a mapping, got {value!r}")
        return _build(annotation, value, where, source)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise BratsInputError(source, f"config key {where!r} must be a list, got {value!r}")
        return [_check_value(v, args[0], f"{where}[]", source) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise BratsInputError(source, f"config key {where!r} must be a mapping, got {value!r}")
        return dict(value)
    if annotation is Any:
        return value
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):  # PyYAML reads "1e-3" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (str, bool) and isinstance(value, annotation):
        return value
    if annotation is str and isinstance(value, bool):  # YAML 1.1 reads a bare off/on as a boolean
        return "on" if value else "off"
    raise BratsInputError(source, f"config key {where!r} must be {annotation.__name__}, got {value!r}")


def _build(cls: type, data: dict, prefix: str, source: object):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = ", ".join(f"{prefix}.{k}".lstrip(".") for k in unknown)
        raise BratsInputError(source, f"unknown config key {where} (known: {', '.join(sorted(names))})")
    values = {k: _check_value(v, hints[k], f"{prefix}.{k}".lstrip("."), source) for k, v in data.items()}
    obj = cls(**values)
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}".lstrip(".")
        if key in CHOICES and getattr(obj, f.name) not in CHOICES[key]:
            raise BratsInputError(
                source,
                f"config key {key!r} must be one of {[c for c in CHOICES[key] if c]}, got {getattr(obj, f.name)!r}",
            )
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.epochs=5`` -> (["train", "epochs"], 5); the value is read as YAML (numbers, lists, null)."""
    if "=" not in text:
        raise BratsInputError(None, f"--set expects KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(value)


PACKAGED_CONFIGS = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = "unet3d"


def packaged_configs() -> list[str]:
    """Names of the configs shipped inside the package (``--config NAME``)."""
    return sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml"))


def resolve_config(name_or_path: str | Path) -> Path:
    """A config file: the path itself when it exists, else the packaged config of that name
    (``unet3d``, ``configs/unet3d.yaml`` and ``unet3d.yaml`` all find the packaged ``unet3d``)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / f"{path.name.removesuffix('.yaml')}.yaml"
    if packaged.is_file():
        return packaged
    raise BratsInputError(
        path, f"config file not found, and no packaged config of that name (packaged: {', '.join(packaged_configs())})"
    )


def load_config(path: str | Path | None = None, overrides: list[str] = ()) -> AnyConfig:
    """Read a YAML config (a path or a packaged name; None: the schema defaults), apply ``--set`` overrides, and
    validate everything. A config with ``kind: slices2d`` is a 2D ``SliceRunConfig``, any other a 3D ``RunConfig``."""
    raw: dict[str, Any] = {}
    source: object = path
    if path is not None:
        path = resolve_config(path)
        source = path
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise BratsInputError(path, f"not valid YAML ({str(exc).splitlines()[0]})") from exc
        if not isinstance(raw, dict):
            raise BratsInputError(path, "a config file must be a mapping of sections")
    for text in overrides:
        keys, value = parse_override(text)
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise BratsInputError(source, f"--set {text}: {k!r} is not a section")
        node[keys[-1]] = value
    if raw.get("kind") == SLICES:
        config = _build(SliceRunConfig, raw, "", source)
        validate_slices(config, source)
        return config
    config = _build(RunConfig, raw, "", source)
    validate(config, source)
    return config


def config_from_dict(data: dict) -> AnyConfig:
    """Rebuild a saved (resolved) config, e.g. from a checkpoint."""
    return _build(SliceRunConfig if data.get("kind") == SLICES else RunConfig, data, "", "config")


def validate(config: RunConfig, source: object = None) -> None:
    """Cross-field checks that a single key's type cannot express."""
    d, t = config.data, config.train
    if len(d.patch_size) != 3 or min(d.patch_size) < 8:
        raise BratsInputError(source, f"data.patch_size must be three sizes >= 8, got {d.patch_size}")
    shares = (
        "min_tumour_fraction",
        "unbiased_fraction",
        "hard_negative_fraction",
        "bias_field_prob",
        "elastic_prob",
        "contrast_prob",  # MONAI would clip a share outside [0, 1] silently
        "channel_contrast_prob",
        "inverted_gamma_prob",
        "modality_dropout_prob",
        "low_resolution_prob",
    )
    outside = [f"data.{name}" for name in shares if not 0 <= getattr(d, name) <= 1]
    if outside:
        raise BratsInputError(source, f"{' and '.join(outside)} must lie in [0, 1]")
    if d.normalisation not in NORMALISATIONS:
        raise BratsInputError(
            source,
            f"data.normalisation of a 3D config must be one of {', '.join(NORMALISATIONS)}, not {d.normalisation!r}",
        )
    if not 0 <= d.rotation_degrees <= 180 or not 0 <= d.scaling < 1:
        raise BratsInputError(
            source,
            f"data.rotation_degrees must lie in [0, 180] and data.scaling in [0, 1), got "
            f"{d.rotation_degrees} and {d.scaling}",
        )
    if len(set(d.flip_axes)) != len(d.flip_axes) or not set(d.flip_axes) <= set(EVERY_AXIS):
        raise BratsInputError(source, f"data.flip_axes must be distinct axes among 0, 1 and 2, got {d.flip_axes}")
    if d.bias_field_prob and d.normalisation == "slice":
        raise BratsInputError(source, "data.bias_field_prob needs data.normalisation: brain or flattened")
    if d.layout is not None and d.layout not in {layout.value for layout in Layout}:
        raise BratsInputError(
            source, f"data.layout of a 3D config must be msd, brats2021 or brats2023, not {d.layout!r}"
        )
    _check_split(d, source)
    if d.patches_per_case < 1 or t.batch_size % d.patches_per_case:
        raise BratsInputError(
            source,
            f"train.batch_size ({t.batch_size}) must be a multiple of data.patches_per_case ({d.patches_per_case})",
        )
    _check_train(t, config.validation.every, source)
    _check_loss(config.loss, source)
    if not 0 <= config.validation.overlap < 1:
        raise BratsInputError(source, f"validation.overlap must lie in [0, 1), got {config.validation.overlap}")
    try:
        config.postprocessing.check()
    except ValueError as exc:
        raise BratsInputError(source, f"postprocessing: {exc}") from exc
    problem = check_network(config.model.network, d.patch_size)
    if problem:
        raise BratsInputError(source, problem)
    problem = check_network(config.model.network, config.inference_window)
    if problem:
        raise BratsInputError(source, f"inference.window: {problem}")


def _check_split(d: SliceDataConfig | DataConfig, source: object) -> None:
    if not 0 <= d.val_fraction < 1:
        raise BratsInputError(source, f"data.val_fraction must lie in [0, 1), got {d.val_fraction}")
    if d.folds == 1 or d.folds < 0 or (d.folds and not 0 <= d.fold < d.folds):
        raise BratsInputError(
            source,
            f"data.folds must be 0 (off) or at least 2, with 0 <= data.fold < data.folds; "
            f"got folds={d.folds}, fold={d.fold}",
        )
    if d.folds and d.val_cases:
        raise BratsInputError(source, "data.folds and data.val_cases both choose validation cases; set one")
    if d.num_workers is not None and d.num_workers < 0:
        raise BratsInputError(source, f"data.num_workers must be >= 0, got {d.num_workers}")


def _check_loss(loss: LossConfig, source: object) -> None:
    if not loss.squared and loss.name not in SQUARABLE:
        raise BratsInputError(
            source, f"loss.squared: false applies to {', '.join(SQUARABLE)}; loss.name {loss.name!r} has no such sum"
        )


def _check_train(t: TrainConfig, validate_every: int, source: object) -> None:
    if t.epochs < 1 or validate_every < 1:
        raise BratsInputError(source, "train.epochs and validation.every must be at least 1")
    if not 0 <= t.ema_decay < 1:
        raise BratsInputError(source, f"train.ema_decay must lie in [0, 1) (0: off), got {t.ema_decay}")
    # Checked here so that a typo is one line naming the config, not a traceback from the optimiser or the loader.
    for key, value, low, strict in (
        ("train.lr", t.lr, 0, True),
        ("train.max_minutes", t.max_minutes, 0, True),
        ("train.grad_clip", t.grad_clip, 0, False),  # 0: no clipping
        ("train.batch_size", t.batch_size, 1, False),
        ("train.steps_per_epoch", t.steps_per_epoch, 1, False),
        ("train.patience", t.patience, 1, False),
        ("train.threads", t.threads, 0, False),  # 0 as None: from the cores available
        ("train.weight_decay", t.weight_decay, 0, False),
        ("train.warmup_epochs", t.warmup_epochs, 0, False),
        ("train.checkpoint_minutes", t.checkpoint_minutes, 0, False),
    ):
        if value is not None and (value <= low if strict else value < low):
            raise BratsInputError(source, f"{key} must be {'>' if strict else '>='} {low}, got {value}")


def validate_slices(config: SliceRunConfig, source: object = None) -> None:
    """Cross-field checks of a 2D config."""
    d = config.data
    if len(d.image_size) != 2 or min(d.image_size) < 16:
        raise BratsInputError(source, f"data.image_size must be two sizes >= 16, got {d.image_size}")
    if d.normalisation not in ("dataset", "image"):
        raise BratsInputError(
            source, f"data.normalisation of a 2D config must be dataset or image, not {d.normalisation!r}"
        )
    if d.layout is not None and d.layout not in {layout.value for layout in SliceLayout}:
        raise BratsInputError(source, f"data.layout of a 2D config must be lgg or paired, got {d.layout!r}")
    if d.class_values is not None and (len(d.class_values) < 2 or sorted(set(d.class_values)) != d.class_values):
        raise BratsInputError(source, f"data.class_values must be two or more increasing values, got {d.class_values}")
    if d.patient_pattern is not None:
        try:
            re.compile(d.patient_pattern)
        except re.error as exc:
            raise BratsInputError(source, f"data.patient_pattern is not a regular expression: {exc}") from exc
    _check_split(d, source)
    _check_train(config.train, config.validation.every, source)
    _check_loss(config.loss, source)
    if not 0 < config.validation.threshold < 1:
        raise BratsInputError(source, "validation.threshold must lie between 0 and 1")
    problem = check_network(config.model.network, d.image_size)
    if problem:
        raise BratsInputError(source, problem)
