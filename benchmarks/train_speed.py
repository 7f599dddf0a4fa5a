"""Training-step and inference samples/s for every precision x layout x compile, side by side.

    python benchmarks/train_speed.py                      # the CPU table of docs/benchmarks.md
    python benchmarks/train_speed.py --device cuda --batch-3d 32 --steps 20
    python benchmarks/train_speed.py --models resnet18:48:3d-last2 --compile off on

Each row builds the model (random init), runs warm-up steps, then times ``--steps`` SGD steps
through gva's own loop (:func:`gva.train.loop.train_one_epoch`, uint8 batches converted on the
fly, as in training) and ``--steps`` inference calls (:class:`gva.execution.FastInference`, as
in evaluate). Ratios are against fp32 / contiguous / eager of the same model, measured in the
same run. The loader column is gva's memory-mapped loader alone (0 workers), to show whether it
would become the bottleneck. A model is ``ARCH:SIZE:KIND`` with KIND ``2d``, ``3d`` (every conv
temporal) or ``3d-last2`` (``inflate.last_n: 2``). Numbers only: no assertion anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from gva.data.arrays import IndexRow, open_store, write_array, write_index
from gva.data.loader import IMAGENET_MEAN, IMAGENET_STD, make_train_loader, split_samples, to_model_input
from gva.device import device_name, resolve_device, synchronize
from gva.execution import Execution, FastInference
from gva.models import build_backbone, inflate
from gva.train.loop import train_one_epoch

DEFAULT_MODELS = ["resnet18:48:2d", "resnet18:48:3d-last2", "resnet18:48:3d", "resnet18:64:2d",
                  "resnet18:64:3d-last2", "vgg11_bn:64:2d", "vgg11_bn:64:3d-last2"]


def build(arch: str, kind: str, num_classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_backbone(arch, num_classes, pretrained=False)
    if kind == "2d":
        return model
    return inflate(model, time_kernel=3, init="centre", last_n=2 if kind == "3d-last2" else None,
                   probe_size=32)


def batches(kind: str, batch: int, frames: int, steps: int, side: int = 64) -> list:
    """``steps`` uint8 batches as the loader yields them (curated side 64, upscaled by the model input)."""
    g = torch.Generator().manual_seed(0)
    shape = (batch, side, side, 3) if kind == "2d" else (batch, frames, side, side, 3)
    x = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    y = torch.randint(0, 10, (batch,), generator=g)
    return [(x, y)] * steps


def time_train(model, execution: Execution, data: list, warm: list, size: int, device) -> float:
    """Samples/s of SGD training steps through gva's loop."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    net = model
    if execution.compile:
        example = to_model_input(data[0][0][:2].to(device), size, IMAGENET_MEAN, IMAGENET_STD)
        net = execution.compiled(model, example, "benchmark")
    scaler = execution.grad_scaler()
    train_one_epoch(net, warm, opt, device, size, IMAGENET_MEAN, IMAGENET_STD, 1, "warm-up", execution, scaler)
    synchronize(device)
    start = time.perf_counter()
    train_one_epoch(net, data, opt, device, size, IMAGENET_MEAN, IMAGENET_STD, 1, "timed", execution, scaler)
    synchronize(device)
    return sum(len(y) for _, y in data) / (time.perf_counter() - start)


@torch.no_grad()
def time_infer(model, execution: Execution, data: list, warm: int, size: int, device, clips: bool) -> float:
    """Samples/s of inference calls, median over calls."""
    model.eval()
    wrapped = FastInference(model, execution, clips)
    x = to_model_input(data[0][0].to(device), size, IMAGENET_MEAN, IMAGENET_STD)
    if execution.compile:
        wrapped.compile_on(x[:2], "benchmark")
    for _ in range(warm):
        wrapped(x)
    times = []
    for _ in range(len(data)):
        synchronize(device)
        start = time.perf_counter()
        wrapped(x)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return len(x) / statistics.median(times)


def loader_rate(kind: str, batch: int, frames: int, n: int = 256) -> float:
    """gva's memory-mapped loader alone (0 workers, augmentation on), samples/s."""
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        shape = (n, 64, 64, 3) if kind == "2d" else (n, frames, 64, 64, 3)
        name = "images.npy" if kind == "2d" else "clips.npy"
        write_array(Path(tmp) / name, rng.integers(0, 256, shape, dtype=np.uint8))
        write_index(Path(tmp) / "index.csv", [IndexRow(i, "train", "n0", "c", 0, str(i)) for i in range(n)])
        store = open_store(tmp, name, len(shape))
        ds = split_samples(store, Path(tmp) / name, len(shape), "train")
        loader = make_train_loader(ds, batch, num_workers=0, seed=0, augment=True)
        start = time.perf_counter()
        count = sum(len(y) for _, y in loader)
        return count / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS, help="ARCH:SIZE:KIND (2d, 3d, 3d-last2)")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--layouts", nargs="+", default=["contiguous", "channels_last"],
                    choices=["contiguous", "channels_last"])
    ap.add_argument("--compile", nargs="+", default=["off"], choices=["off", "on"])
    ap.add_argument("--batch-2d", type=int, default=32)
    ap.add_argument("--batch-3d", type=int, default=8)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4, help="timed steps / calls per row")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)
    print(f"device {device} ({device_name(device)}), torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batch 2-D {args.batch_2d}, 3-D {args.batch_3d} clips of {args.frames} frames; {args.steps} timed steps")
    print(f"{'model':24} {'precision':9} {'layout':13} {'compile':7} {'train/s':>8} {'x':>5} "
          f"{'infer/s':>8} {'x':>5} {'loader/s':>9}")
    for spec in args.models:
        arch, size, kind = spec.split(":")
        size = int(size)
        batch = args.batch_2d if kind == "2d" else args.batch_3d
        data = batches(kind, batch, args.frames, args.steps)
        warm = batches(kind, batch, args.frames, args.warmup)
        loader = loader_rate("2d" if kind == "2d" else "3d", batch, args.frames)
        base: tuple[float, float] | None = None
        for precision, layout, comp in itertools.product(args.precisions, args.layouts, args.compile):
            try:
                execution = Execution.resolve(precision, layout == "channels_last", comp == "on", device)
            except ValueError as exc:
                print(f"{spec:24} {precision:9} {layout:13} {comp:7} skipped: {exc}")
                continue
            model = execution.model(build(arch, kind).to(device), kind != "2d")
            train = time_train(model, execution, data, warm, size, device)
            infer = time_infer(model, execution, data, args.warmup, size, device, kind != "2d")
            if base is None:
                base = (train, infer)
            print(f"{spec:24} {precision:9} {layout:13} {comp:7} {train:8.1f} {train / base[0]:5.2f} "
                  f"{infer:8.1f} {infer / base[1]:5.2f} {loader:9.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
