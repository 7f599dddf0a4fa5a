"""Stage ``inflate``: a 2-D classifier -> the initial 3-D classifier ``models/model3d_init.pt``.

``inflate.source: train2d`` inflates the fine-tuned ``models/model2d.pt``; ``imagenet`` inflates
``model.arch`` with ImageNet weights and a fresh head (class names still come from model2d.pt,
so both variants share one label space). The clip length recorded in the meta is read from the
header of ``data/clips/clips.npy``; the network itself accepts any number of frames.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import torch

from gva.config import Config
from gva.data.arrays import StoreError, read_array
from gva.models.backbones import build_backbone
from gva.models.checkpoint import load_checkpoint, save_checkpoint
from gva.models.inflate import inflate_with_report
from gva.paths import CLIPS_DIR, MODEL2D, MODEL3D_INIT

CLIPS = CLIPS_DIR / "clips.npy"

log = logging.getLogger(__name__)



def _clip_frames(path: Path) -> Optional[int]:
    try:
        return int(read_array(path, 5).shape[1])  # memory-mapped: reads only the header
    except StoreError as exc:
        log.warning("inflate: %s; meta frames left unset", exc)
        return None


def run_inflate(cfg: Config) -> None:
    """models/model2d.pt (+ ImageNet weights for source=imagenet) -> models/model3d_init.pt."""
    model2d, meta2d = load_checkpoint(MODEL2D)
    if meta2d["kind"] != "2d":
        raise ValueError(f"{MODEL2D}: expected a 2d checkpoint, got {meta2d['kind']}")
    if meta2d["arch"] != cfg.model.arch:
        raise ValueError(f"{MODEL2D} was trained as {meta2d['arch']!r} but model.arch is "
                         f"{cfg.model.arch!r}; re-run train2d")
    spec = {"time_kernel": cfg.inflate.time_kernel, "init": cfg.inflate.init,
            "last_n": cfg.inflate.last_n}
    if cfg.inflate.source == "imagenet":
        torch.manual_seed(int(meta2d.get("seed", 0)))  # the fresh head
        model2d = build_backbone(cfg.model.arch, meta2d["num_classes"], pretrained=True)
        trained = {"train_time_s": 0.0, "best_epoch": 0, "epochs": 0, "selected_on": "last_epoch",
                   "pretrained": True}
    else:
        # the init inherits the 2-D model's training record
        trained = {k: meta2d[k] for k in ("train_time_s", "best_epoch", "epochs", "selected_on")}
        trained["pretrained"] = meta2d.get("pretrained")
    probe = min(int(meta2d["input_size"]), 64)
    model3d, report = inflate_with_report(model2d, probe_size=probe, **spec)
    log.info("inflate (%s): %s", cfg.inflate.source, report.summary())
    if report.untransferred:
        log.warning("inflate: 2-D weights not transferred: %s", report.untransferred)
    meta = {"kind": "3d", "arch": cfg.model.arch, "num_classes": meta2d["num_classes"],
            "class_names": list(meta2d["class_names"]), "input_size": meta2d["input_size"],
            "frames": _clip_frames(CLIPS), "inflate": spec, "mean": list(meta2d["mean"]),
            "std": list(meta2d["std"]), **trained, "inflate_source": cfg.inflate.source,
            "inflation_report": report.to_dict()}
    save_checkpoint(MODEL3D_INIT, model3d, meta)
    log.info("inflate: wrote %s", MODEL3D_INIT)
