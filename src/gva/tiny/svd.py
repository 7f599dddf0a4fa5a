"""``tiny-svd``: the ``svd`` generator's code on a tiny random ``StableVideoDiffusionPipeline``.

The components are diffusers' own test configs, seeded so the model is identical every time; they
are saved once under ``<cache>/tiny-svd/v1`` and loaded back with ``from_pretrained`` -- the real
loading path, no download. Its clips are structured noise: for offline runs and tests, never for
results.
"""

from __future__ import annotations

from pathlib import Path

from gva.generate.svd import SvdGenerator
from gva.paths import CACHE_DIR
from gva.tiny.base import TinyModel

#: Names the model directory (``<cache>/tiny-svd/v1``) and model id (``tiny-svd-v1``). A rebuild
#: needs no bump: the directory is rebuilt whenever its stamp (this module's code and the library
#: versions) differs from the running ones (:func:`gva.tiny.base.tiny_model_dir`).
TINY_SVD_VERSION = 1
TINY_SVD_SEED = 0


def build_tiny_pipeline(seed: int = TINY_SVD_SEED):
    """Tiny random SVD pipeline from diffusers' test configs (CPU, fp32); same weights every call.

    The CLIP vision tower takes 224-px input: the pipeline resizes PIL inputs to 224 for CLIP.
    """
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
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
    return pipe.to("cpu")  # type: ignore[attr-defined]  # diffusers' lazy top-level import types the class as a dummy



class TinySvdGenerator(TinyModel, SvdGenerator):
    """``tiny-svd``: the same pipeline code on tiny random weights built locally (no download).

    The model is :func:`model_dir`, identified as ``tiny-svd-v1``, unless ``svd.model`` names a
    local pipeline directory (:class:`gva.tiny.base.TinyModel`). Its clips are structured noise.
    """

    tiny_name = "tiny-svd"
    tiny_version = TINY_SVD_VERSION
    build_files = (Path(__file__),)

    @classmethod
    def build_pipeline(cls):
        return build_tiny_pipeline()


def model_dir(cache_root: str | Path = CACHE_DIR) -> Path:
    """The tiny-svd pipeline directory, built and saved (atomically) on first use."""
    return TinySvdGenerator.tiny_dir(cache_root)
