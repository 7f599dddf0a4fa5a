"""Training input pipeline: memory-mapped uint8 stores -> batches -> normalised float tensors.

Datasets read ``images.npy`` / ``clips.npy`` directly (memory-mapped, one sample at a time) and
yield uint8 tensors; :func:`to_model_input` turns a uint8 batch into the model's input on the
device it lives on (resize + normalise there, so workers only ship uint8, 4x less than float).
Augmentation (``train.augment``) is a random horizontal flip and a random translation
(reflect-pad by 1/8 of the side, crop back), drawn once per sample and applied identically to
every frame of a clip. The draw is keyed by (``train.seed``, epoch, sample index)
(:class:`KeyedSamples`): the training sampler yields ``(index, epoch)`` keys, so a sample's
augmentation never depends on ``train.num_workers``, the process count or the batch it lands in.

Training loaders are sharded like ``torch.utils.data.DistributedSampler`` for any process count
(:func:`make_train_loader`): one seeded permutation per epoch, rank ``r`` of ``W`` takes every
``W``-th index and batches of ``batch_size / W``, so the global batch of step ``j`` is positions
``[j*B, (j+1)*B)`` of the permutation whatever ``W`` is. Validation shards are disjoint strides
with no padding (:func:`make_eval_loader`), so summed metrics cover every sample exactly once.
"""

from __future__ import annotations

import random
from collections.abc import Sequence, Sized
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from gva.data.arrays import Store, read_array
from gva.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_input(batch: torch.Tensor, size: int, mean: Sequence[float],
                   std: Sequence[float]) -> torch.Tensor:
    """uint8 ``[B,H,W,3]`` / ``[B,T,H,W,3]`` -> float ``[B,3,S,S]`` / ``[B,3,T,S,S]``.

    Bilinear resize with antialiasing to ``size`` x ``size``, scale to [0,1], then
    ``(x - mean) / std`` per channel. Runs on ``batch``'s device.
    """
    if batch.dtype != torch.uint8 or batch.dim() not in (4, 5) or batch.shape[-1] != 3:
        raise ValueError(f"expected a uint8 batch [B,H,W,3] or [B,T,H,W,3], got "
                         f"{batch.dtype} {tuple(batch.shape)}")
    lead = batch.shape[:-3]
    h, w = batch.shape[-3], batch.shape[-2]
    x = batch.reshape(-1, h, w, 3).permute(0, 3, 1, 2).float().div_(255.0)
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    x = ((x - m) / s).reshape(*lead, 3, size, size)
    if batch.dim() == 5:
        x = x.permute(0, 2, 1, 3, 4)  # [B,T,3,S,S] -> [B,3,T,S,S]
    return x.contiguous()


def augment_sample(sample: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random flip + translation of ``[...,H,W,3]`` uint8; one draw for all leading (frame) axes."""
    h, w = sample.shape[-3], sample.shape[-2]
    flip = bool(rng.random() < 0.5)
    pad = max(1, min(h, w) // 8)
    dy, dx = (int(v) for v in rng.integers(0, 2 * pad + 1, 2))
    lead = [(0, 0)] * (sample.ndim - 3)
    padded = np.pad(sample, lead + [(pad, pad), (pad, pad), (0, 0)], mode="reflect")
    out = padded[..., dy:dy + h, dx:dx + w, :]
    if flip:
        out = out[..., :, ::-1, :]
    return np.ascontiguousarray(out)


class StoreSamples(Dataset):
    """Samples of a uint8 store: whole rows (images, or clips) or single frames of clips.

    The array is opened memory-mapped lazily in each process (not pickled into workers).
    ``frames``: None -> row ``rows[i]`` as stored; else frame ``frames[i]`` of clip ``rows[i]``.
    """

    def __init__(self, path: str | Path, ndim: int, rows: np.ndarray, labels: np.ndarray,
                 frames: np.ndarray | None = None) -> None:
        self.path, self.ndim = Path(path), ndim
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.frames = None if frames is None else np.asarray(frames, dtype=np.int64)
        if len(self.labels) != len(self.rows) or (self.frames is not None and len(self.frames) != len(self.rows)):
            raise ValueError("rows, labels and frames must have the same length")
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = read_array(self.path, self.ndim)
        return self._array

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"] = None  # a pickled memmap would be copied into memory
        return state

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        row = self.rows[i]
        sample = self.array[row] if self.frames is None else self.array[row, self.frames[i]]
        return torch.from_numpy(np.array(sample)), int(self.labels[i])  # a copy off the mmap


def split_samples(store: Store, path: str | Path, ndim: int, split: str) -> StoreSamples | None:
    """All rows of ``split`` (None if the split is empty)."""
    idx = store.split_indices(split)
    if len(idx) == 0:
        return None
    return StoreSamples(path, ndim, idx, store.labels[idx])


def augment_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The random stream of sample ``index``'s augmentation in ``epoch`` of a run seeded ``seed``."""
    return np.random.default_rng((seed % 2**64, epoch, index))


class KeyedSamples(Dataset):
    """A training set read by ``(index, epoch)`` keys (:class:`EpochKeySampler`): sample ``index``
    of ``dataset``, augmented (when ``augment``) from :func:`augment_rng` ``(seed, epoch, index)``.

    Keying the draw by the sample rather than drawing from a worker's random stream makes it the
    same whatever the number of loader workers or processes and whichever batch the sample is in.
    """

    def __init__(self, dataset: Dataset, seed: int, augment: bool) -> None:
        self.dataset, self.seed, self.augment = dataset, int(seed), bool(augment)

    def __len__(self) -> int:
        return len(cast(Sized, self.dataset))

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, int]:
        index, epoch = key
        sample, label = self.dataset[index]
        if self.augment:
            sample = torch.from_numpy(augment_sample(sample.numpy(), augment_rng(self.seed, epoch, index)))
        return sample, label


class EpochKeySampler(DistributedSampler):
    """``DistributedSampler`` that yields ``(index, epoch)``: the key :class:`KeyedSamples` reads."""

    def __iter__(self):
        return ((i, self.epoch) for i in super().__iter__())


def concat(parts: Sequence[Dataset | None]) -> Dataset | None:
    """Concatenate the non-empty datasets (None if there are none)."""
    kept = [p for p in parts if p is not None and len(cast(Sized, p)) > 0]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else ConcatDataset(kept)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: derive numpy/random seeds from the worker's torch seed
    (itself drawn from the loader's seeded generator), so every RNG in a worker is reproducible."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                pin_memory: bool = False) -> DataLoader:
    """A DataLoader over uint8 samples; shuffling drawn from a generator seeded with ``seed``.

    Training drops the last incomplete batch when there is more than one batch: a final batch of
    one sample would break BatchNorm's batch statistics.
    """
    gen = torch.Generator()
    gen.manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      generator=gen, worker_init_fn=seed_worker, pin_memory=pin_memory,
                      drop_last=shuffle and len(cast(Sized, dataset)) > batch_size,
                      persistent_workers=False)


def per_rank_batch(batch_size: int, world: int, key: str = "batch_size") -> int:
    """``batch_size`` is the global batch: each of ``world`` ranks takes ``batch_size / world``."""
    if batch_size % world:
        raise ConfigError(f"{key} {batch_size} is not divisible by the {world} processes; the global batch is "
                         f"split evenly over the ranks (use a multiple of {world})")
    return batch_size // world


def make_train_loader(dataset: Dataset, batch_size: int, num_workers: int, seed: int, rank: int = 0,
                      world: int = 1, pin_memory: bool = False, augment: bool = False) -> DataLoader:
    """Shuffled loader over this rank's shard; ``batch_size`` is the global batch (see the module doc).

    The epoch's permutation comes from ``seed + epoch``, and with ``augment`` each sample's flip
    and shift from (``seed``, epoch, index) (:class:`KeyedSamples`): call
    ``loader.sampler.set_epoch(epoch)`` before each epoch. Workers draw nothing at random. The
    tail that does not fill ``world`` ranks evenly is dropped (every rank takes the same number of
    steps, as DDP needs), and so is the last incomplete batch when there is more than one (a
    one-sample batch would break BatchNorm's batch statistics).
    """
    if len(cast(Sized, dataset)) < world:
        raise ConfigError(f"{len(cast(Sized, dataset))} training samples cannot be shared by {world} processes")
    per_rank = per_rank_batch(batch_size, world)
    sampler = EpochKeySampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=True)
    return DataLoader(KeyedSamples(dataset, seed, augment), batch_size=per_rank, sampler=sampler,
                      num_workers=num_workers, pin_memory=pin_memory, drop_last=len(sampler) > per_rank,
                      persistent_workers=False)


def make_eval_loader(dataset: Dataset, batch_size: int, num_workers: int, rank: int = 0, world: int = 1,
                     pin_memory: bool = False) -> DataLoader:
    """In-order loader over samples ``rank, rank + world, ...`` (all of them for one process)."""
    shard = dataset if world == 1 else Subset(dataset, range(rank, len(cast(Sized, dataset)), world))
    return DataLoader(shard, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      worker_init_fn=seed_worker, pin_memory=pin_memory, persistent_workers=False)
