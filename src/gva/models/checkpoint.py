"""Model checkpoints: typed metadata (:class:`CheckpointMeta`) + weights, written atomically.

A file holds ``{"format", "meta", "state_dict"}`` and is loadable with ``weights_only=True``.
The architecture is rebuilt from the meta without downloading anything:
``build_backbone(arch, num_classes, pretrained=False)`` and, for a 3-D model, the *saved
inflation plan* (which layers were converted and which run time-folded), so loading never
re-probes a fresh network and cannot take different decisions than the inflate stage did.

Every stage and ``gva predict`` write and read this one dataclass; the classes travel with
their wnids, so a model is refused by a run whose classes differ in identity, not only in count.
"""

from __future__ import annotations

import dataclasses
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn as nn

from gva.errors import CheckpointError
from gva.io import atomic_path
from gva.models.backbones import build_backbone

FORMAT = "gva-checkpoint/2"


@dataclass(frozen=True)
class ClassInfo:
    """One class, in label order: its id in the dataset (a wnid for Tiny ImageNet) and its name."""

    wnid: str
    name: str


@dataclass
class TrainingRecord:
    """How the weights were obtained. ``selected_on``: ``val`` (best val top-1), ``last_epoch``
    (no val split), ``test`` (the reference code's protocol: not an estimate of anything), or
    ``none`` (not trained here: an inflated initialisation)."""

    epochs: int = 0
    best_epoch: int = 0
    selected_on: str = "none"
    train_time_s: float = 0.0
    seed: int | None = None
    lr: float | None = None
    train_samples: int | None = None
    processes: int = 1
    frames_2d: str | None = None        # train2d.frames of a 2-D model: first | all
    execution: dict = field(default_factory=dict)   # precision / channels_last / compile used
    frozen: dict = field(default_factory=dict)      # train.freeze: what stayed fixed (gva.train.freeze)
    threads: int | None = None                   # torch CPU threads it trained with (train.threads)
    history: list[dict] = field(default_factory=list)


@dataclass
class InflationPlan:
    """How a 3-D model was made from a 2-D one: where the 2-D weights came from (``train2d`` or
    ``imagenet``) and the inflation report (``time_kernel``, ``init``, ``last_n``, converted,
    temporal and folded layers) that :func:`gva.models.inflate.inflate_from_plan` replays."""

    source: str
    report: dict
    bn_stats: str = "copy"   # copy: BN running statistics transferred | drop: reset (reference code)

    @property
    def time_kernel(self) -> int:
        return int(self.report["time_kernel"])

    @property
    def init(self) -> str:
        return str(self.report["init"])

    @property
    def last_n(self) -> int | None:
        return self.report.get("last_n")


@dataclass
class CheckpointMeta:
    """Everything a stage or ``gva predict`` needs to know about a model besides its weights."""

    kind: Literal["2d", "3d"]
    arch: str
    pretrained: bool
    classes: list[ClassInfo]
    input_size: int                       # train.image_size: the side the model sees
    mean: list[float]
    std: list[float]
    image_size: int | None = None      # the curated side its training data had (data.image_size)
    frames: int | None = None          # 3-D: the clip length it was trained on (None: not yet)
    inflation: InflationPlan | None = None
    training: TrainingRecord = field(default_factory=TrainingRecord)
    # where the initial weights came from (gva.models.weights.describe_source); None: random init
    weights: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def wnids(self) -> list[str]:
        return [c.wnid for c in self.classes]

    def validate(self, where: str) -> CheckpointMeta:
        problems = []
        if self.kind not in ("2d", "3d"):
            problems.append(f"kind must be '2d' or '3d', got {self.kind!r}")
        if not self.classes:
            problems.append("no classes")
        if len(set(self.wnids)) != len(self.classes):
            problems.append("duplicate class ids")
        if self.kind == "3d" and self.inflation is None:
            problems.append("a 3d checkpoint needs its inflation plan")
        if self.kind == "2d" and (self.inflation is not None or self.frames is not None):
            problems.append("a 2d checkpoint has no inflation plan or frames")
        if len(self.mean) != 3 or len(self.std) != 3:
            problems.append("mean and std need 3 channels")
        if problems:
            raise CheckpointError(f"{where}: bad checkpoint meta: {'; '.join(problems)}")
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: Any, where: str) -> CheckpointMeta:
        try:
            raw = dict(raw)
            raw["classes"] = [ClassInfo(**c) for c in raw["classes"]]
            raw["training"] = TrainingRecord(**raw.get("training") or {})
            if raw.get("inflation") is not None:
                raw["inflation"] = InflationPlan(**raw["inflation"])
            meta = cls(**raw)
        except (TypeError, KeyError, ValueError) as exc:
            raise CheckpointError(f"{where}: checkpoint meta does not fit this gva ({exc})") from None
        return meta.validate(where)


def save_checkpoint(path: str | Path, model: nn.Module, meta: CheckpointMeta) -> None:
    """Write ``model``'s weights (moved to CPU) and ``meta`` to ``path``, atomically."""
    meta.validate(str(path))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "meta": meta.to_dict(), "state_dict": state}, tmp)


def build_from_meta(meta: CheckpointMeta) -> nn.Module:
    """The (randomly initialised) architecture a checkpoint's weights belong to."""
    from gva.models.inflate import inflate_from_plan

    model = build_backbone(meta.arch, meta.num_classes, pretrained=False)
    if meta.kind == "3d":
        assert meta.inflation is not None  # validated: a 3-D checkpoint has its plan
        model = inflate_from_plan(model, meta.inflation.report)
    return model


def read_checkpoint(path: str | Path) -> tuple[CheckpointMeta, dict[str, torch.Tensor]]:
    """The meta and the CPU state dict of the checkpoint at ``path`` (no model is built)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: empty file, not a checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as exc:
        # torch's own text advises weights_only=False, which is never right for an unknown file
        kind = type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (not a torch.save file, or a truncated "
                              f"one: {kind})") from None
    if not isinstance(payload, dict) or "format" not in payload:
        raise CheckpointError(f"{path}: not a gva checkpoint")
    if payload["format"] != FORMAT:
        raise CheckpointError(f"{path}: written as {payload['format']!r}, this gva reads {FORMAT!r}; "
                              "re-run the training stages (dvc repro)")
    meta = CheckpointMeta.from_dict(payload.get("meta"), str(path))
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: no weights in the checkpoint")
    return meta, state


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> tuple[nn.Module, CheckpointMeta]:
    """Rebuild the model described by the checkpoint at ``path``, load its weights, eval mode."""
    meta, state = read_checkpoint(path)
    model = build_from_meta(meta)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{path}: weights do not fit {meta.kind} {meta.arch}: {first}") from None
    if map_location is not None:
        model.to(map_location)
    return model.eval(), meta
