"""Stable Video Diffusion (``svd``), batched and seeded per image: a :mod:`~gva.generate.diffusion` family.

``svd`` loads ``svd.model`` (hub id or local directory; null: :data:`DEFAULT_MODEL`) as a
``StableVideoDiffusionPipeline``; ``tiny-svd`` runs this same class on a tiny random build
(:mod:`gva.tiny.svd`). The ``svd`` params the pipeline consumes are listed once, in
:data:`PIPELINE_SETTINGS`: they are the constructor's keywords, part of :meth:`SvdGenerator.describe`
and of the cache settings.

Per-image determinism: each image gets its own CPU ``torch.Generator`` (the pipeline draws the
noise-augmentation noise and the initial latents per sample from its generator), and each clip is
decoded on its own. The pipeline's own decoder loop treats one ``decode_chunk_size`` slice of the
flattened batch as *one* video, so with batch > 1 a chunk spanning several clips mixes them in the
temporal layers (even when the chunk is a multiple of ``frames``). Decoding clip by clip, in chunks
of ``decode_chunk_size`` frames within the clip, gives exactly what a batch of one gives, for any
``decode_chunk_size``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gva.generate import pipelines
from gva.generate.diffusion import DiffusionGenerator, Family

#: The default ``svd.model`` of the ``svd`` generator.
DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid"
#: The SVD VAE works on 8x8 latent cells.
SVD = Family(name="svd", pipeline="StableVideoDiffusionPipeline", default_model=DEFAULT_MODEL, multiple=8)

#: The ``svd`` params the pipeline call consumes, listed once: constructor keywords, describe()
#: and the cache settings (with ``model``, ``seed``, device type and dtype).
PIPELINE_SETTINGS = ("frames", "steps", "height", "width", "motion_bucket_id", "fps", "noise_aug_strength",
                     "min_guidance", "max_guidance", "decode_chunk_size", "first_frame")


def _precise_euler_class():
    """``EulerDiscreteScheduler`` whose step is computed in float64 (class built lazily: diffusers import)."""
    # from the module itself: the package's lazy import types it as a dummy (the same class at run time)
    from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler, EulerDiscreteSchedulerOutput

    class PreciseEulerDiscreteScheduler(EulerDiscreteScheduler):
        """Same maths, float64 arithmetic in ``step``.

        SVD starts at sigma_max = 700, where the latents are ~2000 in magnitude and a float32 ulp
        is ~1e-4: the Euler update ``x + (s1 - s0) * (x - D) / s0`` cancels catastrophically, so a
        1e-6 difference in the model output (e.g. from a different batch size picking another
        BLAS kernel) flips roundings worth 1e-4 in the result. In float64 the update is exact to
        ~1e-12 and clips are batch-invariant to ~1e-6.
        """

        def step(self, model_output, timestep, sample, *args, return_dict: bool = True, **kwargs):
            dtype = model_output.dtype
            # the caller's positional extras end before return_dict (stock step's last parameter)
            prev, pred = super().step(model_output.double(), timestep, sample.double(), *args,  # type: ignore[misc]
                                      return_dict=False, **kwargs)
            prev, pred = prev.to(dtype), pred.to(dtype)
            if not return_dict:
                return prev, pred
            return EulerDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=pred)

    return PreciseEulerDiscreteScheduler


def use_precise_scheduler(pipe) -> bool:
    """Swap a stock ``EulerDiscreteScheduler`` for the float64-step one (same config); True if swapped."""
    from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteScheduler

    if type(pipe.scheduler) is EulerDiscreteScheduler:
        pipe.scheduler = _precise_euler_class().from_config(pipe.scheduler.config)
        return True
    return False


class SvdGenerator(DiffusionGenerator):
    """``svd``: a ``StableVideoDiffusionPipeline`` called on ``batch_size`` images at a time, with the
    Euler scheduler's step in float64 (:func:`use_precise_scheduler`)."""

    family = SVD
    SETTINGS = PIPELINE_SETTINGS
    # its settings beyond the common ones (set in DiffusionGenerator.__init__)
    motion_bucket_id: int
    noise_aug_strength: float
    min_guidance: float
    max_guidance: float
    decode_chunk_size: int

    def setup(self) -> None:
        self.precise_scheduler = use_precise_scheduler(self.pipe)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self.model_name,
                **{k: getattr(self, k) for k in PIPELINE_SETTINGS},
                **self.weights(self.pipe.unet),
                "decode": "per clip", "scheduler": type(self.pipe.scheduler).__name__,
                "scheduler_step": "float64" if self.precise_scheduler else "stock",
                "unet_parameters": sum(q.numel() for q in self.pipe.unet.parameters())}

    def _call(self, images: np.ndarray, seeds: list[int], inputs: list[Any] | None = None) -> np.ndarray:
        """One pipeline call on a batch: upscale, denoise, decode clip by clip, resize back."""
        import torch
        from PIL import Image

        B = images.shape[0]
        # Upscale as the reference did (PIL bicubic), then hand PIL images to the pipeline so CLIP
        # sees its usual 224-px antialiased resize whatever height/width are.
        pil = [Image.fromarray(im).resize((self.width, self.height), Image.Resampling.BICUBIC) for im in images]
        # CPU generators, one per image: same noise on any device, independent of batch composition.
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        latents = self.pipe(
            pil, height=self.height, width=self.width, num_frames=self.frames,
            num_inference_steps=self.steps, min_guidance_scale=self.min_guidance,
            max_guidance_scale=self.max_guidance, fps=self.fps, motion_bucket_id=self.motion_bucket_id,
            noise_aug_strength=self.noise_aug_strength, generator=gens, output_type="latent",
        ).frames  # [B,T,C,h,w]
        with torch.no_grad():
            vae_dtype = self.pipe.vae.dtype
            video = torch.cat([self.pipe.decode_latents(latents[b:b + 1].to(vae_dtype), self.frames,
                                                        self.decode_chunk_size) for b in range(B)])
            frames = self.pipe.video_processor.postprocess_video(video, output_type="pt")  # [B,T,3,h,w] 0..1
            return pipelines.to_clips(frames, images, self.first_frame_original)


def load_pipeline(model: str, device: str, dtype: str):
    """``StableVideoDiffusionPipeline.from_pretrained`` with errors that say what to do."""
    return pipelines.load_pipeline(SVD.pipeline, model, device, dtype, "tiny-svd")
