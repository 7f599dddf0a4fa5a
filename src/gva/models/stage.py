"""Stage ``inflate``: a 2-D classifier -> the initial 3-D classifier ``models/model3d_init.pt``.

``inflate.source: train2d`` inflates the fine-tuned ``models/model2d.pt``; ``imagenet`` inflates
``model.arch`` with ImageNet weights and a fresh head (classes still come from model2d.pt, so
both variants share one label space). The inflation plan (converted, temporal and time-folded
layers) is saved in the checkpoint's meta, so loading rebuilds exactly this network. The network
accepts any clip length: the clips are not read here (``train3d`` records the length it trained on).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from gva.config import Config
from gva.device import cpu_threads
from gva.errors import CheckpointError, PretrainedWeightsError
from gva.models.backbones import build_backbone
from gva.models.checkpoint import CheckpointMeta, InflationPlan, TrainingRecord, load_checkpoint, save_checkpoint
from gva.models.inflate import inflate_with_report
from gva.models.weights import describe_source, weights_normalisation
from gva.paths import MODEL2D, MODEL3D_INIT

log = logging.getLogger(__name__)


def reset_bn_statistics(model: torch.nn.Module) -> int:
    """Running mean 0, variance 1, no batches seen, in every BatchNorm layer; returns how many."""
    layers = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
              and m.track_running_stats]
    for m in layers:
        m.reset_running_stats()
    return len(layers)


def run_inflate(cfg: Config, model2d_path: str | Path = MODEL2D,
                out_path: str | Path = MODEL3D_INIT) -> CheckpointMeta:
    """``model2d_path`` (+ ImageNet weights for ``inflate.source: imagenet``) -> ``out_path``.

    ``inflate.threads`` sets torch's CPU threads for the stage (restored after)."""
    with cpu_threads(cfg.inflate.threads):
        return _inflate(cfg, Path(model2d_path), Path(out_path))


def _inflate(cfg: Config, model2d_path: Path, out_path: Path) -> CheckpointMeta:
    model2d, meta2d = load_checkpoint(model2d_path)
    if meta2d.kind != "2d":
        raise CheckpointError(f"{model2d_path}: expected a 2d checkpoint, got {meta2d.kind}")
    if meta2d.arch != cfg.model.arch:
        raise CheckpointError(f"{model2d_path} was trained as {meta2d.arch!r} but model.arch is "
                              f"{cfg.model.arch!r}; re-run train2d")
    training = meta2d.training  # the init inherits the 2-D model's training record
    pretrained, weights, mean, std = meta2d.pretrained, meta2d.weights, meta2d.mean, meta2d.std
    if cfg.inflate.source == "imagenet":
        torch.manual_seed(meta2d.training.seed or 0)  # the fresh head
        try:
            model2d = build_backbone(cfg.model.arch, meta2d.num_classes, pretrained=True,
                                     weights=cfg.model.weights)
        except PretrainedWeightsError as exc:  # its message blames model.pretrained, which may be false
            cause = exc.__cause__ or exc
            raise PretrainedWeightsError(
                f"inflate.source is imagenet, which needs ImageNet weights for {cfg.model.arch!r}, and they could "
                f"not be obtained ({type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}). "
                "Run once with network access (or put the weights in the torch hub / Hugging Face cache), or "
                "set inflate.source: train2d (inflate the trained 2-D model)") from cause
        training, pretrained = TrainingRecord(), True
        weights = describe_source(cfg.model.arch, True, cfg.model.weights)
        # the input these weights expect (train3d's explicit train.mean/std still override it)
        mean, std = weights_normalisation(cfg.model.arch, True)
    probe = min(meta2d.input_size, 64)
    model3d, report = inflate_with_report(model2d, time_kernel=cfg.inflate.time_kernel, init=cfg.inflate.init,
                                          last_n=cfg.inflate.last_n, probe_size=probe)
    if cfg.inflate.bn_stats == "drop":
        # The reference code built fresh BatchNorm3d layers and copied only weight and bias: the
        # running statistics restart at mean 0 / var 1. Static-clip equivalence is then gone.
        n = reset_bn_statistics(model3d)
        log.warning("inflate: inflate.bn_stats is drop: the running statistics of %d BatchNorm layers were "
                    "reset (the reference code's protocol, not gva's)", n)
    log.info("inflate (%s): %s", cfg.inflate.source, report.summary())
    if report.untransferred:
        log.warning("inflate: 2-D weights not transferred: %s", report.untransferred)
    meta = dataclasses.replace(meta2d, kind="3d", pretrained=pretrained, weights=weights, mean=mean, std=std,
                               frames=None, training=training,
                               inflation=InflationPlan(cfg.inflate.source, report.to_dict(), cfg.inflate.bn_stats))
    save_checkpoint(out_path, model3d, meta)
    log.info("inflate: wrote %s", out_path)
    return meta
