"""Benchmark clip generation: naive vs batched SVD, and the cost of every image-to-video generator.

    python benchmarks/generate.py                  # tiny-svd on CPU (seconds): naive vs batched + controls
    python benchmarks/generate.py --full NAME      # cost of NAME: svd, cogvideox, ltx, wan or i2vgen
    python benchmarks/generate.py --full svd --n 16 --batch-size 8   # on a GPU: also the old full-SVD benchmark

**Default (tiny-svd).** (a) naive: one ``StableVideoDiffusionPipeline`` call per image, like the
reference code; (b) gva: :class:`gva.generate.svd.SvdGenerator`, ``--batch-size`` images per call;
same pipeline object, same settings (64 px, 2 steps). Then images/s of the ``motion`` and
``repeat`` controls.

**Cost mode (``--full NAME``; a bare ``--full`` means svd).** The real architecture of NAME's default
model with random weights (``benchmarks/full_builds.py``: :func:`full_builds.full_pipeline`, SVD:
:func:`full_builds.full_svd_pipeline`), at gva's configured call (``--height/--width`` or
``--size``: 224x224, CogVideoX 480x720; ``--frames`` 3, raised to the family's generated frame
count; ``--steps`` 12; classifier-free guidance as the generator calls it). It prints

* parameters per component and in total (built on the ``meta`` device: no memory);
* FLOPs per clip and their breakdown: text encoder, image encoder, denoiser per step, VAE encode
  and decode. Counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmul, convolution and
  attention; 2 FLOPs per multiply-add; elementwise ops, norms and softmax are not counted) on the
  CPU, by :class:`MetaReplay`: one clip goes through gva's generator class and the real diffusers
  pipeline call, the pipeline's own code runs on CPU tensors and every network runs at full depth
  on ``meta`` tensors (shapes only: seconds, no memory), so every call the pipeline makes is
  counted with the real shapes, all steps included -- nothing is extrapolated. (Counting real CPU
  tensors would miss attention: on the CPU ``scaled_dot_product_attention`` runs
  ``aten._scaled_dot_product_flash_attention_for_cpu``, which FlopCounterMode has no formula for;
  on ``meta`` it decomposes into counted ``bmm`` s.) ``--check-depth`` cross-checks the meta count
  against real CPU execution (with a formula for the CPU attention kernel), on the first call of
  each network: transformers and text encoders the way a reduced-depth measurement would, at
  ``num_layers`` 1 and 2 extrapolated linearly to the real depth; UNets (no depth override) once
  at full depth (fp32: about 7 GB of CPU memory for a UNet, 11 GB for Wan's umT5; minutes);
* on a CUDA device: images/s and peak GPU memory of the full-depth build (``--dtype``) generating
  ``--n`` clips through gva's generator class (for svd also the naive loop and the controls, as
  before). Elsewhere it says that these need a GPU;
* a markdown table row: ``| NAME | model | params (B) | TFLOPs per clip | min canvas / frame rule | needs |``
  (min canvas: one latent patch, the smallest canvas the family's rules allow; every family's
  networks run at it in this meta replay, ``--size``).

SVD's build is :func:`full_builds.full_svd_pipeline`, with the checkpoint's VAE config (an
earlier build used ``AutoencoderKLTemporalDecoder()``'s class defaults: one stage, no downsampling,
so the UNet ran at pixel resolution -- 224x224, 3 frames: 195 instead of 1.38 TFLOPs per step).

Prints measured or counted figures only.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without install
sys.path.insert(0, str(Path(__file__).resolve().parent))  # full_builds.py beside this script

import full_builds  # noqa: E402
from gva.config import MotionConfig, SvdConfig  # noqa: E402
from gva.device import device_name  # noqa: E402
from gva.generate.factory import resolve_device  # noqa: E402
from gva.generate.pipelines import resolve_dtype  # noqa: E402
from gva.generate.registry import generator_class  # noqa: E402

#: What ``--full`` accepts: svd and the diffusers families of :mod:`full_builds`.
NAMES = ("svd", "cogvideox", "ltx", "wan", "i2vgen")
#: The networks whose calls are the per-step cost.
DENOISERS = ("unet", "transformer")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


# --- naive vs batched SVD (the default run; --full svd on a GPU) ------------------------------------


def naive_loop(pipe, images: np.ndarray, seeds: list[int], cfg: SvdConfig, device: str) -> float:
    """The reference: one pipeline call per image, PIL in, frames out. Returns seconds."""
    import torch
    from PIL import Image

    t0 = time.perf_counter()
    for im, seed in zip(images, seeds):
        pil = Image.fromarray(im).resize((cfg.width, cfg.height), Image.BICUBIC)
        frames = pipe(pil, height=cfg.height, width=cfg.width, num_frames=cfg.frames,
                      num_inference_steps=cfg.steps, decode_chunk_size=cfg.frames,
                      generator=torch.Generator("cpu").manual_seed(seed), output_type="np").frames[0]
        # back to the curated resolution, as the reference did per frame
        _ = [np.asarray(Image.fromarray((f * 255).round().astype(np.uint8)).resize(im.shape[1::-1], Image.BICUBIC))
             for f in frames]
    _sync(device)
    return time.perf_counter() - t0


def naive_vs_batched(pipe, cfg: SvdConfig, n: int, batch_size: int, control_n: int, device: str) -> None:
    """(a) the naive loop vs (b) gva's batched SvdGenerator on ``pipe``, then the motion/repeat controls."""
    from gva.generate.controls import MotionGenerator, RepeatGenerator
    from gva.generate.svd import SvdGenerator

    pipe.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    seeds = [int(s) for s in rng.integers(0, 2 ** 31, n)]
    print(f"settings: {n} images 64 px -> {cfg.height}x{cfg.width}, {cfg.frames} frames, {cfg.steps} steps, "
          f"batch {batch_size}")

    naive_loop(pipe, images[:1], seeds[:1], cfg, device)  # warm-up
    t_naive = naive_loop(pipe, images, seeds, cfg, device)

    gen = SvdGenerator(pipe, frames=cfg.frames, steps=cfg.steps, height=cfg.height, width=cfg.width,
                       decode_chunk_size=cfg.frames, batch_size=batch_size)
    gen.generate(images[:batch_size], seeds[:batch_size])  # warm-up at the batch shape
    _sync(device)
    t0 = time.perf_counter()
    gen.generate(images, seeds)
    _sync(device)
    t_gva = time.perf_counter() - t0

    big = rng.integers(0, 256, (control_n, 64, 64, 3), dtype=np.uint8)
    cseeds = list(range(control_n))
    rates = {}
    for name, ctrl in (("motion", MotionGenerator(cfg.frames, MotionConfig())), ("repeat", RepeatGenerator(cfg.frames))):
        ctrl.generate(big[:8], cseeds[:8])
        t0 = time.perf_counter()
        ctrl.generate(big, cseeds)
        rates[name] = control_n / (time.perf_counter() - t0)

    r_naive, r_gva = n / t_naive, n / t_gva
    print(f"(a) naive loop, 1 image/call     : {r_naive:10.3f} images/s  ({t_naive:.2f} s)")
    print(f"(b) gva batched, {batch_size:3d} images/call : {r_gva:10.3f} images/s  ({t_gva:.2f} s)")
    print(f"    speed-up (b)/(a)             : {r_gva / r_naive:10.2f}x")
    print(f"motion control                   : {rates['motion']:10.1f} images/s")
    print(f"repeat control                   : {rates['repeat']:10.1f} images/s")


# --- full-size builds and gva's generator around them ---------------------------------------------


def build_full(name: str, device: str, dtype: str, num_layers: int | None = None):
    """NAME's real architecture with random weights on ``device`` (``"meta"``: shapes only)."""
    if name == "svd":
        if num_layers is not None:
            raise ValueError("svd has no depth override")
        return full_builds.full_svd_pipeline(device, dtype)
    return full_builds.full_pipeline(name, device, dtype, num_layers=num_layers,
                                     keep_fp32=generator_class(name).family.fp32_components)


def gva_settings(name: str, args: argparse.Namespace) -> SvdConfig:
    """gva's ``svd`` settings for NAME: params.yaml's defaults, the CogVideoX canvas, the command line's overrides."""
    fixed = None if name == "svd" else generator_class(name).family.native_size
    native = fixed or (SvdConfig.height, SvdConfig.width)
    height = args.height or args.size or native[0]
    width = args.width or args.size or native[1]
    return replace(SvdConfig(), generator=name, height=height, width=width,
                   frames=args.frames or SvdConfig.frames, steps=args.steps or SvdConfig.steps)


def make_generator(name: str, pipe, cfg: SvdConfig, batch_size: int):
    """gva's generator class for NAME around ``pipe``, with ``cfg``'s settings (as ``from_config`` passes them)."""
    return generator_class(name).from_pipeline(pipe, replace(cfg, batch_size=batch_size), "random weights")


def generated_frames(name: str, frames: int) -> int:
    """Frames the pipeline generates for ``frames`` stored ones."""
    if name == "svd":
        return frames
    return generator_class(name).family.generated_frames(frames)


# --- FLOPs: the pipeline's code on CPU tensors, its networks on meta tensors ------------------------


def _to_meta(x: Any) -> Any:
    """Tensors (in plain lists, tuples and dicts) -> the same shapes on ``meta``."""
    import torch

    if isinstance(x, torch.Tensor):
        return x.to("meta")
    if type(x) in (list, tuple):
        return type(x)(_to_meta(v) for v in x)
    if type(x) is dict:
        return {k: _to_meta(v) for k, v in x.items()}
    return x


def _to_host(x: Any) -> Any:
    """A network's output with every ``meta`` tensor replaced by CPU zeros of its shape and dtype.

    Handles tensors, tuples/lists, dicts and the libraries' output dataclasses (dict subclasses),
    and diffusers' ``DiagonalGaussianDistribution`` (what ``vae.encode`` returns).
    """
    import torch
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    if isinstance(x, torch.Tensor):
        return torch.zeros(x.shape, dtype=x.dtype)
    if isinstance(x, DiagonalGaussianDistribution):
        return DiagonalGaussianDistribution(_to_host(x.parameters), x.deterministic)
    if type(x) is dict:
        return {k: _to_host(v) for k, v in x.items()}
    if isinstance(x, dict):  # BaseOutput / ModelOutput
        return type(x)(**{k: _to_host(v) for k, v in x.items()})
    if isinstance(x, (list, tuple)):
        return type(x)(_to_host(v) for v in x)
    return x


@dataclass
class Call:
    """One entry into a network from the pipeline's code."""

    flops: int
    root: bool  # the network's own forward/encode/decode (False: a submodule called directly, e.g. a final norm)


class MetaReplay:
    """Context: count the FLOPs of everything a pipeline's networks compute, per network, at no cost.

    Every ``torch.nn.Module`` component of ``pipe`` is moved to ``meta``; each of its modules'
    ``forward`` (and the component's ``encode``/``decode``) is wrapped so that a call from the
    pipeline's code moves the tensor arguments to ``meta``, runs the real network there under one
    ``FlopCounterMode`` and hands back CPU zeros of the output's shapes. The pipeline itself (and
    gva's generator around it) runs unchanged on the CPU: tokenizers, schedulers, CFG batching,
    latent packing, image preprocessing. Values are meaningless (zeros); shapes, and so FLOPs, are
    those of a real call. Around it, ``pipe.device`` reads ``cpu``, buffers a pipeline reads off a
    component itself (LTX's VAE latent statistics) become CPU ones, and transformers' data-dependent
    "skip the attention mask if it is all ones" test answers no (the mask is applied; the FLOPs of
    attention are the same either way).
    """

    def __init__(self, pipe) -> None:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        self.pipe = pipe
        self.counter = FlopCounterMode(display=False)
        self.calls: dict[str, list[Call]] = defaultdict(list)
        self.first_inputs: dict[str, tuple[tuple, dict]] = {}
        self._inside = False
        self._undo: list[Callable[[], None]] = []
        for name, module in self.modules().items():
            module.to("meta")
            for buf_name, buf in list(module.named_buffers(recurse=False)):
                setattr(module, buf_name, torch.ones(buf.shape, dtype=buf.dtype))
            for sub_name, sub in module.named_modules():
                sub.forward = self._wrap(sub.forward, name, root=not sub_name)
            for method in ("encode", "decode"):
                if hasattr(module, method):
                    setattr(module, method, self._wrap(getattr(module, method), f"{name}.{method}", root=True))
        cls = type(pipe)
        cpu = property(lambda self: torch.device("cpu"))
        pipe.__class__ = type(cls.__name__, (cls,), {"device": cpu, "_execution_device": cpu})

    def modules(self) -> dict[str, Any]:
        import torch

        return {k: v for k, v in self.pipe.components.items() if isinstance(v, torch.nn.Module)}

    def _wrap(self, fn: Callable, key: str, root: bool) -> Callable:
        @functools.wraps(fn)  # keeps the signature: pipelines inspect e.g. vae.forward's parameters
        def entry(*args, **kwargs):
            if self._inside:  # a submodule inside a meta call
                return fn(*args, **kwargs)
            self._inside = True
            try:
                if root:
                    self.first_inputs.setdefault(key, (args, kwargs))
                before = self.counter.get_total_flops()
                out = fn(*_to_meta(args), **_to_meta(kwargs))
                self.calls[key].append(Call(self.counter.get_total_flops() - before, root))
                return _to_host(out)
            finally:
                self._inside = False
        return entry

    def __enter__(self) -> MetaReplay:
        import transformers.masking_utils as masking

        for helper in ("_ignore_bidirectional_mask_sdpa", "_ignore_causal_mask_sdpa"):
            if hasattr(masking, helper):
                original = getattr(masking, helper)
                setattr(masking, helper, lambda *a, **k: False)
                self._undo.append(functools.partial(setattr, masking, helper, original))
        self.counter.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.counter.__exit__(*exc)
        while self._undo:
            self._undo.pop()()

    def total(self) -> int:
        return self.counter.get_total_flops()


@dataclass
class FlopReport:
    """FLOPs of one clip, per network entry point, from a :class:`MetaReplay`."""

    calls: dict[str, list[Call]]
    total: int
    steps: int
    first_inputs: dict[str, tuple[tuple, dict]] = field(repr=False, default_factory=dict)

    def flops(self, key: str) -> int:
        return sum(c.flops for c in self.calls.get(key, []))

    def n_calls(self, key: str) -> int:
        return sum(c.root for c in self.calls.get(key, []))

    @property
    def denoiser(self) -> str:
        return next(k for k in DENOISERS if k in self.calls)

    @property
    def other(self) -> int:
        """FLOPs outside every network (the pipeline's own code)."""
        return self.total - sum(self.flops(k) for k in self.calls)


def count_clip_flops(name: str, pipe, cfg: SvdConfig) -> FlopReport:
    """FLOPs of one clip through gva's generator for NAME, ``pipe`` being its full build (any device)."""
    gen = make_generator(name, pipe, cfg, batch_size=1)
    image = np.random.default_rng(0).integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    with MetaReplay(pipe) as replay:
        gen.generate_float(image, [0])
    return FlopReport(dict(replay.calls), replay.total(), cfg.steps, replay.first_inputs)


def cpu_attention_flops() -> dict:
    """A FlopCounterMode ``custom_mapping`` for the CPU attention kernel (same count as the GPU kernels)."""
    import torch
    from torch.utils.flop_counter import sdpa_flop_count

    def formula(query, key, value, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(query, key, value)

    return {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: formula}


def _materialize(x: Any) -> Any:
    """Recorded call arguments -> CPU tensors: a ``meta`` one (a pipeline moved it to the network's
    device) becomes random floats or ones (ids, masks) of its shape; CPU ones are kept as recorded."""
    import torch

    if isinstance(x, torch.Tensor) and x.is_meta:
        if x.is_floating_point():
            return torch.randn(x.shape, dtype=x.dtype)
        return torch.ones(x.shape, dtype=x.dtype)
    if type(x) in (list, tuple):
        return type(x)(_materialize(v) for v in x)
    if type(x) is dict:
        return {k: _materialize(v) for k, v in x.items()}
    return x


def network_depth(module) -> int:
    cfg = module.config
    return getattr(cfg, "num_layers", None) or cfg.num_hidden_layers


def _real_cpu_flops(module, inputs: tuple[tuple, dict]) -> int:
    """FLOPs of one real CPU forward of ``module`` on recorded inputs (CPU attention counted)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    args, kwargs = _materialize(inputs)
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=cpu_attention_flops()) as fc:
        module(*args, **kwargs)
    return fc.get_total_flops()


def depth_check(name: str, meta_pipe, report: FlopReport) -> list[str]:
    """Check the meta count against real CPU execution, call by call (the first call of each network).

    Depth-scalable networks (transformer, text encoder): run at ``num_layers`` 1 and 2 and extrapolated
    linearly to the real depth -- the reduced-depth measurement. UNets (no depth override): run once at
    full depth (fp32: about 7 GB of CPU memory for the SVD and I2VGen-XL UNets).
    """
    lines = []
    for key in ("unet", "transformer", "text_encoder"):
        if key not in report.first_inputs:
            continue
        meta, t0 = report.calls[key][0].flops, time.perf_counter()
        if key == "unet":
            module = full_builds.full_component(name, key, "cpu", "fp32")
            real = _real_cpu_flops(module, report.first_inputs[key])
            del module
            how = f"full depth, run for real {real / 1e12:9.4f} TFLOPs"
        else:
            counts = []
            for layers in (1, 2):
                module = full_builds.full_component(name, key, "cpu", "fp32", num_layers=layers)
                counts.append(_real_cpu_flops(module, report.first_inputs[key]))
                del module
            depth = network_depth(getattr(meta_pipe, key))
            real = counts[0] + (depth - 1) * (counts[1] - counts[0])
            how = (f"1 layer {counts[0] / 1e12:9.4f} TFLOPs, 2 layers {counts[1] / 1e12:9.4f} -> "
                   f"{depth} layers {real / 1e12:9.4f} TFLOPs")
        lines.append(f"  {key:<13s} {how} vs meta count {meta / 1e12:9.4f} "
                     f"({100 * (real - meta) / meta:+.4f} %; {time.perf_counter() - t0:.0f} s)")
    return lines


# --- GPU throughput ---------------------------------------------------------------------------------


def gpu_throughput(name: str, cfg: SvdConfig, args: argparse.Namespace, device: str, dtype: str) -> dict[str, float]:
    """images/s and peak memory of the full-depth build generating ``args.n`` clips through gva's generator."""
    import torch

    t0 = time.perf_counter()
    pipe = build_full(name, device, dtype)
    _sync(device)
    build_s = time.perf_counter() - t0
    gen = make_generator(name, pipe, cfg, args.batch_size)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.n, 64, 64, 3), dtype=np.uint8)
    seeds = [int(s) for s in rng.integers(0, 2 ** 31, args.n)]
    warm = gen.batch_size
    gen.generate(images[:warm], seeds[:warm])  # warm-up at the batch shape
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    gen.generate(images, seeds)
    _sync(device)
    seconds = time.perf_counter() - t0
    result = {"images_per_s": args.n / seconds, "seconds": seconds, "batch": gen.batch_size, "build_s": build_s,
              "peak_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30,
              "weights_gib": sum(p.numel() * p.element_size() for m in pipe.components.values()
                                 if isinstance(m, torch.nn.Module) for p in m.parameters()) / 2 ** 30}
    if name == "svd":  # the old full-size benchmark: naive loop vs batched, and the controls
        naive_vs_batched(pipe, cfg, args.n, args.batch_size, args.control_n, device)
    return result


# --- the table row ----------------------------------------------------------------------------------


def model_id(name: str) -> str:
    from gva.generate.svd import DEFAULT_MODEL

    return DEFAULT_MODEL if name == "svd" else generator_class(name).family.default_model


def canvas_rule(name: str) -> str:
    """The canvas and frame-count rule of NAME's default model (its generator's Family)."""
    if name == "svd":
        return "min 8x8, sides % 8 / any frame count"
    family = generator_class(name).family
    m = family.multiple
    fixed = family.native_size
    canvas = f"{fixed[0]}x{fixed[1]} only" if fixed else f"min {m}x{m}, sides % {m}"
    rule = "any frame count" if family.frame_step == 1 else f"{family.frame_step}k+1 frames"
    return f"{canvas} / {rule}"


def needs(name: str) -> str:
    """What a call takes besides the image: prompt, frame rate, guidance."""
    if name == "svd":
        cfg = SvdConfig()
        return f"image only; fps + motion bucket; min/max guidance {cfg.min_guidance:g}/{cfg.max_guidance:g}"
    family = generator_class(name).family  # every image-to-video family takes a prompt and a negative one
    fps = f"fps ({family.fps_arg})" if family.fps_arg else "no fps input"
    return f"prompt + negative prompt; {fps}; guidance {family.guidance:g}"


# --- cost mode --------------------------------------------------------------------------------------


def print_parameters(counts: dict[str, int]) -> int:
    total = sum(counts.values())
    print("parameters (meta build):")
    for comp, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {comp:<15s} {n / 1e9:9.4f} B  ({n:,})")
    print(f"  {'total':<15s} {total / 1e9:9.4f} B")
    return total


_ROLES = {"text_encoder": "text encoder", "image_encoder": "image encoder", "transformer": "denoiser",
          "unet": "denoiser", "vae.encode": "VAE encode", "vae.decode": "VAE decode"}


def print_flops(report: FlopReport) -> None:
    print("FLOPs per clip:")
    for key in ("text_encoder", "image_encoder", "vae.encode", report.denoiser, "vae.decode"):
        if key not in report.calls:
            continue
        f, n = report.flops(key), report.n_calls(key)
        line = f"  {_ROLES[key] + ' (' + key + ')':<31s} {n:3d} call{'s' if n != 1 else ' '} {f / 1e12:11.4f} TFLOPs"
        if key == report.denoiser:
            line += f"  = {report.steps} steps x {f / report.steps / 1e12:.4f} TFLOPs/step"
            if n == 2 * report.steps:
                line += " (guidance: a conditional and an unconditional call per step)"
            elif n == report.steps:
                line += " (guidance: conditional and unconditional batched in one call)"
        print(line)
    for key in sorted(set(report.calls) - set(_ROLES)):  # any other network
        print(f"  {key:<31s} {report.n_calls(key):3d} calls {report.flops(key) / 1e12:11.4f} TFLOPs")
    print(f"  {'pipeline code outside them':<31s}           {report.other / 1e12:11.4f} TFLOPs")
    print(f"  {'total':<31s}           {report.total / 1e12:11.4f} TFLOPs")
    print("  counted, not extrapolated: one clip through gva's generator, every network call at full depth on meta "
          "tensors, all steps (FlopCounterMode: matmul/conv/attention, 2 FLOPs per multiply-add)")


def cost(name: str, args: argparse.Namespace) -> None:
    """Cost mode: parameters, FLOPs per clip, GPU throughput where there is a GPU, the table row."""
    import torch

    t_start = time.perf_counter()
    cfg = gva_settings(name, args)
    gen_frames = generated_frames(name, cfg.frames)
    pipe = build_full(name, "meta", "fp32")
    gen = make_generator(name, pipe, cfg, batch_size=1)  # checks the canvas against the model
    guidance = (f"min/max {cfg.min_guidance:g}/{cfg.max_guidance:g}" if name == "svd" else f"{gen.guidance:g}")
    print(f"{name}: {model_id(name)} architecture, random weights")
    print(f"call: {cfg.height}x{cfg.width}, {cfg.frames} frames kept of {gen_frames} generated, {cfg.steps} steps, "
          f"classifier-free guidance on ({guidance}), 1 clip")
    total_params = print_parameters(full_builds.parameter_counts(pipe))

    report = count_clip_flops(name, pipe, cfg)
    print_flops(report)
    if args.check_depth:
        print("check against real CPU execution (first call of each network; transformers and text encoders at "
              "1 and 2 layers, extrapolated linearly):")
        for line in depth_check(name, pipe, report):
            print(line)
    print(f"(parameters + FLOPs: {time.perf_counter() - t_start:.1f} s wall on the CPU)")

    device = resolve_device(args.device)
    if device.startswith("cuda"):
        dtype = resolve_dtype(args.dtype, device)
        print(f"GPU: {device_name(device)}, {dtype}, batch {args.batch_size} "
              "(wan and i2vgen: gva's generator calls one image at a time)")
        r = gpu_throughput(name, cfg, args, device, dtype)
        print(f"  build {r['build_s']:.1f} s; {args.n} clips in {r['seconds']:.2f} s, {r['batch']} per call: "
              f"{r['images_per_s']:.3f} images/s; peak GPU memory {r['peak_gib']:.2f} GiB allocated "
              f"(weights {r['weights_gib']:.2f} GiB)")
    else:
        print(f"images/s and peak GPU memory: need a CUDA device (this run: {device}, torch.cuda.is_available() = "
              f"{torch.cuda.is_available()})")

    print("| generator | default model | params (B) | TFLOPs per clip | min canvas / frame rule | needs |")
    print("|---|---|---|---|---|---|")
    print(f"| {name} | {model_id(name)} | {total_params / 1e9:.2f} | {report.total / 1e12:.1f} | "
          f"{canvas_rule(name)} | {needs(name)} |")


def tiny(args: argparse.Namespace) -> None:
    """The default run: naive vs batched on tiny-svd (CPU by default), then the controls."""
    import torch

    from gva.generate.svd import load_pipeline
    from gva.tiny.svd import model_dir as tiny_model_dir

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    pipe = load_pipeline(str(tiny_model_dir()), device, dtype)
    size = args.size or 64
    cfg = replace(SvdConfig(), height=args.height or size, width=args.width or size, frames=args.frames or 3,
                  steps=args.steps or 2)
    print(f"model: tiny-svd; device {device} ({device_name(device)}), dtype {dtype}, "
          f"torch threads {torch.get_num_threads()}")
    naive_vs_batched(pipe, cfg, args.n, args.batch_size, args.control_n, device)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", nargs="?", const="svd", choices=NAMES, metavar="NAME",
                    help=f"cost of NAME's full-size architecture ({', '.join(NAMES)}; bare --full: svd)")
    ap.add_argument("--device", default="auto", help="auto | cpu | cuda[:N] (cost mode: GPU figures on cuda only)")
    ap.add_argument("--dtype", default="fp16", choices=["fp16", "bf16", "fp32"], help="GPU dtype (CPU: fp32)")
    ap.add_argument("--n", type=int, default=8, help="images per measurement")
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--steps", type=int, default=None, help="default: 2 (tiny), gva's 12 (--full)")
    ap.add_argument("--frames", type=int, default=None, help="clip length gva keeps (default 3)")
    ap.add_argument("--size", type=int, default=None,
                    help="height = width; default 64 (tiny), gva's 224 (--full; cogvideox 480x720)")
    ap.add_argument("--height", type=int, default=None)
    ap.add_argument("--width", type=int, default=None)
    ap.add_argument("--check-depth", action="store_true",
                    help="--full: check the meta count against real CPU execution: the first transformer / "
                         "text-encoder call at 1 and 2 layers extrapolated linearly, the first UNet call at full "
                         "depth (minutes; up to ~11 GB of CPU memory)")
    ap.add_argument("--control-n", type=int, default=512, help="images for the motion/repeat figures")
    args = ap.parse_args(argv)
    if args.full:
        cost(args.full, args)
    else:
        tiny(args)


if __name__ == "__main__":
    main()
