"""``tiny-cogvideox``: the ``cogvideox`` generator's code on a tiny random CogVideoX image-to-video pipeline.

Built from diffusers' pipeline-test configuration with the changes listed in :func:`build`, saved
once under ``<cache>/tiny-cogvideox/v1`` and loaded back with ``from_pretrained`` (no download). Its clips
are structured noise: for offline runs and tests, never for results.
"""

from __future__ import annotations

from pathlib import Path

from gva.generate.cogvideox import CogVideoXGenerator
from gva.paths import CACHE_DIR
from gva.tiny import tokenizers
from gva.tiny.base import TinyModel, loaded_back
from gva.tiny.tokenizers import t5_encoder, t5_tokenizer


def scheduler():
    """The real model's scheduler (its diffusers conversion script's config)."""
    from diffusers import CogVideoXDDIMScheduler

    # convert_cogvideox_to_diffusers.py, 5B: snr_shift_scale 1.0
    return CogVideoXDDIMScheduler(snr_shift_scale=1.0, beta_end=0.012, beta_schedule="scaled_linear",
                                  beta_start=0.00085, clip_sample=False, num_train_timesteps=1000,
                                  prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                  set_alpha_to_one=True, timestep_spacing="trailing")


def build(seed: int = 0):
    """Test config, except: max_text_seq_length 226 (the real one, so the default
    ``max_sequence_length`` works) and the real CogVideoX DDIM scheduler."""
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXImageToVideoPipeline, CogVideoXTransformer3DModel

    torch.manual_seed(seed)
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=2,
        text_embed_dim=32, num_layers=1, sample_width=2, sample_height=2, sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=226, use_rotary_positional_embeddings=True,
        use_learned_positional_embeddings=True)  # learned table: 16x16 px only, like 480x720 for the 5B
    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(
        in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
        up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
        layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4)
    tokenizer = t5_tokenizer(226)
    text_encoder = t5_encoder(tokenizer, seed)
    return CogVideoXImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae,
                                         transformer=transformer, scheduler=scheduler())


def pipeline(seed: int = 0):
    """The tiny pipeline on CPU in fp32, the same weights on every call, as loaded back from a
    ``save_pretrained`` directory (:func:`gva.tiny.base.loaded_back`)."""
    return loaded_back(build(seed))


class TinyCogVideoXGenerator(TinyModel, CogVideoXGenerator):
    """``tiny-cogvideox``: CogVideoX image-to-video's pipeline code on tiny random weights
    (``<cache>/tiny-cogvideox/v1``, model id ``tiny-cogvideox-v1``), unless ``svd.model`` names a local
    pipeline directory."""

    tiny_name = "tiny-cogvideox"
    build_files = (Path(__file__), Path(tokenizers.__file__))

    @classmethod
    def build_pipeline(cls):
        return pipeline()


def model_dir(cache_root: str | Path = CACHE_DIR) -> Path:
    """The tiny-cogvideox pipeline directory, built and saved on first use."""
    return TinyCogVideoXGenerator.tiny_dir(cache_root)
