"""Stable Video Diffusion generators (``svd`` and ``tiny-svd``), batched and seeded per image.

Both kinds run diffusers' ``StableVideoDiffusionPipeline`` through the same code:

* ``svd`` loads ``svd.model`` (hub id or local directory).
* ``tiny-svd`` builds tiny randomly initialised components (diffusers' own test configs, seeded so
  the model is identical every time), saves them once under ``<cache>/tiny-svd`` and loads them
  back with ``from_pretrained`` - the real loading path, no download. Its clips are structured
  noise: for offline runs and tests, never for results.

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
from gva.generate.base import Generator, check_images, resolve_dtype
from gva.io import atomic_path

log = logging.getLogger(__name__)

#: Bump when the tiny architecture or its init changes (part of the resume-cache key).
TINY_SVD_VERSION = 1
TINY_SVD_SEED = 0

_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


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


def is_model_dir(model: str) -> bool:
    """Whether ``model`` names a local diffusers pipeline directory."""
    return Path(model, "model_index.json").is_file()


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
    """The full-size SVD architecture with random weights (default configs, CLIP ViT-H/14 vision tower).

    For benchmarking the real compute cost without the hub; meant for a GPU (~2 B parameters).
    """
    import torch
    from diffusers import (AutoencoderKLTemporalDecoder, EulerDiscreteScheduler,
                           StableVideoDiffusionPipeline, UNetSpatioTemporalConditionModel)
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch_dtype = getattr(torch, _DTYPES[resolve_dtype(dtype, device)])
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the device: CPU init of 1.5 B params is slow
        unet = UNetSpatioTemporalConditionModel()
        vae = AutoencoderKLTemporalDecoder()
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=1280, projection_dim=1024, num_hidden_layers=32, num_attention_heads=16,
            intermediate_size=5120, patch_size=14, image_size=224, hidden_act="gelu"))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)
    pipe = StableVideoDiffusionPipeline(vae=vae, image_encoder=image_encoder, unet=unet, scheduler=scheduler,
                                        feature_extractor=CLIPImageProcessor(crop_size=224, size=224))
    return pipe.to(device, torch_dtype)


def tiny_model_dir(cache_root: str | Path = "data/.cache") -> Path:
    """The tiny-svd pipeline directory, built and saved (atomically) on first use."""
    path = Path(cache_root) / "tiny-svd" / f"v{TINY_SVD_VERSION}"
    if not is_model_dir(str(path)):
        log.info("building the tiny random SVD pipeline in %s", path)
        pipe = build_tiny_pipeline()
        with atomic_path(path) as tmp:
            pipe.save_pretrained(tmp)
    return path


def _quiet_loading() -> None:
    """No per-component loading bars from diffusers/transformers: gva's own bar is the progress."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    dlog.disable_progress_bar()
    tlog.disable_progress_bar()


def load_pipeline(model: str, device: str, dtype: str):
    """``StableVideoDiffusionPipeline.from_pretrained`` with errors that say what to do."""
    import torch
    from diffusers import StableVideoDiffusionPipeline

    torch_dtype = getattr(torch, _DTYPES[dtype])
    local = is_model_dir(model)
    if not local and Path(model).exists():
        raise ValueError(f"svd.model {model!r} is a path but not a diffusers pipeline directory "
                         "(no model_index.json)")
    attempts: list[dict[str, Any]] = []
    if not local and dtype == "fp16":
        attempts.append({"variant": "fp16"})  # the hub repos ship fp16 weights as a variant
    attempts.append({})
    errors = []
    _quiet_loading()
    for extra in attempts:
        for local_only in ([False] if local else [True, False]):  # the HF cache first, then the hub
            try:
                pipe = StableVideoDiffusionPipeline.from_pretrained(
                    model, dtype=torch_dtype, local_files_only=local_only, **extra)
            except (OSError, ValueError) as exc:  # hub, network and missing-file errors are OSErrors
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            # outside the try: an out-of-memory or device error is not "the hub is unreachable"
            return pipe.to(device)
    raise RuntimeError(
        f"cannot load svd.model {model!r}" + (" (not a local directory and the hub is unreachable or "
                                             "the id is wrong)" if not local else "")
        + f": {errors[-1]}. Set svd.model to a local pipeline directory, or use svd.generator: "
          "tiny-svd for an offline smoke run.")


class SvdGenerator(Generator):
    """A ``StableVideoDiffusionPipeline`` called on ``batch_size`` images at a time."""

    def __init__(self, pipe, *, frames: int = 3, steps: int = 12, height: int = 224, width: int = 224,
                 motion_bucket_id: int = 127, fps: int = 7, noise_aug_strength: float = 0.02,
                 min_guidance: float = 1.0, max_guidance: float = 3.0, decode_chunk_size: int = 3,
                 first_frame: str = "original", batch_size: int = 4, model_name: str = "?"):
        if height % 8 or width % 8:
            raise ValueError(f"svd.height and svd.width must be multiples of 8, got {height}x{width}")
        if first_frame not in ("original", "generated"):
            raise ValueError(f"svd.first_frame must be original or generated, got {first_frame!r}")
        self.pipe = pipe
        self.pipe.set_progress_bar_config(disable=True)
        self.precise_scheduler = use_precise_scheduler(pipe)
        self.frames, self.steps, self.height, self.width = frames, steps, height, width
        self.motion_bucket_id, self.fps, self.noise_aug_strength = motion_bucket_id, fps, noise_aug_strength
        self.min_guidance, self.max_guidance = min_guidance, max_guidance
        self.decode_chunk_size, self.batch_size = decode_chunk_size, batch_size
        self.first_frame_original = first_frame == "original"
        self.model_name = model_name

    @classmethod
    def from_config(cls, cfg: SvdConfig, device: str, cache_root: str | Path = "data/.cache") -> "SvdGenerator":
        """Load (``svd``) or build/load (``tiny-svd``) the pipeline on ``device`` for ``cfg``."""
        if cfg.height % 8 or cfg.width % 8:
            raise ValueError(f"svd.height and svd.width must be multiples of 8, got {cfg.height}x{cfg.width}")
        dtype = resolve_dtype(cfg.dtype, device)
        if cfg.generator == "tiny-svd":
            model = cfg.model if is_model_dir(cfg.model) else str(tiny_model_dir(cache_root))
        else:
            model = cfg.model
        pipe = load_pipeline(model, device, dtype)
        return cls(pipe, frames=cfg.frames, steps=cfg.steps, height=cfg.height, width=cfg.width,
                   motion_bucket_id=cfg.motion_bucket_id, fps=cfg.fps, noise_aug_strength=cfg.noise_aug_strength,
                   min_guidance=cfg.min_guidance, max_guidance=cfg.max_guidance,
                   decode_chunk_size=cfg.decode_chunk_size, first_frame=cfg.first_frame,
                   batch_size=cfg.batch_size, model_name=model)

    def describe(self) -> dict:
        p = next(self.pipe.unet.parameters())
        return {**super().describe(), "model": self.model_name, "device": str(p.device),
                "dtype": str(p.dtype).replace("torch.", ""), "steps": self.steps, "height": self.height,
                "width": self.width, "motion_bucket_id": self.motion_bucket_id, "fps": self.fps,
                "noise_aug_strength": self.noise_aug_strength, "min_guidance": self.min_guidance,
                "max_guidance": self.max_guidance, "decode_chunk_size": self.decode_chunk_size,
                "decode": "per clip", "first_frame": "original" if self.first_frame_original else "generated",
                "batch_size": self.batch_size, "scheduler": type(self.pipe.scheduler).__name__,
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
        import torch.nn.functional as F
        from PIL import Image

        B, H, W, _ = images.shape
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
            frames = frames.float().flatten(0, 1)
            if frames.shape[-2:] != (H, W):
                frames = F.interpolate(frames, size=(H, W), mode="bilinear", antialias=True, align_corners=False)
            frames = frames.clamp(0, 1).reshape(B, self.frames, 3, H, W).permute(0, 1, 3, 4, 2)
            out = frames.cpu().numpy().astype(np.float32)
        if self.first_frame_original:
            out[:, 0] = images.astype(np.float32) / 255.0
        return np.ascontiguousarray(out)
