"""The text-conditioned image-to-video families: CogVideoX, LTX-Video, Wan, I2VGen-XL.

A family (:class:`I2VFamily`, one small module each: :mod:`~gva.generate.cogvideox`,
:mod:`~gva.generate.ltx`, :mod:`~gva.generate.wan`, :mod:`~gva.generate.i2vgen`) names its
diffusers pipeline, its default hub model, the frame counts and canvas sides the model accepts,
its default guidance, how it takes the frame rate, and whether a pipeline call can mix several
images. :class:`I2VGenerator` does the rest, the same way for all of them, on the diffusers
generator every family shares (:class:`gva.generate.diffusion.DiffusionGenerator`: loading,
settings, cache key, batches, one CPU ``torch.Generator`` per image):

* **prompts** -- one :class:`~gva.generate.base.Prompt` per image (rendered and leak-checked by
  :mod:`gva.generate.prompts`), with ``svd.guidance`` (null: the family's default);
* **frames** -- ``svd.frames`` is the clip length gva stores. Models whose VAE compresses time
  accept only ``1 + k * step`` frames (``I2VFamily.frame_step``; Wan: 4k+1, LTX and CogVideoX:
  8k+1 -- CogVideoX's pipeline takes 4k+1 but only 8k+1 decode exact, :mod:`~gva.generate.cogvideox`;
  I2VGen-XL: any count): the smallest such count
  >= ``svd.frames`` is generated and ``svd.frames`` evenly spaced frames are kept, first and last
  included (both recorded in ``generation.json``); frame 0 is the image itself with
  ``svd.first_frame: original``;
* **batches** -- ``svd.batch_size`` images per call where the family's pipeline keeps the images of a
  call apart; a family whose pipeline cannot (``I2VFamily.batch_note``) generates one image per
  call, says so in the log and in ``generation.json``;
* **resolution** -- the curated image is upscaled (PIL bicubic) to ``svd.width`` x ``svd.height``,
  which must be multiples of the family's ``multiple``, and the frames are resized back to the
  curated size (bilinear, antialiased).

``tiny-<family>`` runs the same classes on tiny random builds (:mod:`gva.tiny`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gva.config import SvdConfig
from gva.generate import pipelines
from gva.generate.base import Inputs, Prompt
from gva.generate.diffusion import DiffusionGenerator, Family

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class I2VFamily(Family):
    """What differs between the image-to-video families beyond :class:`~gva.generate.diffusion.Family`."""

    frame_step: int              # generated frame counts are 1 + k * frame_step (1: any count)
    guidance: float              # classifier-free guidance scale of the model card
    fps_arg: str | None       # the call's frame-rate keyword, if the model is conditioned on it
    batch_note: str | None = None   # why a call cannot hold several images (None: it can)
    native_size: tuple[int, int] | None = None   # (height, width) the default model is fixed to (None: any)
    dtype: str | None = None  # the svd.dtype the default model is meant for (None: params' svd.dtype)

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
I2V_SETTINGS = ("frames", "steps", "height", "width", "fps", "guidance", "first_frame", "prompt", "negative_prompt")


class I2VGenerator(DiffusionGenerator):
    """A diffusers image-to-video pipeline of ``family``, called on ``batch_size`` images at a time."""

    family: ClassVar[I2VFamily]
    SETTINGS = I2V_SETTINGS
    takes_inputs = True
    # its settings beyond the common ones (set in DiffusionGenerator.__init__; guidance resolved in setup)
    guidance: float | None
    prompt: str
    negative_prompt: str

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

        assert inputs is not None  # the stage records the inputs image_inputs computed
        return {"prompts": prompt_record(cfg, rows, inputs)}

    def setup(self) -> None:
        self.guidance = self.family.guidance if self.guidance is None else float(self.guidance)
        self.generated = self.family.generated_frames(self.frames)
        self.kept = self.family.kept_frames(self.frames)
        self.check_model()
        if self.batch_size > 1 and self.family.batch_note is not None:
            log.warning("svd.batch_size=%d: %s generates one image per call (%s)", self.batch_size,
                        self.family.name, self.family.batch_note)
            self.batch_size = 1

    def check_model(self) -> None:
        """Refuse what the loaded weights cannot do (a family hook; e.g. a fixed resolution)."""

    @classmethod
    def call_settings(cls, cfg: SvdConfig) -> dict[str, Any]:
        """The call's settings and the prompt templates (the per-image prompts are a function of them
        and the curated index); the guidance resolved, the frame rate only where the model takes it."""
        settings = super().call_settings(cfg)
        settings["guidance"] = cls.family.guidance if cfg.guidance is None else float(cfg.guidance)
        if cls.family.fps_arg is None:
            settings.pop("fps")
        return settings

    def describe(self) -> dict[str, Any]:
        denoiser = self.denoiser()
        return {**super().describe(), "model": self.model_name, "pipeline": type(self.pipe).__name__,
                "steps": self.steps, "height": self.height, "width": self.width,
                **({"fps": self.fps} if self.family.fps_arg else {}), "guidance": self.guidance,
                "first_frame": self.first_frame, "generated_frames": self.generated, "kept_frames": self.kept,
                "batch": ("per call" if self.family.batch_note is None
                          else f"one image per call: {self.family.batch_note}"),
                "scheduler": type(self.pipe.scheduler).__name__, **self.weights(denoiser),
                "denoiser_parameters": sum(q.numel() for q in denoiser.parameters())}

    def denoiser(self):
        """The pipeline's denoising network (``transformer`` or ``unet``)."""
        return getattr(self.pipe, "transformer", None) or self.pipe.unet

    def call_inputs(self, n: int, inputs: Inputs) -> list[Prompt]:
        """The prompts given, or for images without a class (``gva predict``) the templates, refused
        if they need one."""
        if inputs is not None:
            return list(inputs)
        from gva.generate.prompts import render

        return [Prompt(render(self.prompt, None), render(self.negative_prompt, None))] * n

    def call_kwargs(self) -> dict[str, Any]:
        """The family's keywords of the pipeline call beyond the common ones: the frame rate, if it takes one."""
        return {self.family.fps_arg: self.fps} if self.family.fps_arg else {}

    def text_inputs(self, prompts: list[Prompt]) -> dict[str, Any]:
        """The call's text conditioning (a family hook: some need precomputed embeddings)."""
        return {"prompt": [p.text for p in prompts], "negative_prompt": [p.negative for p in prompts]}

    def rng_scope(self, seeds: list[int]):
        """A context around the call (a family hook: e.g. a pipeline that draws from torch's global RNG)."""
        return contextlib.nullcontext()

    def _call(self, images: np.ndarray, seeds: list[int], inputs: list[Any] | None) -> np.ndarray:
        """One pipeline call: upscale, generate, keep ``frames`` frames, resize back."""
        import torch
        from PIL import Image

        assert inputs is not None  # call_inputs gives every image a prompt
        B = images.shape[0]
        pil = [Image.fromarray(im).resize((self.width, self.height), Image.Resampling.BICUBIC) for im in images]
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        with torch.no_grad(), self.rng_scope(seeds):
            video = self.pipe(
                image=pil if B > 1 else pil[0], **self.text_inputs(inputs), height=self.height, width=self.width,
                num_frames=self.generated, num_inference_steps=self.steps, guidance_scale=self.guidance,
                generator=gens, output_type="pt", **self.call_kwargs(),
            ).frames  # [B,T,3,h,w] in [0,1]
            video = torch.as_tensor(video)
            if video.shape[:2] != (B, self.generated):
                raise RuntimeError(f"{type(self.pipe).__name__} returned frames of shape {list(video.shape)}, "
                                   f"expected [{B}, {self.generated}, 3, h, w]")
            return pipelines.to_clips(video[:, self.kept], images, self.first_frame_original)
