"""Stages ``train2d`` (images -> ``models/model2d.pt``) and ``train3d`` (clips -> ``models/model3d.pt``).

Both call the one loop, :func:`gva.train.loop.fit`; they differ in data (curated images plus,
with ``train2d.frames: all``, the ``extra_frames`` store / generated clips), epochs, batch size and,
when ``train3d.lr`` is set, the fine-tuning learning rate. A stage's outputs (checkpoint and
dvclive log directory) appear together and whole: the log is written to a temporary directory
and swapped in after the checkpoint, so a failed run (a NaN stop, a crash) leaves the previous
model *and* its logs as they were. Under several processes only rank 0 writes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sized
from pathlib import Path
from typing import cast

import torch

from gva import distributed
from gva.config import Config, TrainConfig
from gva.data.arrays import Store, open_clips, open_images
from gva.data.loader import concat, split_samples
from gva.device import resolve_device
from gva.errors import CheckpointError, ConfigError, StoreError
from gva.io import atomic_path
from gva.models.backbones import build_backbone
from gva.models.checkpoint import CheckpointMeta, ClassInfo, TrainingRecord, load_checkpoint, save_checkpoint
from gva.models.weights import describe_source, resolve_normalisation
from gva.paths import CLIPS_DIR, CURATED_DIR, EXTRA_FRAMES_DIR, LIVE2D, LIVE3D, MODEL2D, MODEL3D, MODEL3D_INIT
from gva.train.loop import TEST_SELECTION_WARNING, FitResult, fit
from gva.train.resume import Resume, settings_of

log = logging.getLogger(__name__)


def classes_of(store: Store, where: str) -> list[ClassInfo]:
    """The store's classes in label order; labels must be 0..K-1 with one id and name each."""
    found: dict[int, ClassInfo] = {}
    for r in store.rows:
        info = found.setdefault(r.label, ClassInfo(r.wnid, r.class_name))
        if info != ClassInfo(r.wnid, r.class_name):
            raise StoreError(f"{where}: label {r.label} is both {info.wnid} and {r.wnid}")
    if sorted(found) != list(range(len(found))):
        raise StoreError(f"{where}: labels must be 0..{len(found) - 1}, got {sorted(found)}")
    return [found[k] for k in range(len(found))]


def check_processes(processes: int, world: int, stage: str) -> None:
    """``train.processes`` must be the launched world size: the per-rank batch and BN depend on it."""
    if world == processes:
        return
    if world == 1:
        raise ConfigError(f"train.processes is {processes} but {stage} runs as one process: start it with "
                          f"`gva {stage}` (it launches the ranks itself) or set train.processes: 1")
    raise ConfigError(f"train.processes is {processes} but the launcher started {world} processes; they must "
                      "agree (with --nnodes M --nproc-per-node N, train.processes is M*N)")


@contextlib.contextmanager
def _outputs(live_dir: Path, dist: distributed.Dist) -> Iterator[Path]:
    """The dvclive directory to write to: a temporary one renamed onto ``live_dir`` on success
    (rank 0); other ranks write nothing."""
    if not dist.is_main:
        yield live_dir
        return
    with atomic_path(live_dir) as tmp:
        yield tmp


def _record(result: FitResult, epochs: int, lr: float, seed: int, samples: int, world: int,
            frames_2d: str | None = None) -> TrainingRecord:
    return TrainingRecord(epochs=int(epochs), best_epoch=int(result.best_epoch), selected_on=result.selected_on,
                          train_time_s=float(result.train_time_s), seed=seed, lr=lr, train_samples=samples,
                          processes=world, frames_2d=frames_2d, history=result.history,
                          execution=result.execution, frozen=result.frozen, threads=result.threads)


def run_train2d(cfg: Config, curated_dir: str | Path = CURATED_DIR,
                extra_frames_dir: str | Path = EXTRA_FRAMES_DIR, model_path: str | Path = MODEL2D,
                live_dir: str | Path = LIVE2D) -> CheckpointMeta:
    """Stage ``train2d`` (one rank of it under a launcher): curated images (+ the extra frames with
    ``train2d.frames: all``) -> ``model_path`` and ``live_dir``."""
    with distributed.session(resolve_device(cfg.train.device, "train.device").type) as dist:
        check_processes(cfg.train.processes, dist.world, "train2d")
        return _train2d(cfg, Path(curated_dir), Path(extra_frames_dir), Path(model_path), Path(live_dir), dist)


def run_train3d(cfg: Config, init_path: str | Path = MODEL3D_INIT, clips_dir: str | Path = CLIPS_DIR,
                model_path: str | Path = MODEL3D, live_dir: str | Path = LIVE3D) -> CheckpointMeta:
    """Stage ``train3d`` (one rank of it under a launcher): ``init_path`` + clips -> ``model_path``."""
    with distributed.session(resolve_device(cfg.train.device, "train.device").type) as dist:
        check_processes(cfg.train.processes, dist.world, "train3d")
        return _train3d(cfg, Path(init_path), Path(clips_dir), Path(model_path), Path(live_dir), dist)


def _train2d(cfg: Config, curated_dir: Path, extra_dir: Path, model_path: Path, live_dir: Path,
             dist: distributed.Dist) -> CheckpointMeta:
    t = cfg.train
    images = open_images(curated_dir)
    classes = classes_of(images, str(curated_dir / "index.csv"))
    parts = [split_samples(images, curated_dir / "images.npy", 4, "train")]
    if cfg.train2d.frames == "all":
        extra = open_images(extra_dir)
        if extra.array.shape[1:] != images.array.shape[1:]:
            raise StoreError(f"{extra_dir}: frames are {extra.array.shape[1:3]}, images "
                             f"{images.array.shape[1:3]}; re-run extra_frames")
        if any(r.label >= len(classes) or classes[r.label].wnid != r.wnid for r in extra.rows):
            raise StoreError(f"{extra_dir}: classes differ from {curated_dir}'s; re-run extra_frames")
        if not extra.rows:
            log.warning("train2d.frames is all but %s holds no frames (the clips add none: extra_frames said "
                        "why); train2d trains on the original images alone", extra_dir)
        parts.append(split_samples(extra, extra_dir / "images.npy", 4, "train"))
    train_set = concat(parts)
    if train_set is None:
        raise StoreError(f"{curated_dir}: no train split")
    val_set = _selection_set(images, curated_dir / "images.npy", 4, t.select_on, "train2d")
    log.info("train2d: %d train samples (frames: %s), %d val images, %d classes, arch %s", len(cast(Sized, train_set)),
             cfg.train2d.frames, 0 if val_set is None else len(val_set), len(classes), cfg.model.arch)

    m = cfg.model
    mean, std = resolve_normalisation(m.arch, m.pretrained, t.mean, t.std)
    t = dataclasses.replace(t, mean=mean, std=std)  # recorded in the checkpoint: later stages read it there
    log.info("train2d: input normalisation mean %s std %s (%s)", mean, std,
             "train.mean/std" if cfg.train.mean is not None and cfg.train.std is not None
             else "null train.mean/std follow the weights")
    torch.manual_seed(t.seed)  # the fresh head (and any random init) is reproducible
    model = build_backbone(m.arch, len(classes), m.pretrained, m.weights,
                           head_classes=[c.wnid for c in classes] if m.head == "imagenet" else None)
    if m.head == "imagenet":
        log.info("train2d: the head starts from the ImageNet head's rows of the %d classes (model.head: imagenet)",
                 len(classes))
    source = describe_source(m.arch, m.pretrained, m.weights)
    if m.head == "imagenet":
        source = f"{source}; head: the ImageNet head's rows of the classes"

    def meta(result: FitResult) -> CheckpointMeta:
        assert t.mean is not None and t.std is not None  # resolved above
        return CheckpointMeta(
            kind="2d", arch=m.arch, pretrained=m.pretrained, classes=classes,
            input_size=t.image_size, mean=list(t.mean), std=list(t.std), weights=source,
            image_size=int(images.array.shape[1]),
            training=_record(result, cfg.train2d.epochs, t.lr, t.seed, len(cast(Sized, train_set)), dist.world,
                             cfg.train2d.frames))

    inputs = [curated_dir / "images.npy", curated_dir / "index.csv"]
    if cfg.train2d.frames == "all":
        inputs += [extra_dir / "images.npy", extra_dir / "index.csv"]
    return _fit_and_save("train2d", model, train_set, val_set, cfg.train2d.epochs, cfg.train2d.batch_size, t,
                         meta, model_path, live_dir, dist, inputs)


def _selection_set(store: Store, path: Path, ndim: int, split: str, stage: str):
    """The split model selection reads: ``val`` (gva) or ``test`` (the reference code, loudly)."""
    if split == "test":
        log.warning("%s: %s", stage, TEST_SELECTION_WARNING)
    return split_samples(store, path, ndim, split)


def _train3d(cfg: Config, init_path: Path, clips_dir: Path, model_path: Path, live_dir: Path,
             dist: distributed.Dist) -> CheckpointMeta:
    t = cfg.train
    if cfg.train3d.lr is not None:
        # Fine-tuning a 2-D model trained from scratch wants a smaller step than that training.
        t = dataclasses.replace(t, lr=cfg.train3d.lr)
    if cfg.train3d.augment is not None:
        # The reference code trains its 3-D model without augmentation (its 2-D one with crop + flip).
        t = dataclasses.replace(t, augment=cfg.train3d.augment)
    model, init = load_checkpoint(init_path)
    if init.kind != "3d":
        raise CheckpointError(f"{init_path}: expected a 3d checkpoint, got {init.kind}")
    assert init.inflation is not None  # validated: a 3-D checkpoint has its plan
    # null train.mean/std: the init checkpoint's (what the 2-D model was trained with, or what the
    # ImageNet weights of inflate.source: imagenet expect)
    t = dataclasses.replace(t, mean=init.mean if t.mean is None else t.mean,
                            std=init.std if t.std is None else t.std)
    clips = open_clips(clips_dir, image_size=init.image_size)
    classes = classes_of(clips, str(clips_dir / "index.csv"))
    if classes != init.classes:
        raise StoreError(f"{clips_dir}: classes {[c.wnid for c in classes]} differ from {init_path}'s "
                         f"{init.wnids}")
    path = clips_dir / "clips.npy"
    train_set = split_samples(clips, path, 5, "train")
    if train_set is None:
        raise StoreError(f"{clips_dir}: no train split")
    val_set = _selection_set(clips, path, 5, t.select_on, "train3d")
    frames = int(clips.array.shape[1])
    log.info("train3d: %d train clips of %d frames, %d val clips, arch %s inflated (%s, last_n %s)",
             len(train_set), frames, 0 if val_set is None else len(val_set), init.arch,
             init.inflation.source, init.inflation.last_n)

    torch.manual_seed(t.seed)
    def meta(result: FitResult) -> CheckpointMeta:
        assert t.mean is not None and t.std is not None  # resolved above
        return dataclasses.replace(init, frames=frames, input_size=t.image_size, mean=list(t.mean),
                                   std=list(t.std), training=_record(result, cfg.train3d.epochs, t.lr, t.seed,
                                                                     len(train_set), dist.world))

    return _fit_and_save("train3d", model, train_set, val_set, cfg.train3d.epochs, cfg.train3d.batch_size, t,
                         meta, model_path, live_dir, dist, [path, clips_dir / "index.csv"])


def _fit_and_save(stage: str, model: torch.nn.Module, train_set, val_set, epochs: int, batch_size: int,
                  t: TrainConfig, make_meta: Callable[[FitResult], CheckpointMeta], model_path: Path,
                  live_dir: Path, dist: distributed.Dist, inputs: list[Path]) -> CheckpointMeta:
    """Train (continuing an interrupted run of the same inputs and settings: :mod:`gva.train.resume`),
    then write the checkpoint and swap in the dvclive log together (rank 0)."""
    resume = (Resume.for_stage(stage, model, inputs, settings_of(t, epochs=epochs, batch_size=batch_size,
                                                                 processes=dist.world))
              if not dist.active else None)
    with _outputs(live_dir, dist) as live_tmp:
        result = fit(model, train_set, val_set, t, epochs, batch_size, live_tmp, stage, dist, t.select_on, resume)
        meta = make_meta(result)
        if dist.is_main:
            save_checkpoint(model_path, model, meta)
    if resume is not None:
        resume.clear()  # the outputs are whole: nothing left to continue
    dist.barrier(f"{stage}: waiting for rank 0 to write the checkpoint")
    log.info("%s: wrote %s (epoch %d selected on %s, %.1fs)", stage, model_path, result.best_epoch,
             result.selected_on, result.train_time_s)
    return meta


__all__ = ["run_train2d", "run_train3d", "classes_of", "check_processes"]
