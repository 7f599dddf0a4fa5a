"""Stable Video Diffusion generators (``svd`` and ``tiny-svd``), batched and seeded per image.

Both kinds run diffusers' ``StableVideoDiffusionPipeline`` through the same code
(:class:`SvdGenerator`); they differ only in where the pipeline comes from:

* ``svd`` loads ``svd.model`` (hub id or local directory).
* ``tiny-svd`` (:class:`TinySvdGenerator`) builds tiny randomly initialised components
  (diffusers' own test configs, seeded so the model is identical every time), saves them once
  under ``<cache>/tiny-svd`` and loads them back with ``from_pretrained`` - the real loading path,
  no download. Its clips are structured noise: for offline runs and tests, never for results.

The ``svd`` params the pipeline consumes are listed once, in :data:`PIPELINE_SETTINGS`: they are
the constructor's keywords, part of :meth:`SvdGenerator.describe` and of the cache settings.

Per-image determinism: each image gets its own CPU ``torch.Generator`` (the pipeline draws the
noise-augmentation noise and the initial latents per sample from its generator), and each clip is
decoded on its own. The pipeline's own decoder loop treats one ``decode_chunk_size`` slice of the
flattened batch as *one* video, so with batch > 1 a chunk spanning several clips mixes them in the
temporal layers (even when the chunk is a multiple of ``frames``). Decoding clip by clip, in chunks
of ``decode_chunk_size`` frames within the clip, gives exactly what a batch of one gives, for any
``decode_chunk_size``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gva.config import SvdConfig
from gva.errors import ConfigError
from gva.generate import pipelines
from gva.generate.base import Generator, check_images
from gva.generate.pipelines import device_type, resolve_dtype
from gva.paths import CACHE_DIR

log = logging.getLogger(__name__)

#: Names the tiny-svd model directory (``<cache>/tiny-svd/v1``) and model id (``tiny-svd-v1``).
#: A rebuild needs no bump: the directory is rebuilt whenever its stamp (this module's code and
#: the library versions) differs from the running ones (:func:`gva.generate.pipelines.tiny_model_dir`).
TINY_SVD_VERSION = 1
TINY_SVD_SEED = 0
#: The default ``svd.model`` of the ``svd`` generator.
DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid"

#: The ``svd`` params the pipeline call consumes, listed once: constructor keywords, describe()
#: and the cache settings (with ``model``, ``seed``, device type and dtype).
PIPELINE_SETTINGS = ("frames", "steps", "height", "width", "motion_bucket_id", "fps", "noise_aug_strength",
                     "min_guidance", "max_guidance", "decode_chunk_size", "first_frame")


def check_canvas(height: int, width: int) -> None:
    """The SVD VAE works on 8x8 latent cells: refuse a canvas it cannot represent."""
    if height % 8 or width % 8:
        raise ConfigError(f"svd.height and svd.width must be multiples of 8, got {height}x{width}")


def _precise_euler_class():
    """``EulerDiscreteScheduler`` whose step is computed in float64 (class built lazily: diffusers import)."""
    from diffusers import EulerDiscreteScheduler
    from diffusers.schedulers.scheduling_euler_discrete import EulerDiscreteSchedulerOutput

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
            prev, pred = super().step(model_output.double(), timestep, sample.double(), *args,
                                      return_dict=False, **kwargs)
            prev, pred = prev.to(dtype), pred.to(dtype)
            if not return_dict:
                return prev, pred
            return EulerDiscreteSchedulerOutput(prev_sample=prev, pred_original_sample=pred)

    return PreciseEulerDiscreteScheduler


def use_precise_scheduler(pipe) -> bool:
    """Swap a stock ``EulerDiscreteScheduler`` for the float64-step one (same config); True if swapped."""
    from diffusers import EulerDiscreteScheduler

    if type(pipe.scheduler) is EulerDiscreteScheduler:
        pipe.scheduler = _precise_euler_class().from_config(pipe.scheduler.config)
        return True
    return False


def build_tiny_pipeline(seed: int = TINY_SVD_SEED):
    """Tiny random SVD pipeline from diffusers' test configs (CPU, fp32); same weights every call.

    The CLIP vision tower takes 224-px input: the pipeline resizes PIL inputs to 224 for CLIP.
    """
    import torch
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler,
                           StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=8, projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", trained_betas=None,
        use_karras_sigmas=True,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64], in_channels=3, out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], latent_channels=4,
    )
    torch.manual_seed(seed)
    clip_cfg = CLIPVisionConfig(hidden_size=32, projection_dim=32, num_hidden_layers=5, num_attention_heads=4,
                                image_size=224, intermediate_size=37, patch_size=16)
    image_encoder = CLIPVisionModelWithProjection(clip_cfg)
    feature_extractor = CLIPImageProcessor(crop_size=224, size=224)
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
                                        feature_extractor=feature_extractor)
    return pipe.to("cpu")


def build_full_random_pipeline(device: str = "cuda", dtype: str = "fp16"):
    """The full-size SVD architecture with random weights (the checkpoint's UNet and VAE configs, CLIP
    ViT-H/14 vision tower): :func:`gva.generate.builds.full_svd_pipeline`, in ``svd.dtype`` resolved
    for ``device``. For benchmarking the real compute cost without the hub; meant for a GPU (~2.2 B
    parameters)."""
    from gva.generate.builds import full_svd_pipeline

    return full_svd_pipeline(device, resolve_dtype(dtype, device))


def tiny_model_dir(cache_root: str | Path = CACHE_DIR) -> Path:
    """The tiny-svd pipeline directory, built and saved (atomically) on first use."""
    return pipelines.tiny_model_dir("tiny-svd", TINY_SVD_VERSION, build_tiny_pipeline, [Path(__file__)], cache_root)


def load_pipeline(model: str, device: str, dtype: str):
    """``StableVideoDiffusionPipeline.from_pretrained`` with errors that say what to do."""
    return pipelines.load_pipeline("StableVideoDiffusionPipeline", model, device, dtype, "tiny-svd")


class SvdGenerator(Generator):
    """``svd``: a ``StableVideoDiffusionPipeline`` called on ``batch_size`` images at a time.

    ``settings`` are :data:`PIPELINE_SETTINGS` (defaults: :class:`SvdConfig`'s); ``batch_size``
    is a run knob (clips do not depend on it); ``model_name`` identifies the weights in
    :meth:`describe`, ``model_path`` is what was loaded.
    """

    def __init__(self, pipe, *, batch_size: int = 4, model_name: str = "?", model_path: str | None = None,
                 **settings: Any):
        unknown = sorted(set(settings) - set(PIPELINE_SETTINGS))
        if unknown:
            raise TypeError(f"unknown SvdGenerator setting(s): {', '.join(unknown)}")
        defaults = SvdConfig()
        values = {k: settings.get(k, getattr(defaults, k)) for k in PIPELINE_SETTINGS}
        check_canvas(values["height"], values["width"])
        if values["first_frame"] not in ("original", "generated"):
            raise ConfigError(f"svd.first_frame must be original or generated, got {values['first_frame']!r}")
        for k, v in values.items():
            setattr(self, k, v)
        self.pipe = pipe
        self.pipe.set_progress_bar_config(disable=True)
        self.precise_scheduler = use_precise_scheduler(pipe)
        self.batch_size = batch_size
        self.model_name = model_name
        self.model_path = model_path if model_path is not None else model_name

    @property
    def first_frame(self) -> str:
        """``svd.first_frame``; stored as :attr:`first_frame_original`."""
        return "original" if self.first_frame_original else "generated"

    @first_frame.setter
    def first_frame(self, value: str) -> None:
        self.first_frame_original = value == "original"

    # --- the model: what `svd` and `tiny-svd` differ in ---------------------------------------

    @classmethod
    def model_id(cls, cfg: SvdConfig) -> str:
        """What identifies the weights in the cache key and in describe(): ``svd.model`` (or the default)."""
        return cfg.model or DEFAULT_MODEL

    @classmethod
    def model_path(cls, cfg: SvdConfig, cache_root: str | Path) -> str:
        """What :func:`load_pipeline` loads: the model id (hub id or local directory)."""
        return cls.model_id(cfg)

    # --- the Generator hooks ------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: SvdConfig, device: str, cache_root: str | Path = CACHE_DIR) -> SvdGenerator:
        """Load the pipeline for ``cfg`` on ``device`` (dtype: :func:`resolve_dtype`)."""
        check_canvas(cfg.height, cfg.width)
        path = cls.model_path(cfg, cache_root)
        pipe = load_pipeline(path, device, resolve_dtype(cfg.dtype, device))
        return cls.from_pipeline(pipe, cfg, cls.model_id(cfg), path)

    @classmethod
    def from_pipeline(cls, pipe, cfg: SvdConfig, model_name: str, model_path: str | None = None) -> SvdGenerator:
        """The generator around an already built ``pipe`` with ``cfg``'s settings and batch size."""
        return cls(pipe, batch_size=cfg.batch_size, model_name=model_name, model_path=model_path,
                   **{k: getattr(cfg, k) for k in PIPELINE_SETTINGS})

    @classmethod
    def cache_settings(cls, cfg: SvdConfig, device: str) -> dict[str, Any]:
        """The pipeline settings, the model, the seed, and the device type and dtype (their floats differ).

        A canvas the VAE cannot represent is refused here already, before the stage reads any data.
        """
        check_canvas(cfg.height, cfg.width)
        return {"model": cls.model_id(cfg), "seed": cfg.seed, **{k: getattr(cfg, k) for k in PIPELINE_SETTINGS},
                "device": device_type(device), "dtype": resolve_dtype(cfg.dtype, device)}

    def describe(self) -> dict[str, Any]:
        p = next(self.pipe.unet.parameters())
        return {**super().describe(), "model": self.model_name,
                **{k: getattr(self, k) for k in PIPELINE_SETTINGS},
                "device": device_type(str(p.device)), "dtype": str(p.dtype).replace("torch.", ""),
                "decode": "per clip", "scheduler": type(self.pipe.scheduler).__name__,
                "scheduler_step": "float64" if self.precise_scheduler else "stock",
                "unet_parameters": sum(q.numel() for q in self.pipe.unet.parameters())}

    def generate_float(self, images: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        images = check_images(images, seeds)
        out = [self._call(images[i:i + self.batch_size], list(seeds[i:i + self.batch_size]))
               for i in range(0, images.shape[0], self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.frames) + images.shape[1:], np.float32)

    def _call(self, images: np.ndarray, seeds: list[int]) -> np.ndarray:
        """One pipeline call on a batch: upscale, denoise, decode clip by clip, resize back."""
        import torch
        from PIL import Image

        B = images.shape[0]
        # Upscale as the reference did (PIL bicubic), then hand PIL images to the pipeline so CLIP
        # sees its usual 224-px antialiased resize whatever height/width are.
        pil = [Image.fromarray(im).resize((self.width, self.height), Image.BICUBIC) for im in images]
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


class TinySvdGenerator(pipelines.TinyModel, SvdGenerator):
    """``tiny-svd``: the same pipeline code on tiny random weights built locally (no download).

    The model is :func:`tiny_model_dir`, identified as ``tiny-svd-v1``, unless ``svd.model`` names
    a local pipeline directory (:class:`gva.generate.pipelines.TinyModel`). Its clips are structured noise.
    """

    tiny_version = TINY_SVD_VERSION

    @classmethod
    def tiny_name(cls) -> str:
        return "tiny-svd"

    @classmethod
    def tiny_dir(cls, cache_root: str | Path) -> Path:
        return tiny_model_dir(cache_root)
