"""``tiny-ltx``: the ``ltx`` generator's code on a tiny random LTX-Video image-to-video pipeline.

Built from diffusers' pipeline-test configuration with the changes listed in :func:`build`, saved
once under ``<cache>/tiny-ltx/v1`` and loaded back with ``from_pretrained`` (no download). Its clips
are structured noise: for offline runs and tests, never for results.
"""

from __future__ import annotations

from pathlib import Path

from gva.generate.ltx import LtxGenerator
from gva.paths import CACHE_DIR
from gva.tiny import tokenizers
from gva.tiny.base import TinyModel, loaded_back
from gva.tiny.tokenizers import t5_encoder, t5_tokenizer


def scheduler():
    """The real model's scheduler (its diffusers conversion script's config)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    # convert_ltx_to_diffusers.py, versions before 0.9.5
    return FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05,
                                           base_image_seq_len=1024, max_image_seq_len=4096, shift_terminal=0.1)


def build(seed: int = 0):
    """Test transformer; the test VAE's channels but the real 0.9.0 compression (patch 4 and three
    spatio-temporal stages: 32x spatial, 8x temporal, so frames follow 8k+1 as in the real model)."""
    import torch
    from diffusers import AutoencoderKLLTXVideo, LTXImageToVideoPipeline, LTXVideoTransformer3DModel

    torch.manual_seed(seed)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4, attention_head_dim=8,
        cross_attention_dim=32, num_layers=1, caption_channels=32)
    torch.manual_seed(seed)
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=False,
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False)
    tokenizer = t5_tokenizer(128)
    text_encoder = t5_encoder(tokenizer, seed)
    return LTXImageToVideoPipeline(scheduler=scheduler(), vae=vae, text_encoder=text_encoder,
                                   tokenizer=tokenizer, transformer=transformer)


def pipeline(seed: int = 0):
    """The tiny pipeline on CPU in fp32, the same weights on every call, as loaded back from a
    ``save_pretrained`` directory (:func:`gva.tiny.base.loaded_back`)."""
    return loaded_back(build(seed))


class TinyLtxGenerator(TinyModel, LtxGenerator):
    """``tiny-ltx``: LTX-Video image-to-video's pipeline code on tiny random weights (``<cache>/tiny-ltx/v1``,
    model id ``tiny-ltx-v1``), unless ``svd.model`` names a local pipeline directory."""

    tiny_name = "tiny-ltx"
    build_files = (Path(__file__), Path(tokenizers.__file__))

    @classmethod
    def build_pipeline(cls):
        return pipeline()


def model_dir(cache_root: str | Path = CACHE_DIR) -> Path:
    """The tiny-ltx pipeline directory, built and saved on first use."""
    return TinyLtxGenerator.tiny_dir(cache_root)
