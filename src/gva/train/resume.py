"""Epoch checkpoints that let a killed ``train2d`` / ``train3d`` continue where it stopped.

A CPU run of the paper's regime spends hours in one training stage; a killed stage (a closed
session, a ``dvc queue`` worker that died) would start again from epoch 1. So after every epoch
:func:`gva.train.loop.fit` writes what it needs to go on -- weights, optimiser, schedule, torch's
random state, the selection so far and the logged rows -- to ``<cache>/train/<stage>-<key>.pt``
(``GVA_CACHE_DIR``, default ``data/.cache``), atomically. The key hashes everything the stage's
result depends on: its input files' bytes, the training settings, the initial weights, gva's own
source and the torch / timm versions. A state is therefore only picked up by the same run (any
change starts afresh and leaves the old file to ``rm``), and a resumed run ends with the same
model as an uninterrupted one (``tests/test_train_resume.py``). The file is removed once the
stage's outputs are written. ``GVA_TRAIN_RESUME=0`` turns it off; under several processes (DDP)
nothing is saved (each rank's dropout stream would need its own state).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from gva import paths
from gva.errors import GvaError
from gva.io import atomic_path

log = logging.getLogger(__name__)

ENV = "GVA_TRAIN_RESUME"
_CHUNK = 1 << 22


def enabled() -> bool:
    """Off with ``GVA_TRAIN_RESUME=0`` (or false / no / off)."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def root() -> Path:
    """Where epoch states live: ``<GVA_CACHE_DIR or data/.cache>/train``."""
    return paths.CACHE_DIR / "train"


@dataclass
class EpochState:
    """What :func:`gva.train.loop.fit` needs to continue after ``epoch`` epochs."""

    epoch: int                                   # epochs done
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: torch.Tensor                            # torch's CPU generator after the epoch
    cuda_rng: list[torch.Tensor] | None
    best_top1: float
    best_epoch: int
    best_state: dict[str, torch.Tensor] | None
    history: list[dict[str, float]] = field(default_factory=list)
    elapsed_s: float = 0.0                       # training time before the interruption


def _hash_file(h: Any, path: Path) -> None:
    h.update(f"{path.name}\0{path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)


def _hash_model(h: Any, model: nn.Module) -> None:
    h.update(repr(model).encode())
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous().reshape(-1)  # 0-d buffers cannot be viewed as bytes
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")


def _hash_source(h: Any) -> None:
    import timm

    import gva

    h.update(f"torch {torch.__version__} timm {timm.__version__}\0".encode())
    package = Path(gva.__file__).parent
    for path in sorted(package.rglob("*.py")):
        h.update(str(path.relative_to(package)).encode())
        h.update(path.read_bytes())


def run_key(stage: str, model: nn.Module, inputs: Iterable[Path], settings: Mapping[str, Any]) -> str:
    """A hash of the run: stage, initial weights, input files, settings, gva's source, versions."""
    h = hashlib.blake2b(digest_size=16)
    h.update(stage.encode() + b"\0")
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    _hash_model(h, model)
    for path in sorted(Path(p) for p in inputs):
        _hash_file(h, path)
    _hash_source(h)
    return h.hexdigest()


class Resume:
    """One run's epoch state file: :meth:`load` what an interrupted run saved, :meth:`save` after
    each epoch, :meth:`clear` once the stage's outputs are written."""

    def __init__(self, path: Path, stage: str) -> None:
        self.path = path
        self.stage = stage
        self.saving = True

    @classmethod
    def for_stage(cls, stage: str, model: nn.Module, inputs: Iterable[Path], settings: Mapping[str, Any],
                  directory: Path | None = None) -> Resume | None:
        """The state file of this run, or None when resuming is off (``GVA_TRAIN_RESUME=0``)."""
        if not enabled():
            return None
        key = run_key(stage, model, inputs, settings)
        return cls((directory or root()) / f"{stage}-{key}.pt", stage)

    def load(self) -> EpochState | None:
        """The saved state, or None; an unreadable file is reported, removed and ignored."""
        if not self.path.is_file():
            return None
        try:
            raw = torch.load(self.path, map_location="cpu", weights_only=True)
            state = EpochState(**raw)
        except Exception as exc:  # a damaged file must not stop a run that can start afresh
            log.warning("%s: ignoring the unreadable epoch state %s (%s: %s); starting from epoch 1",
                        self.stage, self.path, type(exc).__name__, exc)
            self.clear()
            return None
        log.info("%s: resuming after epoch %d from %s (GVA_TRAIN_RESUME=0 starts afresh)", self.stage,
                 state.epoch, self.path)
        return state

    def save(self, state: EpochState) -> None:
        """Write ``state`` (write-then-rename); a failure (a full disk) warns and stops saving: the
        run goes on, it only cannot be resumed."""
        if not self.saving:
            return
        try:
            with atomic_path(self.path) as tmp:
                torch.save({f.name: getattr(state, f.name) for f in fields(state)}, tmp)  # no deep copy
        except (OSError, GvaError) as exc:
            self.saving = False
            log.warning("%s: cannot save the epoch state to %s (%s); the run goes on without it and cannot "
                        "be resumed if it is killed", self.stage, self.path, exc)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def settings_of(cfg: Any, **more: Any) -> dict[str, Any]:
    """A dataclass config plus extra values as one JSON-able mapping for :func:`run_key`."""
    out = asdict(cfg)
    out.update(more)
    return out


__all__ = ["ENV", "EpochState", "Resume", "enabled", "root", "run_key", "settings_of"]
