"""``tiny-i2vgen``: the ``i2vgen`` generator's code on a tiny random I2VGen-XL pipeline.

Built from diffusers' pipeline-test configuration with the changes listed in :func:`build`, saved
once under ``<cache>/tiny-i2vgen/v1`` and loaded back with ``from_pretrained`` (no download). Its clips
are structured noise: for offline runs and tests, never for results.
"""

from __future__ import annotations

from pathlib import Path

from gva.generate.i2vgen import I2VGenXLGenerator
from gva.paths import CACHE_DIR
from gva.tiny import tokenizers
from gva.tiny.base import TinyModel, loaded_back
from gva.tiny.tokenizers import clip_tokenizer


def scheduler():
    """The real model's scheduler (its diffusers conversion script's config)."""
    from diffusers import DDIMScheduler

    # convert_i2vgen_to_diffusers.py (i2vgen_xl_train.yaml)
    return DDIMScheduler(beta_schedule="squaredcos_cap_v2", rescale_betas_zero_snr=True, set_alpha_to_one=True,
                         clip_sample=False, steps_offset=1, timestep_spacing="leading",
                         prediction_type="v_prediction")


def build(seed: int = 0):
    """Test config, except: a four-stage VAE (the real 8x compression instead of the test's 1x) and
    the real DDIM scheduler."""
    import torch
    from diffusers import AutoencoderKL, I2VGenXLPipeline, I2VGenXLUNet
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    torch.manual_seed(seed)
    unet = I2VGenXLUNet(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"), up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
        cross_attention_dim=4, attention_head_dim=4, num_attention_heads=None, norm_num_groups=2)
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        block_out_channels=(8, 8, 8, 8), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, latent_channels=4, sample_size=32, norm_num_groups=2)
    tokenizer = clip_tokenizer(77)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        hidden_size=4, intermediate_size=16, layer_norm_eps=1e-05, num_attention_heads=2, num_hidden_layers=2,
        vocab_size=len(tokenizer), hidden_act="gelu", projection_dim=32))
    torch.manual_seed(seed)
    image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=4, projection_dim=4, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        intermediate_size=16, patch_size=1))
    feature_extractor = CLIPImageProcessor(crop_size=32, size=32)
    return I2VGenXLPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, image_encoder=image_encoder,
                            feature_extractor=feature_extractor, unet=unet, scheduler=scheduler())


def pipeline(seed: int = 0):
    """The tiny pipeline on CPU in fp32, the same weights on every call, as loaded back from a
    ``save_pretrained`` directory (:func:`gva.tiny.base.loaded_back`)."""
    return loaded_back(build(seed))


class TinyI2VGenXLGenerator(TinyModel, I2VGenXLGenerator):
    """``tiny-i2vgen``: I2VGen-XL's pipeline code on tiny random weights (``<cache>/tiny-i2vgen/v1``,
    model id ``tiny-i2vgen-v1``), unless ``svd.model`` names a local pipeline directory."""

    tiny_name = "tiny-i2vgen"
    build_files = (Path(__file__), Path(tokenizers.__file__))

    @classmethod
    def build_pipeline(cls):
        return pipeline()


def model_dir(cache_root: str | Path = CACHE_DIR) -> Path:
    """The tiny-i2vgen pipeline directory, built and saved on first use."""
    return TinyI2VGenXLGenerator.tiny_dir(cache_root)
