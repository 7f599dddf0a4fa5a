"""The real architectures of the generators' default models, with random weights: for the cost benchmark.

``benchmarks/generate.py --full NAME`` builds these to count parameters and FLOPs (on the ``meta``
device) and, on a GPU, to time generation through gva's generator classes; ``end_to_end.py``
saves the SVD one as a local model directory. Never for content. Nothing here touches the hub,
and no gva module imports this file. Config sources (diffusers commit 58eb52c, scripts/ = its
conversion scripts):

- svd: ``UNetSpatioTemporalConditionModel``'s defaults (the checkpoint's unet/config.json),
  :data:`SVD_VAE_CONFIG`, the CLIP ViT-H/14 vision tower with its 1024-d projection.
- cogvideox: transformer = ``scripts/convert_cogvideox_to_diffusers.py`` (5B: 42 layers, 48 heads,
  RoPE, ``--i2v`` -> in_channels 32 and learned positional embeddings, version 1.0 -> 480x720x49);
  VAE = ``AutoencoderKLCogVideoX`` defaults with the 5B ``scaling_factor`` 0.7; scheduler =
  the script's ``CogVideoXDDIMScheduler`` (5B ``snr_shift_scale`` 1.0); text = T5-XXL
  (``google/t5-v1_1-xxl`` config.json), tokenizer length 226.
- ltx: ``scripts/convert_ltx_to_diffusers.py`` ``get_transformer_config``/``get_vae_config('0.9.0')``
  and its 0.9.0 scheduler; text = T5-XXL, tokenizer length 128. The ``Lightricks/LTX-Video`` diffusers
  folders hold 0.9.0 (0.9.1's timestep-conditioned VAE was published as
  ``a-r-r-o-w/LTX-Video-0.9.1-diffusers``; its transformer is the same).
- wan: ``scripts/convert_wan_to_diffusers.py`` ``Wan-I2V-14B-480p`` transformer config,
  ``AutoencoderKLWan()`` (the script's ``convert_vae``), UniPC with ``flow_shift`` 3.0, umT5-XXL
  (``google/umt5-xxl`` config.json), image encoder the ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``
  vision tower as ``CLIPVisionModel``: the pipeline's declared type and what the model card loads
  (the script saves it with the 1024-d projection, +1.3 M parameters Wan never uses: it reads the
  penultimate hidden states).
- i2vgen: ``scripts/convert_i2vgen_to_diffusers.py``: ``I2VGenXLUNet(sample_size=32)`` defaults,
  the SD 2.1 VAE (``stabilityai/stable-diffusion-2-1`` vae/config.json), text and image towers of
  ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (config.json: text 1024 wide, 24 layers; vision 1280
  wide, 32 layers, patch 14), and the script's DDIM scheduler.

The schedulers are the ones the tiny builds use (``gva.tiny.<family>.scheduler``: the real
models'); the tokenizers are the tiny builds' local ones (cost does not depend on the vocabulary);
the text encoders keep the real vocabulary size, so parameter counts are the real ones.

torch/diffusers/transformers are imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # run from a checkout without install

from gva.generate.pipelines import resolve_dtype, torch_dtype  # noqa: E402
from gva.tiny.tokenizers import clip_tokenizer, t5_tokenizer  # noqa: E402

FAMILIES = ("cogvideox", "ltx", "wan", "i2vgen")


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


def _scheduler(family: str):
    """The real model's scheduler, as the tiny build of ``family`` uses it."""
    return importlib.import_module(f"gva.tiny.{family}").scheduler()


def _t5_xxl(num_layers: int | None, umt5: bool, tokenizer):
    """T5 v1.1 XXL encoder (google/t5-v1_1-xxl) or umT5-XXL (google/umt5-xxl): 4096 wide, 24 layers."""
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    kwargs = dict(vocab_size=256384 if umt5 else 32128, d_model=4096, d_ff=10240, d_kv=64, num_heads=64,
                  num_layers=num_layers or 24, feed_forward_proj="gated-gelu", relative_attention_num_buckets=32,
                  relative_attention_max_distance=128, layer_norm_epsilon=1e-6, tie_word_embeddings=False,
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                  decoder_start_token_id=tokenizer.pad_token_id)
    if umt5:
        return UMT5EncoderModel(UMT5Config(scalable_attention=True, **kwargs))
    return T5EncoderModel(T5Config(**kwargs))


def _clip_vit_h_vision(projection: bool):
    """laion/CLIP-ViT-H-14-laion2B-s32B-b79K vision tower, with its 1024-d projection or without."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(hidden_size=1280, intermediate_size=5120, num_attention_heads=16,
                              num_hidden_layers=32, patch_size=14, image_size=224, projection_dim=1024,
                              hidden_act="gelu", layer_norm_eps=1e-5)
    return CLIPVisionModelWithProjection(config) if projection else CLIPVisionModel(config)


def _full_components(family: str, num_layers: int | None) -> tuple[type, dict[str, Callable[[], Any]]]:
    """(pipeline class, {component name: factory}) of the real architecture, scheduler aside.

    Factories, so that :func:`full_pipeline` can build and cast one module at a time; the big
    denoiser comes first while nothing else is on the device yet.
    """
    import diffusers
    from transformers import CLIPImageProcessor, CLIPTextConfig, CLIPTextModel

    if family == "cogvideox":
        tokenizer = t5_tokenizer(226)
        return diffusers.CogVideoXImageToVideoPipeline, dict(
            transformer=lambda: diffusers.CogVideoXTransformer3DModel(
                num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16, time_embed_dim=512,
                text_embed_dim=4096, num_layers=num_layers or 42, sample_width=90, sample_height=60,
                sample_frames=49, patch_size=2, patch_size_t=None, patch_bias=True, temporal_compression_ratio=4,
                max_text_seq_length=226, use_rotary_positional_embeddings=True,
                use_learned_positional_embeddings=True),
            text_encoder=lambda: _t5_xxl(num_layers, False, tokenizer),
            vae=lambda: diffusers.AutoencoderKLCogVideoX(
                block_out_channels=(128, 256, 256, 512), latent_channels=16, layers_per_block=3,
                temporal_compression_ratio=4, scaling_factor=0.7),
            tokenizer=lambda: tokenizer)
    if family == "ltx":
        tokenizer = t5_tokenizer(128)
        return diffusers.LTXImageToVideoPipeline, dict(
            transformer=lambda: diffusers.LTXVideoTransformer3DModel(  # get_transformer_config("0.9.0")
                in_channels=128, out_channels=128, patch_size=1, patch_size_t=1, num_attention_heads=32,
                attention_head_dim=64, cross_attention_dim=2048, num_layers=num_layers or 28,
                activation_fn="gelu-approximate", qk_norm="rms_norm_across_heads", norm_elementwise_affine=False,
                norm_eps=1e-6, caption_channels=4096, attention_bias=True, attention_out_bias=True),
            text_encoder=lambda: _t5_xxl(num_layers, False, tokenizer),
            vae=lambda: diffusers.AutoencoderKLLTXVideo(  # get_vae_config("0.9.0")
                in_channels=3, out_channels=3, latent_channels=128, block_out_channels=(128, 256, 512, 512),
                decoder_block_out_channels=(128, 256, 512, 512), layers_per_block=(4, 3, 3, 3, 4),
                decoder_layers_per_block=(4, 3, 3, 3, 4), spatio_temporal_scaling=(True, True, True, False),
                decoder_spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(False,) * 5,
                upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, patch_size=4, patch_size_t=1,
                resnet_norm_eps=1e-6, scaling_factor=1.0, encoder_causal=True, decoder_causal=False,
                timestep_conditioning=False),
            tokenizer=lambda: tokenizer)
    if family == "wan":
        tokenizer = t5_tokenizer(512)
        return diffusers.WanImageToVideoPipeline, dict(
            transformer=lambda: diffusers.WanTransformer3DModel(  # get_transformer_config("Wan-I2V-14B-480p")
                patch_size=(1, 2, 2), num_attention_heads=40, attention_head_dim=128, in_channels=36,
                out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=13824, num_layers=num_layers or 40,
                cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6, image_dim=1280,
                added_kv_proj_dim=5120, rope_max_seq_len=1024),
            text_encoder=lambda: _t5_xxl(num_layers, True, tokenizer),
            # CLIPVisionModel: the pipeline's declared type and the model card's loading class
            image_encoder=lambda: _clip_vit_h_vision(projection=False),
            vae=lambda: diffusers.AutoencoderKLWan(base_dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                                                   temperal_downsample=[False, True, True]),
            image_processor=CLIPImageProcessor,  # CLIP's 224-px defaults, as the laion preprocessor
            tokenizer=lambda: tokenizer)
    tokenizer = clip_tokenizer(77)
    return diffusers.I2VGenXLPipeline, dict(
        unet=lambda: diffusers.I2VGenXLUNet(  # I2VGenXLUNet(sample_size=32) defaults
            sample_size=32, in_channels=4, out_channels=4,
            down_block_types=("CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"),
            up_block_types=("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"),
            block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, norm_num_groups=32,
            cross_attention_dim=1024, attention_head_dim=64, num_attention_heads=None),
        text_encoder=lambda: CLIPTextModel(CLIPTextConfig(  # laion CLIP-ViT-H-14 text tower
            vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_attention_heads=16,
            num_hidden_layers=num_layers or 24, max_position_embeddings=77, hidden_act="gelu", projection_dim=1024,
            layer_norm_eps=1e-5, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id)),
        image_encoder=lambda: _clip_vit_h_vision(projection=True),  # I2VGen reads image_embeds (projected)
        vae=lambda: diffusers.AutoencoderKL(  # stabilityai/stable-diffusion-2-1 vae
            in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
            latent_channels=4, norm_num_groups=32, sample_size=768, scaling_factor=0.18215),
        feature_extractor=CLIPImageProcessor,
        tokenizer=lambda: tokenizer)


def _cast(module, dtype) -> None:
    """Cast floating parameters and buffers to ``dtype`` as ``from_pretrained(torch_dtype=dtype)`` would.

    The model class's ``_keep_in_fp32_modules`` stay fp32 -- diffusers: for any half dtype (Wan's
    norms, time embedder, RoPE); transformers: only for fp16 (T5's ``wo``), ``..._strict`` also for
    bf16. Tensor by tensor (not ``module.to``, which diffusers warns about for such models).
    """
    import torch

    keep = set(getattr(module, "_keep_in_fp32_modules", None) or ())
    if hasattr(module, "_keep_in_fp32_modules_strict"):  # a transformers model: its rule
        keep = (keep if dtype == torch.float16 else set()) | set(module._keep_in_fp32_modules_strict or ())
    for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(torch.float32 if keep & set(name.split(".")) else dtype)


def full_pipeline(family: str, device: str = "cuda", dtype: str = "bf16", num_layers: int | None = None,
                  keep_fp32: Sequence[str] = ()):
    """The real architecture of ``family``'s default hub model with random weights, on ``device``.

    For cost benchmarking (FLOPs, memory, time), never for content. ``num_layers`` overrides the
    depth of the denoising transformer (cogvideox/ltx/wan) and of the text encoder (all four, T5 /
    umT5 / CLIP text), so costs can be measured at reduced depth and scaled linearly; VAEs, image
    encoders and the i2vgen UNet keep their real size. Each module is initialised under
    ``torch.device(device)`` (fast on a GPU; ``"meta"`` builds shapes only, for parameter counts)
    and cast to ``dtype`` before the next one is built, so only one module is ever in fp32 at full
    size (Wan's transformer: 66 GB fp32, 33 GB bf16). Casting follows ``from_pretrained`` (see
    :func:`_cast`); the components named in ``keep_fp32`` stay fp32 (pass the family's
    ``Family.fp32_components``: Wan's model card loads its VAE and image encoder in fp32).
    Weights: the libraries' default initialisation under ``torch.manual_seed(0)``.
    """
    import torch

    _check_family(family)
    if num_layers is not None and num_layers < 1:
        raise ValueError(f"num_layers must be >= 1, got {num_layers}")
    torch.manual_seed(0)
    cls, factories = _full_components(family, num_layers)
    # outside the device context: scheduler tables stay on the CPU, as from_pretrained leaves them
    return cls(scheduler=_scheduler(family), **_build(factories, device, dtype, keep_fp32))


def _build(factories: dict[str, Callable[[], Any]], device: str, dtype: str,
           keep_fp32: Sequence[str] = ()) -> dict[str, Any]:
    """{name: component}: each factory called under ``torch.device(device)``, in order; a module is put
    in eval mode and cast (:func:`_cast`) to ``dtype`` -- fp32 if named in ``keep_fp32`` -- before the
    next one is built, so only one module is ever in fp32 at full size."""
    import torch

    cast_to = torch_dtype(dtype)
    components: dict[str, Any] = {}
    for name, factory in factories.items():
        with torch.device(device):
            component = factory()
        if isinstance(component, torch.nn.Module):
            component.eval()
            _cast(component, torch.float32 if name in keep_fp32 else cast_to)
        components[name] = component
    return components


def full_component(family: str, name: str, device: str = "cpu", dtype: str = "fp32", num_layers: int | None = None,
                   keep_fp32: Sequence[str] = ()):
    """One module of :func:`full_pipeline` (``"transformer"``, ``"text_encoder"`` ...; family ``"svd"``:
    of :func:`full_svd_pipeline`) built alone, the same way.

    For measuring one component at reduced depth without building the rest (e.g. Wan's 1 B-parameter
    umT5 embedding when only the transformer is wanted). Weights: ``torch.manual_seed(0)`` before it.
    """
    import torch

    if family == "svd":
        if num_layers is not None:
            raise ValueError("the svd build has no num_layers override")
        factories = _svd_factories()
    else:
        _check_family(family)
        if num_layers is not None and num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        _, factories = _full_components(family, num_layers)
    if name not in factories:
        raise ValueError(f"{family} has no component {name!r}; it has {', '.join(factories)}")
    torch.manual_seed(0)
    return _build({name: factories[name]}, device, dtype, keep_fp32)[name]


#: ``stabilityai/stable-video-diffusion-img2vid`` vae/config.json (the SD 2.x encoder, 4 stages, 8x).
SVD_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3, "out_channels": 3, "down_block_types": ("DownEncoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512), "layers_per_block": 2, "latent_channels": 4,
    "sample_size": 768, "scaling_factor": 0.18215, "force_upcast": True,
}


def _svd_factories() -> dict[str, Callable[[], Any]]:
    """{component name: factory} of :func:`full_svd_pipeline`'s networks, the UNet first."""
    import diffusers

    return dict(unet=lambda: diffusers.UNetSpatioTemporalConditionModel(sample_size=96, num_frames=14),
                image_encoder=lambda: _clip_vit_h_vision(projection=True),
                vae=lambda: diffusers.AutoencoderKLTemporalDecoder(**SVD_VAE_CONFIG))


def full_svd_pipeline(device: str = "cuda", dtype: str = "fp16"):
    """``stabilityai/stable-video-diffusion-img2vid``'s architecture, random weights, built as :func:`full_pipeline`.

    UNet: ``UNetSpatioTemporalConditionModel``'s defaults, which are the checkpoint's unet/config.json
    (1.52 B parameters); VAE: :data:`SVD_VAE_CONFIG` (``AutoencoderKLTemporalDecoder()`` with the
    class defaults is one 64-channel stage without downsampling, 0.56 M parameters: the pipeline's
    ``vae_scale_factor`` is then 1 and the UNet runs at pixel resolution); image encoder: the
    CLIP ViT-H/14 vision tower with its 1024-d projection; scheduler and feature extractor as the
    checkpoint's. Each module is initialised on ``device`` and
    cast to ``dtype`` before the next is built.
    """
    import diffusers
    import torch
    from transformers import CLIPImageProcessor

    torch.manual_seed(0)
    components = _build(_svd_factories(), device, dtype)
    scheduler = diffusers.EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002,
        steps_offset=1, timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)
    return diffusers.StableVideoDiffusionPipeline(scheduler=scheduler,
                                                  feature_extractor=CLIPImageProcessor(crop_size=224, size=224),
                                                  **components)


def full_random_svd_pipeline(device: str = "cuda", dtype: str = "fp16"):
    """:func:`full_svd_pipeline` in ``svd.dtype`` resolved for ``device`` (fp32 on the CPU), as gva would
    load the real model; meant for a GPU (~2.2 B parameters)."""
    return full_svd_pipeline(device, resolve_dtype(dtype, device))


def parameter_counts(pipe) -> dict[str, int]:
    """Parameters per ``torch.nn.Module`` component of a pipeline (works on meta tensors too)."""
    import torch

    return {name: sum(p.numel() for p in module.parameters())
            for name, module in pipe.components.items() if isinstance(module, torch.nn.Module)}
