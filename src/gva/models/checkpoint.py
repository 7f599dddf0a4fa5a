"""Model checkpoints: ``{"format", "meta", "state_dict"}`` written atomically with ``torch.save``.

Only weights and plain metadata are stored (loadable with ``weights_only=True``); the
architecture is rebuilt from ``meta`` -- ``build_backbone(arch, num_classes, pretrained=False)``
and, for ``kind == "3d"``, ``inflate(**meta["inflate"])`` -- so loading never downloads anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from gva.io import atomic_path
from gva.models.backbones import build_backbone
from gva.models.inflate import inflate

FORMAT = "gva-checkpoint/1"
REQUIRED_META = ("kind", "arch", "num_classes", "class_names", "input_size", "frames", "inflate",
                 "mean", "std", "train_time_s", "best_epoch", "epochs", "selected_on")


def _check_meta(meta: dict, where: str) -> None:
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"{where}: checkpoint meta lacks {', '.join(missing)}")
    if meta["kind"] not in ("2d", "3d"):
        raise ValueError(f"{where}: meta kind must be '2d' or '3d', got {meta['kind']!r}")
    if meta["kind"] == "3d" and not isinstance(meta["inflate"], dict):
        raise ValueError(f"{where}: a 3d checkpoint needs meta['inflate'] = "
                         "{time_kernel, init, last_n}")
    if len(meta["class_names"]) != meta["num_classes"]:
        raise ValueError(f"{where}: {len(meta['class_names'])} class_names for "
                         f"{meta['num_classes']} classes")


def save_checkpoint(path: str | Path, model: nn.Module, meta: dict[str, Any]) -> None:
    """Write ``model``'s weights (moved to CPU) and ``meta`` to ``path``, atomically."""
    _check_meta(meta, str(path))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "meta": dict(meta), "state_dict": state}, tmp)


def build_from_meta(meta: dict[str, Any]) -> nn.Module:
    """The (randomly initialised) architecture a checkpoint's weights belong to."""
    model = build_backbone(meta["arch"], int(meta["num_classes"]), pretrained=False)
    if meta["kind"] == "3d":
        spec = meta["inflate"]
        # same probe size as the inflate stage, so the probe takes the same decisions
        model = inflate(model, time_kernel=int(spec["time_kernel"]), init=spec["init"],
                        last_n=spec.get("last_n"), probe_size=min(int(meta["input_size"]), 64))
    return model


def load_checkpoint(path: str | Path, map_location: Any = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model described by the checkpoint at ``path``, load its weights, eval mode."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated / foreign file: say which
        raise ValueError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gva checkpoint (expected format {FORMAT})")
    meta = payload["meta"]
    _check_meta(meta, str(path))
    model = build_from_meta(meta)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ValueError(f"{path}: weights do not fit {meta['kind']} {meta['arch']}: {exc}") from exc
    if map_location is not None:
        device = next(iter(payload["state_dict"].values())).device if payload["state_dict"] else None
        if device is not None:
            model.to(device)
    return model.eval(), meta
