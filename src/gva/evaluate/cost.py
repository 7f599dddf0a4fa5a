"""What a model costs: parameters, MACs per sample, and per-sample latency.

MACs come from ``torch.utils.flop_counter.FlopCounterMode`` (a maintained counter of the aten ops
actually dispatched: convolutions, matmuls, attention), halved because it counts a multiply-add
as two FLOPs. Element-wise ops (BN, ReLU, pooling) are not counted, the usual convention.

Latency times the model's forward only (inputs already preprocessed and on the device), after
``warmup`` untimed calls, with ``torch.cuda.synchronize`` around every timed call on CUDA: kernel
launches are asynchronous, so timing without it measures the launch, not the work.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from gva.device import synchronize


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BN statistics excluded)."""
    return int(sum(p.numel() for p in model.parameters()))


@torch.inference_mode()
def count_macs(model: nn.Module, example: torch.Tensor) -> int:
    """Multiply-accumulates of one forward pass per sample of ``example`` ([B, ...], B >= 1)."""
    if example.ndim < 1 or example.shape[0] < 1:
        raise ValueError(f"example must be a non-empty batch, got shape {tuple(example.shape)}")
    counter = FlopCounterMode(display=False)
    with counter:
        model(example)
    flops = counter.get_total_flops()
    return int(round(flops / 2 / example.shape[0]))


@dataclass(frozen=True)
class Latency:
    batch_size: int
    median_ms: float        # per sample: (time of one batch forward) / batch_size
    p90_ms: float
    repeats: int            # timed calls actually made (fewer than asked if the budget ran out)
    warmup: int             # untimed calls actually made

    def summary(self) -> dict[str, float]:
        return {"median": self.median_ms, "p90": self.p90_ms}


def make_batch(samples: torch.Tensor, batch_size: int) -> torch.Tensor:
    """A batch of exactly ``batch_size`` built by cycling through ``samples`` [N, ...]."""
    if samples.shape[0] == 0:
        raise ValueError("no samples to build a timing batch from")
    idx = torch.arange(batch_size) % samples.shape[0]
    return samples[idx].contiguous()


MIN_TIMED = 3  # a budget never cuts the timed calls below this (a median of 1 is no statistic)


@torch.inference_mode()
def measure_latency(model: nn.Module, samples: torch.Tensor, batch_size: int, warmup: int,
                    repeats: int, device: torch.device | str,
                    budget_s: float | None = None) -> Latency:
    """Median and 90th-percentile per-sample latency (ms) of ``model`` at ``batch_size``.

    ``samples`` are preprocessed model inputs [N, ...]; a batch of ``batch_size`` is built from
    them (cycling if N is smaller) and moved to ``device`` before timing. ``budget_s`` bounds the
    wall time (a full-size 3-D model on a CPU can take a minute per batch): warm-up stops after
    one call once half of it is spent, timing after ``MIN_TIMED`` calls once all of it is.
    """
    if batch_size < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need batch_size >= 1, repeats >= 1, warmup >= 0; "
                         f"got {batch_size}, {repeats}, {warmup}")
    device = torch.device(device)
    batch = make_batch(samples, batch_size).to(device)
    budget = float("inf") if budget_s is None else budget_s
    began = time.perf_counter()
    warmed = 0
    while warmed < warmup and (warmed == 0 or time.perf_counter() - began < budget / 2):
        model(batch)
        warmed += 1
    synchronize(device)
    times: list[float] = []
    while len(times) < repeats and (len(times) < MIN_TIMED
                                    or time.perf_counter() - began < budget):
        synchronize(device)
        start = time.perf_counter()
        model(batch)
        synchronize(device)
        times.append(time.perf_counter() - start)
    per_sample_ms = np.asarray(times) * 1000.0 / batch_size
    return Latency(batch_size=batch_size, median_ms=float(np.median(per_sample_ms)),
                   p90_ms=float(np.percentile(per_sample_ms, 90)), repeats=len(times),
                   warmup=warmed)
