"""The one training loop, shared by the 2-D and the 3-D classifier.

``fit`` is shared: seeded shuffling, SGD/AdamW + StepLR, per-epoch train/val loss, top-1, top-3
and epoch time logged with dvclive, model selection on the ``val`` split (best top-1; the last
epoch when there is no val split -- ``test`` is never looked at), and a hard stop on a non-finite
loss. The stages differ only in data (images vs clips), batch size / epochs and, when
``train3d.lr`` is set, the fine-tuning learning rate.

Several processes: ``torchrun --standalone --nproc-per-node N -m gva.cli train2d`` with
``train.processes: N`` (dvc.yaml launches it so). The model is wrapped in
``DistributedDataParallel`` (gloo on CPU, nccl with one GPU per rank); ``train2d/3d.batch_size``
stays the *global* batch, each rank taking ``batch_size / N`` of the same seeded permutation
(:func:`gva.data.loader.make_train_loader`), and DDP averages the gradients, so a step sees the
same samples and, without BatchNorm, the same gradient as a one-process step (up to float
summation order). What differs: BatchNorm batch statistics are per rank (no SyncBatchNorm; its
running statistics are rank 0's, broadcast before each validation), and dropout draws per-rank
random streams (augmentation is keyed by the sample, the same whatever the process count). Train and val metrics are summed over the ranks; the model
selection is rank 0's decision, broadcast; only rank 0 writes dvclive logs and the checkpoint.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from gva import distributed
from gva.config import TrainConfig
from gva.data.loader import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    make_eval_loader,
    make_train_loader,
    per_rank_batch,
    to_model_input,
)
from gva.device import cpu_threads, resolve_device
from gva.errors import DeviceError, NonFiniteLossError
from gva.execution import Execution
from gva.train.freeze import freeze_before, train_mode
from gva.train.resume import EpochState, Resume

FP32 = Execution()
TEST_SELECTION_WARNING = ("MODEL SELECTED ON THE TEST SET (train.select_on: test, the reference code's protocol): "
                          "the 'val' curves are test-split curves and no test number of this run estimates "
                          "anything")

log = logging.getLogger(__name__)





def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@dataclass
class EpochStats:
    loss: float
    top1: float
    top3: float
    n: int


@dataclass
class FitResult:
    best_epoch: int            # 1-based
    selected_on: str           # "val" | "last_epoch"
    train_time_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    execution: dict = field(default_factory=dict)   # precision, channels_last, compile as used
    frozen: dict = field(default_factory=dict)      # train.freeze: FreezeReport.to_dict()
    threads: int = 0                                # torch CPU threads used (train.threads)


class _Meter:
    def __init__(self) -> None:
        self.loss = 0.0
        self.c1 = 0
        self.c3 = 0
        self.n = 0

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        k = min(3, logits.shape[1])
        top = logits.topk(k, dim=1).indices
        hit = top == y[:, None]
        self.loss += float(loss) * len(y)
        self.c1 += int(hit[:, 0].sum())
        self.c3 += int(hit.any(1).sum())
        self.n += len(y)

    def stats(self) -> EpochStats:
        n = max(self.n, 1)
        return EpochStats(self.loss / n, self.c1 / n, self.c3 / n, self.n)


def _bars_off() -> bool | None:
    """tqdm's ``disable``: automatic (off without a terminal) on rank 0, always off on the others."""
    return None if distributed.env_rank_world()[0] == 0 else True


def _reduce(stats: EpochStats, dist: distributed.Dist, what: str) -> EpochStats:
    """Sum a rank's loss / hit counts over the ranks: the metrics of the whole set, on every rank."""
    if not dist.active:
        return stats
    loss, c1, c3, n = dist.all_reduce_sum([stats.loss * stats.n, stats.top1 * stats.n,
                                           stats.top3 * stats.n, float(stats.n)], what)
    n = max(int(round(n)), 1)
    return EpochStats(loss / n, round(c1) / n, round(c3) / n, n)


class _NoLive:
    """Stands in for dvclive's ``Live`` on ranks other than 0 (they log nothing)."""

    def __init__(self) -> None:
        self.summary: dict[str, Any] = {}

    def __enter__(self) -> _NoLive:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def log_metric(self, *args: Any, **kwargs: Any) -> None:
        return None

    def next_step(self) -> None:
        return None


def _broadcast_buffers(model: nn.Module, dist: distributed.Dist) -> None:
    """Rank 0's BatchNorm running statistics on every rank (DDP only syncs them at train forwards)."""
    import torch.distributed as tdist

    for buf in model.buffers():
        dist._call("syncing the model buffers", tdist.broadcast, buf, src=0)


def _check_finite(loss: torch.Tensor, where: str) -> None:
    loss = loss.detach()
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"{where}: loss is {loss.item()}; stopping (lower train.lr, "
                                 "or check the inputs / pretrained weights)")


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    device: torch.device, size: int, mean: Sequence[float], std: Sequence[float],
                    epoch: int = 1, desc: str = "train", execution: Execution = FP32,
                    scaler: torch.amp.GradScaler | None = None) -> EpochStats:
    """One pass over ``loader`` in train mode; raises :class:`NonFiniteLossError` on NaN/inf.

    ``execution``: autocast precision and input layout; ``scaler``: fp16 loss scaling (GPU).
    """
    train_mode(model)  # the part train.freeze froze stays in eval mode (BatchNorm statistics fixed)
    meter = _Meter()
    for step, (x, y) in enumerate(tqdm(loader, desc=f"{desc} epoch {epoch}", leave=False,
                                       disable=_bars_off())):
        x = execution.input(to_model_input(x.to(device, non_blocking=True), size, mean, std))
        y = y.to(device, non_blocking=True)
        with execution.autocast():
            logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
        _check_finite(loss, f"{desc} epoch {epoch} step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        meter.add(loss.detach(), logits.detach().float(), y)
    return meter.stats()


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: DataLoader, device: torch.device, size: int,
                    mean: Sequence[float], std: Sequence[float], desc: str = "val",
                    execution: Execution = FP32) -> EpochStats:
    """Loss / top-1 / top-3 over ``loader`` in eval mode."""
    model.eval()
    meter = _Meter()
    for x, y in tqdm(loader, desc=desc, leave=False, disable=_bars_off()):
        x = execution.input(to_model_input(x.to(device, non_blocking=True), size, mean, std))
        y = y.to(device, non_blocking=True)
        with execution.autocast():
            logits = model(x).float()
        loss = F.cross_entropy(logits, y)
        _check_finite(loss, desc)
        meter.add(loss, logits, y)
    return meter.stats()


def fit(model: nn.Module, train_set: Dataset, val_set: Dataset | None, cfg: TrainConfig,
        epochs: int, batch_size: int, live_dir: str | Path, desc: str = "train",
        dist: distributed.Dist | None = None, select_split: str = "val",
        resume: Resume | None = None) -> FitResult:
    """Train ``model`` in place and leave it holding the selected epoch's weights.

    Selection: best val top-1 (earliest epoch on ties) when ``val_set`` is given, else the last
    epoch. Per-epoch metrics go to a dvclive directory ``live_dir`` (no dvc.yaml written).
    ``batch_size`` is the global batch; ``dist`` is the process group (default: the one this
    process joined, see :mod:`gva.distributed`); with several ranks the model trains under DDP.
    ``cfg.mean``/``cfg.std`` null: ImageNet's (the stages first resolve them from the weights).
    ``cfg.threads`` sets torch's CPU threads for the call (restored after). ``resume``: the run's
    epoch state file (:mod:`gva.train.resume`): saved after every epoch, and a saved state is
    continued from (one process only).
    """
    with cpu_threads(cfg.threads) as threads:
        result = _fit(model, train_set, val_set, cfg, epochs, batch_size, live_dir, desc, dist, select_split,
                      resume)
    return dataclasses.replace(result, threads=threads)


@dataclass
class _Setup:
    """Everything :func:`_fit`'s epochs need, made once by :func:`_prepare`."""

    net: nn.Module                      # what the optimiser steps through (DDP / compiled wrapper)
    device: torch.device
    execution: Execution
    frozen: Any
    scaler: Any
    train_loader: Any
    val_loader: Any
    optimizer: Any
    scheduler: Any


def _fit(model: nn.Module, train_set: Dataset, val_set: Dataset | None, cfg: TrainConfig,
         epochs: int, batch_size: int, live_dir: str | Path, desc: str,
         dist: distributed.Dist | None, select_split: str, resume: Resume | None) -> FitResult:
    """1. resolve normalisation, device, execution, freezing, DDP, compilation, loaders, optimiser
    (:func:`_prepare`), and continue an interrupted run's saved epochs (:func:`_restore`); 2. per
    epoch: train, validate, select, log (:func:`_epoch`), save the epoch state; 3. summarise in
    dvclive and restore the selected weights."""
    from dvclive import Live  # imported here: dvclive pulls in dvc, slow to import

    dist = dist or distributed.current()
    if cfg.mean is None or cfg.std is None:
        # null: no weights known here to follow (the stages resolve it: gva.models.weights); ImageNet's
        cfg = dataclasses.replace(cfg, mean=list(IMAGENET_MEAN) if cfg.mean is None else cfg.mean,
                                  std=list(IMAGENET_STD) if cfg.std is None else cfg.std)
    st = _prepare(model, train_set, val_set, cfg, batch_size, desc, dist)              # 1
    if resume is not None and dist.active:
        log.info("%s: no epoch states under %d processes (resuming is one-process only)", desc, dist.world)
        resume = None
    saved = resume.load() if resume is not None else None
    if saved is not None:
        _restore(model, st, saved)
    best_top1, best_epoch, best_state = ((saved.best_top1, saved.best_epoch, saved.best_state) if saved
                                         else (-math.inf, epochs, None))
    history: list[dict[str, float]] = list(saved.history) if saved else []
    done = saved.epoch if saved else 0
    start = time.perf_counter() - (saved.elapsed_s if saved else 0.0)
    live = (Live(dir=str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None) if dist.is_main
            else _NoLive())
    with live:
        for row in history:  # the interrupted run's epochs, logged again into this run's fresh log
            _log_row(live, row)
        for epoch in tqdm(range(done + 1, epochs + 1), desc=desc, disable=_bars_off(), initial=done,
                          total=epochs):                                                # 2
            row, va = _epoch(model, st, cfg, epoch, desc, dist)
            if va is not None:
                # strictly better: ties keep the earlier epoch; rank 0 decides for all ranks
                better = dist.broadcast_object(va.top1 > best_top1, f"{desc} epoch {epoch}: model selection")
                if better:
                    best_top1, best_epoch = va.top1, epoch
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            history.append(row)
            _log_row(live, row)
            if dist.is_main:
                log.info("%s epoch %d/%d: %s", desc, epoch, epochs,
                         ", ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
            if resume is not None:
                resume.save(_snapshot(model, st, epoch, best_top1, best_epoch, best_state, history,
                                      time.perf_counter() - start))
        train_time = time.perf_counter() - start                                       # 3
        selected_on = select_split if st.val_loader is not None else "last_epoch"
        live.summary["best_epoch"] = best_epoch
        live.summary["selected_on"] = selected_on
        if selected_on == "test":
            live.summary["warning"] = TEST_SELECTION_WARNING
        if st.val_loader is not None:
            live.summary["best_val_top1"] = best_top1
        live.summary["train_time_s"] = train_time
        live.summary["processes"] = dist.world
        live.summary["execution"] = st.execution.describe()
        live.summary["frozen"] = st.frozen.to_dict()
        live.summary["threads"] = torch.get_num_threads()
    if best_state is not None:
        model.load_state_dict(best_state)
    elif dist.active:
        _broadcast_buffers(model, dist)  # the last epoch's model: rank 0's running statistics everywhere
    return FitResult(best_epoch, selected_on, train_time, history, st.execution.describe(), st.frozen.to_dict())


def _log_row(live: Any, row: dict[str, float]) -> None:
    for key, value in row.items():
        if key != "epoch":
            live.log_metric(key, value)
    live.next_step()


def _snapshot(model: nn.Module, st: _Setup, epoch: int, best_top1: float, best_epoch: int,
              best_state: dict[str, torch.Tensor] | None, history: list[dict[str, float]],
              elapsed_s: float) -> EpochState:
    """Everything the next epoch depends on, after ``epoch`` (torch's generator included: dropout
    and the loaders' base seeds draw from it)."""
    return EpochState(
        epoch=epoch, model={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        optimizer=st.optimizer.state_dict(), scheduler=st.scheduler.state_dict(),
        scaler=st.scaler.state_dict() if st.scaler is not None else None, rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state_all() if st.device.type == "cuda" else None,
        best_top1=best_top1, best_epoch=best_epoch, best_state=best_state, history=list(history),
        elapsed_s=elapsed_s)


def _restore(model: nn.Module, st: _Setup, saved: EpochState) -> None:
    """Put the model, optimiser, schedule, scaler and torch's generators where ``saved`` left them."""
    model.load_state_dict(saved.model)
    st.optimizer.load_state_dict(saved.optimizer)
    st.scheduler.load_state_dict(saved.scheduler)
    if st.scaler is not None and saved.scaler is not None:
        st.scaler.load_state_dict(saved.scaler)
    torch.set_rng_state(saved.rng)
    if saved.cuda_rng is not None and st.device.type == "cuda":
        torch.cuda.set_rng_state_all(saved.cuda_rng)


def _prepare(model: nn.Module, train_set: Dataset, val_set: Dataset | None, cfg: TrainConfig,
             batch_size: int, desc: str, dist: distributed.Dist) -> _Setup:
    """Device, execution settings, frozen layers, DDP, compilation, loaders, optimiser, schedule."""
    device = torch.device(dist.device) if dist.device else resolve_device(cfg.device, "train.device")
    if dist.active and device.type == "cuda" and dist.backend != "nccl":
        raise DeviceError(f"train.device {cfg.device!r} is CUDA but the process group uses {dist.backend}")
    per_rank_batch(batch_size, dist.world, f"{desc}.batch_size")
    execution = Execution.resolve(cfg.precision, cfg.channels_last, cfg.compile, device, "train")
    clips = train_set[0][0].dim() == 4  # uint8 [T,H,W,3] samples: a 3-D model
    # before DDP (it registers only parameters that require grad) and before the optimiser
    frozen = freeze_before(model, cfg.freeze)
    if dist.is_main:
        log.info("%s: %s", desc, frozen.summary())
        if frozen.temporal_warning():
            log.warning("%s: %s", desc, frozen.temporal_warning())
    execution.model(model.to(device), clips)
    net: nn.Module = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)  # broadcasts rank 0's weights
        torch.manual_seed(cfg.seed + 7919 * dist.rank)  # per-rank dropout streams
    if execution.compile:
        assert cfg.mean is not None and cfg.std is not None  # fit resolved them
        example = torch.stack([train_set[i][0] for i in range(min(2, len(cast(Sized, train_set))))]).to(device)
        compiled = execution.compiled(net, to_model_input(example, cfg.image_size, cfg.mean, cfg.std), desc)
        if compiled is net:  # the backend failed (warned): record what actually ran
            execution = dataclasses.replace(execution, compile=False)
        net = compiled
    pin = device.type == "cuda"
    train_loader = make_train_loader(train_set, batch_size, cfg.num_workers, cfg.seed, dist.rank, dist.world, pin,
                                     cfg.augment)
    val_loader = (make_eval_loader(val_set, per_rank_batch(batch_size, dist.world), cfg.num_workers, dist.rank,
                                   dist.world, pin) if val_set is not None else None)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return _Setup(net, device, execution, frozen, execution.grad_scaler(), train_loader, val_loader, optimizer,
                  scheduler)


def _epoch(model: nn.Module, st: _Setup, cfg: TrainConfig, epoch: int, desc: str,
           dist: distributed.Dist) -> tuple[dict[str, float], Any]:
    """One epoch: train, step the schedule, validate rank 0's model; the logged row and val result."""
    t0 = time.perf_counter()
    size, mean, std = cfg.image_size, cfg.mean, cfg.std
    assert mean is not None and std is not None  # fit resolved them
    lr = st.optimizer.param_groups[0]["lr"]
    st.train_loader.sampler.set_epoch(epoch)
    tr = train_one_epoch(st.net, st.train_loader, st.optimizer, st.device, size, mean, std, epoch, desc,
                         st.execution, st.scaler)
    tr = _reduce(tr, dist, f"{desc} epoch {epoch}: summing the train metrics")
    st.scheduler.step()
    va = None
    if st.val_loader is not None:
        if dist.active:
            _broadcast_buffers(model, dist)  # every rank evaluates rank 0's model
        va = _reduce(evaluate_loader(model, st.val_loader, st.device, size, mean, std, f"{desc} epoch {epoch} val",
                                     st.execution),
                     dist, f"{desc} epoch {epoch}: summing the val metrics")
    if st.device.type == "cuda":
        torch.cuda.synchronize()
    row = {"epoch": epoch, "lr": lr, "train/loss": tr.loss, "train/top1": tr.top1,
           "train/top3": tr.top3, "epoch_time_s": time.perf_counter() - t0}
    if va is not None:
        row.update({"val/loss": va.loss, "val/top1": va.top1, "val/top3": va.top3})
    return row, va
