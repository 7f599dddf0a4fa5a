"""The image-to-video diffusion generators beyond SVD, one code path for every diffusers family.

A family (:class:`Family`, one small module each: :mod:`~gva.generate.cogvideox`,
:mod:`~gva.generate.ltx`, :mod:`~gva.generate.wan`, :mod:`~gva.generate.i2vgen`) names its
diffusers pipeline, its default hub model, the frame counts and canvas sides the model accepts,
its default guidance, how it takes the frame rate, and whether a pipeline call can mix several
images. :class:`I2VGenerator` does the rest, the same way for all of them and as
:class:`~gva.generate.svd.SvdGenerator` does for SVD:

* **loading** -- ``svd.model`` (a hub id or a local directory; null: the family's default) through
  :func:`gva.generate.pipelines.load_pipeline`; ``tiny-<family>`` builds the family's tiny random
  pipeline once (:func:`gva.generate.builds.tiny_pipeline`), saves it and loads it back the same
  way (structured noise: for offline runs and tests, never for results);
* **per-image seeds** -- one CPU ``torch.Generator`` per image, so a clip's noise does not depend on
  the other images of its call;
* **prompts** -- one :class:`~gva.generate.base.Prompt` per image (rendered and leak-checked by
  :mod:`gva.generate.prompts`), with ``svd.guidance`` (null: the family's default);
* **frames** -- ``svd.frames`` is the clip length gva stores. Models whose VAE compresses time
  accept only ``1 + k * step`` frames (CogVideoX and Wan: 4k+1, LTX: 8k+1): the smallest such count
  >= ``svd.frames`` is generated and ``svd.frames`` evenly spaced frames are kept, first and last
  included (both recorded in ``generation.json``); frame 0 is the image itself with
  ``svd.first_frame: original``;
* **batches** -- ``svd.batch_size`` images per call where the family's pipeline keeps the images of a
  call apart; a family whose pipeline cannot (``Family.batch_note``) generates one image per call,
  says so in the log and in ``generation.json``;
* **resolution** -- the curated image is upscaled (PIL bicubic) to ``svd.width`` x ``svd.height``,
  which must be multiples of the family's ``multiple``, and the frames are resized back to the
  curated size (bilinear, antialiased).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence

import numpy as np

from gva.config import SvdConfig
from gva.errors import ConfigError
from gva.generate import pipelines
from gva.generate.base import Generator, Inputs, Prompt, Prompts, check_images
from gva.generate.pipelines import device_type, resolve_dtype
from gva.paths import CACHE_DIR

log = logging.getLogger(__name__)

#: Version of the tiny model directories (``<cache>/tiny-<family>/v1``) and ids (``tiny-<family>-v1``).
TINY_VERSION = 1


@dataclass(frozen=True)
class Family:
    """What differs between the diffusers image-to-video families, as data."""

    name: str                    # the svd.generator value (tiny build: tiny-<name>)
    pipeline: str                # diffusers pipeline class
    default_model: str           # svd.model when it is null
    frame_step: int              # generated frame counts are 1 + k * frame_step (1: any count)
    multiple: int                # svd.height and svd.width must be multiples of this
    guidance: float              # classifier-free guidance scale of the model card
    fps_arg: Optional[str]       # the call's frame-rate keyword, if the model is conditioned on it
    batch_note: Optional[str] = None   # why a call cannot hold several images (None: it can)
    fp32_components: tuple = ()  # components kept in fp32 under a half svd.dtype (as the model card loads them)
    native_size: Optional[tuple[int, int]] = None   # (height, width) the default model is fixed to (None: any)
    dtype: Optional[str] = None  # the svd.dtype the default model is meant for (None: params' svd.dtype)

    def generated_frames(self, frames: int) -> int:
        """The smallest frame count the model accepts that is >= ``frames``."""
        k = -(-(frames - 1) // self.frame_step)
        return 1 + k * self.frame_step

    def kept_frames(self, frames: int) -> list[int]:
        """Indices of the ``frames`` evenly spaced frames kept out of :meth:`generated_frames`."""
        g = self.generated_frames(frames)
        if frames == 1:
            return [0]
        return [int(round(i * (g - 1) / (frames - 1))) for i in range(frames)]


#: The ``svd`` params an image-to-video call consumes (with model, seed, device type, dtype).
I2V_SETTINGS = ("frames", "steps", "height", "width", "fps", "guidance", "first_frame")


class I2VGenerator(Generator):
    """A diffusers image-to-video pipeline of ``family``, called on ``batch_size`` images at a time."""

    family: ClassVar[Family]
    takes_inputs = True

    @classmethod
    def image_inputs(cls, cfg: SvdConfig, images: np.ndarray, rows: Sequence[Any], workdir: Path) -> list[Prompt]:
        """One rendered prompt per row, checked for label leakage before anything is generated
        (:func:`gva.generate.prompts.render_prompts`)."""
        from gva.generate.prompts import render_prompts

        return render_prompts(cfg, rows)

    @classmethod
    def inputs_record(cls, cfg: SvdConfig, rows: Sequence[Any], inputs: Inputs) -> dict[str, Any]:
        """generation.json's ``prompts``: the templates and the distinct prompts per split."""
        from gva.generate.prompts import prompt_record

        return {"prompts": prompt_record(cfg, rows, inputs)}

    def __init__(self, pipe, *, frames: int = 3, steps: int = 12, height: int = 224, width: int = 224,
                 fps: int = 7, guidance: Optional[float] = None, first_frame: str = "original",
                 prompt: str = "", negative_prompt: str = "", batch_size: int = 4, model_name: str = "?"):
        self.check_canvas(height, width)
        if first_frame not in ("original", "generated"):
            raise ConfigError(f"svd.first_frame must be original or generated, got {first_frame!r}")
        self.frames, self.steps, self.height, self.width, self.fps = frames, steps, height, width, fps
        self.guidance = self.family.guidance if guidance is None else float(guidance)
        self.first_frame_original = first_frame == "original"
        self.prompt, self.negative_prompt = prompt, negative_prompt
        self.generated = self.family.generated_frames(frames)
        self.kept = self.family.kept_frames(frames)
        self.pipe = pipe
        self.pipe.set_progress_bar_config(disable=True)
        self.model_name = model_name
        self.check_model()
        self.batch_size = batch_size if self.family.batch_note is None else 1
        if batch_size > 1 and self.family.batch_note is not None:
            log.warning("svd.batch_size=%d: %s generates one image per call (%s)", batch_size, self.family.name,
                        self.family.batch_note)

    @classmethod
    def check_canvas(cls, height: int, width: int) -> None:
        """The family's VAE and patching need sides that are multiples of ``family.multiple``."""
        m = cls.family.multiple
        if height % m or width % m:
            raise ConfigError(f"svd.height and svd.width must be multiples of {m} for {cls.family.name}, "
                              f"got {height}x{width}")

    def check_model(self) -> None:
        """Refuse what the loaded weights cannot do (a family hook; e.g. a fixed resolution)."""

    # --- the model: what `<family>` and `tiny-<family>` differ in ------------------------------

    @classmethod
    def model_id(cls, cfg: SvdConfig) -> str:
        """What identifies the weights in the cache key and in describe()."""
        return cfg.model or cls.family.default_model

    @classmethod
    def model_path(cls, cfg: SvdConfig, cache_root: str | Path) -> str:
        """What :func:`gva.generate.pipelines.load_pipeline` loads: the model id (a hub id or a directory)."""
        return cls.model_id(cfg)

    # --- the Generator hooks ------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: SvdConfig, device: str, cache_root: str | Path = CACHE_DIR) -> I2VGenerator:
        cls.check_canvas(cfg.height, cfg.width)
        pipe = pipelines.load_pipeline(cls.family.pipeline, cls.model_path(cfg, cache_root), device,
                                       resolve_dtype(cfg.dtype, device), f"tiny-{cls.family.name}")
        for name in cls.family.fp32_components:
            getattr(pipe, name).float()
        return cls.from_pipeline(pipe, cfg, cls.model_id(cfg))

    @classmethod
    def from_pipeline(cls, pipe, cfg: SvdConfig, model_name: str) -> I2VGenerator:
        """The generator around an already built ``pipe`` with ``cfg``'s settings, prompts and batch size."""
        return cls(pipe, batch_size=cfg.batch_size, model_name=model_name, prompt=cfg.prompt,
                   negative_prompt=cfg.negative_prompt, **{k: getattr(cfg, k) for k in I2V_SETTINGS})

    @classmethod
    def cache_settings(cls, cfg: SvdConfig, device: str) -> dict[str, Any]:
        """Model, seed, the call's settings, the prompt templates (the per-image prompts are a
        function of them and the curated index), device type and dtype."""
        cls.check_canvas(cfg.height, cfg.width)
        settings = {k: getattr(cfg, k) for k in I2V_SETTINGS}
        settings["guidance"] = cls.family.guidance if cfg.guidance is None else float(cfg.guidance)
        if cls.family.fps_arg is None:
            settings.pop("fps")
        return {"model": cls.model_id(cfg), "seed": cfg.seed, **settings, "prompt": cfg.prompt,
                "negative_prompt": cfg.negative_prompt, "device": device_type(device),
                "dtype": resolve_dtype(cfg.dtype, device)}

    def describe(self) -> dict[str, Any]:
        denoiser = self.denoiser()
        p = next(denoiser.parameters())
        return {**super().describe(), "model": self.model_name, "pipeline": type(self.pipe).__name__,
                "steps": self.steps, "height": self.height, "width": self.width,
                **({"fps": self.fps} if self.family.fps_arg else {}), "guidance": self.guidance,
                "first_frame": "original" if self.first_frame_original else "generated",
                "generated_frames": self.generated, "kept_frames": self.kept,
                "batch": "per call" if self.family.batch_note is None else f"one image per call: {self.family.batch_note}",
                "scheduler": type(self.pipe.scheduler).__name__,
                "device": device_type(str(p.device)), "dtype": str(p.dtype).replace("torch.", ""),
                "denoiser_parameters": sum(q.numel() for q in denoiser.parameters())}

    def denoiser(self):
        """The pipeline's denoising network (``transformer`` or ``unet``)."""
        return getattr(self.pipe, "transformer", None) or self.pipe.unet

    def default_prompts(self, n: int) -> list[Prompt]:
        """Prompts for images without a class (``gva predict``): the templates, refused if they need one."""
        from gva.generate.prompts import render

        return [Prompt(render(self.prompt, None), render(self.negative_prompt, None))] * n

    def generate_float(self, images: np.ndarray, seeds: Sequence[int], prompts: Prompts = None) -> np.ndarray:
        images = check_images(images, seeds)
        prompts = list(prompts) if prompts is not None else self.default_prompts(images.shape[0])
        step = self.batch_size
        out = [self._call(images[i:i + step], list(seeds[i:i + step]), prompts[i:i + step])
               for i in range(0, images.shape[0], step)]
        return np.concatenate(out) if out else np.zeros((0, self.frames) + images.shape[1:], np.float32)

    def call_kwargs(self) -> dict[str, Any]:
        """The family's keywords of the pipeline call beyond the common ones: the frame rate, if it takes one."""
        return {self.family.fps_arg: self.fps} if self.family.fps_arg else {}

    def text_inputs(self, prompts: list[Prompt]) -> dict[str, Any]:
        """The call's text conditioning (a family hook: some need precomputed embeddings)."""
        return {"prompt": [p.text for p in prompts], "negative_prompt": [p.negative for p in prompts]}

    def rng_scope(self, seeds: list[int]):
        """A context around the call (a family hook: e.g. a pipeline that draws from torch's global RNG)."""
        return contextlib.nullcontext()

    def _call(self, images: np.ndarray, seeds: list[int], prompts: list[Prompt]) -> np.ndarray:
        """One pipeline call: upscale, generate, keep ``frames`` frames, resize back."""
        import torch
        from PIL import Image

        B = images.shape[0]
        pil = [Image.fromarray(im).resize((self.width, self.height), Image.BICUBIC) for im in images]
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        with torch.no_grad(), self.rng_scope(seeds):
            video = self.pipe(
                image=pil if B > 1 else pil[0], **self.text_inputs(prompts), height=self.height, width=self.width,
                num_frames=self.generated, num_inference_steps=self.steps, guidance_scale=self.guidance,
                generator=gens, output_type="pt", **self.call_kwargs(),
            ).frames  # [B,T,3,h,w] in [0,1]
            video = torch.as_tensor(video)
            if video.shape[:2] != (B, self.generated):
                raise RuntimeError(f"{type(self.pipe).__name__} returned frames of shape {list(video.shape)}, "
                                   f"expected [{B}, {self.generated}, 3, h, w]")
            return pipelines.to_clips(video[:, self.kept], images, self.first_frame_original)


class TinyI2VGenerator(pipelines.TinyModel, I2VGenerator):
    """``tiny-<family>``: the same code on the family's tiny random pipeline, built locally.

    The model is the tiny build in ``<cache>/tiny-<family>/v1``, identified as ``tiny-<family>-v1``,
    unless ``svd.model`` names a local pipeline directory (:class:`gva.generate.pipelines.TinyModel`).
    """

    tiny_version = TINY_VERSION

    @classmethod
    def tiny_name(cls) -> str:
        return f"tiny-{cls.family.name}"

    @classmethod
    def tiny_dir(cls, cache_root: str | Path) -> Path:
        return tiny_model_dir(cls.family.name, cache_root)


def tiny_model_dir(family: str, cache_root: str | Path = CACHE_DIR) -> Path:
    """The ``tiny-<family>`` pipeline directory, built and saved on first use."""
    from gva.generate import builds

    return pipelines.tiny_model_dir(f"tiny-{family}", TINY_VERSION, lambda: builds.tiny_pipeline(family),
                                    [Path(builds.__file__)], cache_root)
