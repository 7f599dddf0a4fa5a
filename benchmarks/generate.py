"""Benchmark clip generation: the reference's naive loop vs gva's batched generator, plus the controls.

    python benchmarks/generate.py                       # tiny-svd on CPU (seconds)
    python benchmarks/generate.py --full --n 16 --batch-size 8 --steps 12 --size 224   # GPU

(a) naive: one ``StableVideoDiffusionPipeline`` call per image, like the reference code;
(b) gva: :class:`gva.generate.svd.SvdGenerator`, ``--batch-size`` images per call;
same pipeline object, same settings. ``--full`` builds the full-size SVD architecture
(default UNetSpatioTemporalConditionModel / AutoencoderKLTemporalDecoder configs, CLIP ViT-H/14)
with random weights: the real compute cost without the hub; meant for a GPU.
Then images/s of the ``motion`` and ``repeat`` controls. Prints measured figures only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without install

from gva.config import MotionConfig  # noqa: E402
from gva.device import device_name  # noqa: E402
from gva.generate.registry import resolve_device  # noqa: E402
from gva.generate.svd import resolve_dtype  # noqa: E402


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def naive_loop(pipe, images: np.ndarray, seeds: list[int], args, device: str) -> float:
    """The reference: one pipeline call per image, PIL in, frames out. Returns seconds."""
    import torch
    from PIL import Image

    t0 = time.perf_counter()
    for im, seed in zip(images, seeds):
        pil = Image.fromarray(im).resize((args.size, args.size), Image.BICUBIC)
        frames = pipe(pil, height=args.size, width=args.size, num_frames=args.frames,
                      num_inference_steps=args.steps, decode_chunk_size=args.frames,
                      generator=torch.Generator("cpu").manual_seed(seed), output_type="np").frames[0]
        # back to the curated resolution, as the reference did per frame
        _ = [np.asarray(Image.fromarray((f * 255).round().astype(np.uint8)).resize(im.shape[1::-1], Image.BICUBIC))
             for f in frames]
    _sync(device)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="full-size random-weight SVD (use a GPU)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"], help="GPU dtype (CPU: fp32)")
    ap.add_argument("--n", type=int, default=8, help="images per measurement")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--size", type=int, default=64, help="generation height = width (svd.height/width)")
    ap.add_argument("--control-n", type=int, default=512, help="images for the motion/repeat figures")
    args = ap.parse_args(argv)

    import torch

    from gva.generate.controls import MotionGenerator, RepeatGenerator
    from gva.generate.svd import SvdGenerator, build_full_random_pipeline, load_pipeline, tiny_model_dir

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    if args.full:
        pipe = build_full_random_pipeline(device, dtype)
        model = "full-size SVD architecture, random weights"
    else:
        pipe = load_pipeline(str(tiny_model_dir()), device, dtype)
        model = "tiny-svd"
    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, 64, 64, 3), dtype=np.uint8)
    seeds = [int(s) for s in rng.integers(0, 2 ** 31, args.n)]
    print(f"model: {model}; device {device} ({device_name(device)}), "
          f"dtype {dtype}, torch threads {torch.get_num_threads()}")
    print(f"settings: {args.n} images 64 px -> {args.size}x{args.size}, {args.frames} frames, {args.steps} steps, "
          f"batch {args.batch_size}")

    naive_loop(pipe, images[:1], seeds[:1], args, device)  # warm-up
    t_naive = naive_loop(pipe, images, seeds, args, device)

    gen = SvdGenerator(pipe, frames=args.frames, steps=args.steps, height=args.size, width=args.size,
                       decode_chunk_size=args.frames, batch_size=args.batch_size)
    gen.generate(images[:args.batch_size], seeds[:args.batch_size])  # warm-up at the batch shape
    _sync(device)
    t0 = time.perf_counter()
    gen.generate(images, seeds)
    _sync(device)
    t_gva = time.perf_counter() - t0

    big = rng.integers(0, 256, (args.control_n, 64, 64, 3), dtype=np.uint8)
    cseeds = list(range(args.control_n))
    rates = {}
    for name, ctrl in (("motion", MotionGenerator(args.frames, MotionConfig())), ("repeat", RepeatGenerator(args.frames))):
        ctrl.generate(big[:8], cseeds[:8])
        t0 = time.perf_counter()
        ctrl.generate(big, cseeds)
        rates[name] = args.control_n / (time.perf_counter() - t0)

    r_naive, r_gva = args.n / t_naive, args.n / t_gva
    print(f"(a) naive loop, 1 image/call     : {r_naive:10.3f} images/s  ({t_naive:.2f} s)")
    print(f"(b) gva batched, {args.batch_size:3d} images/call : {r_gva:10.3f} images/s  ({t_gva:.2f} s)")
    print(f"    speed-up (b)/(a)             : {r_gva / r_naive:10.2f}x")
    print(f"motion control                   : {rates['motion']:10.1f} images/s")
    print(f"repeat control                   : {rates['repeat']:10.1f} images/s")


if __name__ == "__main__":
    main()
