"""Input pipeline vs training throughput, 2-D (images) and 3-D (clips), at several input sizes.

For each mode and size it prints the loader's samples/s alone (memory-mapped uint8 store ->
DataLoader -> ``to_model_input`` on the device) and the training samples/s (the same loader plus
forward/backward/step of ``--arch``, inflated for 3-D). If loader >> train, the input pipeline is
not the bottleneck. Uses synthetic stores in a temp dir unless ``--curated`` / ``--clips`` point
at real ones.

    python benchmarks/loader.py                       # short default run (CPU: ~1-2 min)
    python benchmarks/loader.py --arch vgg11_bn --steps 20 --batch-2d 32 --batch-3d 8 --workers 4
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gva.data.arrays import IndexRow, open_store, write_array, write_index
from gva.data.loader import IMAGENET_MEAN, IMAGENET_STD, make_loader, split_samples, to_model_input
from gva.device import resolve_device
from gva.models import build_backbone, inflate


def _synthetic_stores(root: Path, n: int, frames: int, side: int) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    rows = [IndexRow(i, "train", f"n{i % 2:08d}", f"class{i % 2}", i % 2, "synthetic")
            for i in range(n)]
    images = rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8)
    clips = np.repeat(images[:, None], frames, axis=1)
    for name, array, fname in (("curated", images, "images.npy"), ("clips", clips, "clips.npy")):
        write_array(root / name / fname, array)
        write_index(root / name / "index.csv", rows)
    return root / "curated", root / "clips"


def _batches(loader, steps: int):
    """Yield ``steps`` batches, cycling over the loader if it is short."""
    done = 0
    while done < steps:
        for batch in loader:
            yield batch
            done += 1
            if done == steps:
                return


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(dataset, model, batch: int, size: int, steps: int, workers: int,
            device: torch.device) -> tuple[float, float]:
    """(loader samples/s, training samples/s) over ``steps`` batches after one warm-up batch."""
    pin = device.type == "cuda"
    loader = make_loader(dataset, batch, True, workers, 0, pin)

    def run(train: bool) -> float:
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9) if train else None
        model.train()
        seen, start = 0, None
        for i, (x, y) in enumerate(_batches(loader, steps + 1)):
            if i == 1:  # first batch warms up workers, cuDNN, oneDNN primitives
                _sync(device)
                start = time.perf_counter()
            x = to_model_input(x.to(device, non_blocking=True), size, IMAGENET_MEAN, IMAGENET_STD)
            if train:
                loss = F.cross_entropy(model(x), y.to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            if i >= 1:
                seen += len(y)
        _sync(device)
        return seen / (time.perf_counter() - start)

    return run(False), run(True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet18", help="model.arch (torchvision name or timm:<name>)")
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 224], help="train.image_size values")
    p.add_argument("--steps", type=int, default=3, help="timed batches per measurement")
    p.add_argument("--batch-2d", type=int, default=8)
    p.add_argument("--batch-3d", type=int, default=2)
    p.add_argument("--frames", type=int, default=3, help="frames per synthetic clip")
    p.add_argument("--workers", type=int, default=0, help="DataLoader num_workers")
    p.add_argument("--device", default="auto")
    p.add_argument("--curated", type=Path, help="a real data/curated store (default: synthetic)")
    p.add_argument("--clips", type=Path, help="a real data/clips store (default: synthetic)")
    args = p.parse_args(argv)

    device = resolve_device(args.device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        curated, clips = args.curated, args.clips
        if curated is None or clips is None:
            n = max(args.batch_2d, args.batch_3d) * (args.steps + 1)
            syn_curated, syn_clips = _synthetic_stores(Path(tmp), n, args.frames, 64)
            curated, clips = curated or syn_curated, clips or syn_clips
        image_store = open_store(curated, "images.npy", 4)
        clip_store = open_store(clips, "clips.npy", 5)
        images = split_samples(image_store, curated / "images.npy", 4, "train")
        videos = split_samples(clip_store, clips / "clips.npy", 5, "train")
        num_classes = int(image_store.labels.max()) + 1
        model2d = build_backbone(args.arch, num_classes, pretrained=False).to(device)
        model3d = inflate(model2d.cpu(), probe_size=min(args.sizes + [64])).to(device)
        model2d.to(device)
        print(f"arch {args.arch}, device {device}, workers {args.workers}, threads "
              f"{torch.get_num_threads()}, clips of {clip_store.array.shape[1]} frames, "
              f"store {image_store.array.shape[1]}px, {args.steps} timed batches")
        print(f"{'mode':<4} {'size':>5} {'batch':>5} {'loader samples/s':>17} {'train samples/s':>16}")
        for size in args.sizes:
            for mode, ds, model, batch in (("2d", images, model2d, args.batch_2d),
                                           ("3d", videos, model3d, args.batch_3d)):
                load_sps, train_sps = measure(ds, model, batch, size, args.steps, args.workers, device)
                print(f"{mode:<4} {size:>5} {batch:>5} {load_sps:>17.1f} {train_sps:>16.2f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
