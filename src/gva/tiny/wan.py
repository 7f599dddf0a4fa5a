"""``tiny-wan``: the ``wan`` generator's code on a tiny random Wan 2.1 image-to-video pipeline.

Built from diffusers' pipeline-test configuration with the changes listed in :func:`build`, saved
once under ``<cache>/tiny-wan/v1`` and loaded back with ``from_pretrained`` (no download). Its clips
are structured noise: for offline runs and tests, never for results.
"""

from __future__ import annotations

from pathlib import Path

from gva.generate.wan import WanGenerator
from gva.paths import CACHE_DIR
from gva.tiny import tokenizers
from gva.tiny.base import TinyModel, loaded_back
from gva.tiny.tokenizers import t5_encoder, t5_tokenizer


def scheduler():
    """The real model's scheduler (its diffusers conversion script's config)."""
    from diffusers import UniPCMultistepScheduler

    # convert_wan_to_diffusers.py: flow_shift 3.0 for the 480P I2V model
    return UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
                                   num_train_timesteps=1000, flow_shift=3.0)


def build(seed: int = 0):
    """Test config, except: ``added_kv_proj_dim`` set (the real I2V transformer's separate image
    cross-attention, which needs the real 512-token text length), a CLIP tower giving the real
    257 image tokens (32 px, patch 2), a umT5 encoder and the real UniPC scheduler."""
    import torch
    from diffusers import AutoencoderKLWan, WanImageToVideoPipeline, WanTransformer3DModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    tokenizer = t5_tokenizer(512)
    text_encoder = t5_encoder(tokenizer, seed, umt5=True)
    torch.manual_seed(seed)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, image_dim=4, added_kv_proj_dim=24)
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(
        hidden_size=4, num_hidden_layers=2, num_attention_heads=2, image_size=32, intermediate_size=16, patch_size=2))
    image_processor = CLIPImageProcessor(crop_size=32, size=32)
    return WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                   scheduler=scheduler(), image_processor=image_processor,
                                   image_encoder=image_encoder, transformer=transformer)


def pipeline(seed: int = 0):
    """The tiny pipeline on CPU in fp32, the same weights on every call, as loaded back from a
    ``save_pretrained`` directory (:func:`gva.tiny.base.loaded_back`)."""
    return loaded_back(build(seed))


class TinyWanGenerator(TinyModel, WanGenerator):
    """``tiny-wan``: Wan 2.1 image-to-video's pipeline code on tiny random weights (``<cache>/tiny-wan/v1``,
    model id ``tiny-wan-v1``), unless ``svd.model`` names a local pipeline directory."""

    tiny_name = "tiny-wan"
    build_files = (Path(__file__), Path(tokenizers.__file__))

    @classmethod
    def build_pipeline(cls):
        return pipeline()


def model_dir(cache_root: str | Path = CACHE_DIR) -> Path:
    """The tiny-wan pipeline directory, built and saved on first use."""
    return TinyWanGenerator.tiny_dir(cache_root)
