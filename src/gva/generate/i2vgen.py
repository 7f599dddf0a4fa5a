"""``i2vgen``: I2VGen-XL (``I2VGenXLPipeline``).

A text- and image-conditioned (CLIP) 3-D UNet over a per-frame 2-D VAE: any frame count, canvases
that are multiples of 8, conditioned on the frame rate (``svd.fps`` -> ``target_fps``).

Two quirks of the (deprecated) diffusers pipeline, handled here:

* it samples the image latents from torch's *global* RNG (``latent_dist.sample()`` without the
  call's generators), so a clip would depend on what ran before it. Each call therefore holds one
  image and runs under a forked global RNG seeded from that image's seed (:func:`latent_seed`: a
  seed of its own, since on the CPU a global RNG seeded with the call generator's seed would draw
  the image-latent noise equal to the start of the initial noise): the clip depends on the image
  and its seed only, and the caller's RNG state is left as it was;
* its default ``clip_skip=1`` reads ``text_encoder.text_model``, which transformers 5's
  ``CLIPTextModel`` no longer has: the prompt embeddings are computed as the pipeline would
  (:func:`i2vgen_prompt_embeds`) and passed in.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from typing import Any

from gva.generate.base import Prompt
from gva.generate.i2v import I2VFamily, I2VGenerator

I2VGEN = I2VFamily(name="i2vgen", pipeline="I2VGenXLPipeline", default_model="ali-vilab/i2vgen-xl",
                   frame_step=1, multiple=8, guidance=9.0, fps_arg="target_fps",
                   batch_note="I2VGenXLPipeline samples image latents from torch's global RNG, seeded per image")


def latent_seed(seed: int) -> int:
    """The global RNG's seed for an image of seed ``seed``: a 63-bit hash of it, so the image-latent
    noise is not the call generator's stream (seeded with ``seed`` itself) again."""
    digest = hashlib.blake2b(f"gva-i2vgen-image-latents:{int(seed)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class I2VGenXLGenerator(I2VGenerator):
    """``i2vgen``: I2VGen-XL from ``svd.model`` (null: ``ali-vilab/i2vgen-xl``)."""

    family = I2VGEN

    def text_inputs(self, prompts: list[Prompt]) -> dict[str, Any]:
        pos, neg = i2vgen_prompt_embeds(self.pipe, [p.text for p in prompts], [p.negative for p in prompts])
        return {"prompt_embeds": pos, "negative_prompt_embeds": neg}

    @contextlib.contextmanager
    def rng_scope(self, seeds: list[int]) -> Iterator[None]:
        import torch

        (seed,) = seeds  # one image per call (batch_note)
        device = self.pipe.device  # the latents are sampled where the VAE runs
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(latent_seed(seed))  # seeds the CPU and every CUDA device
            yield


def i2vgen_prompt_embeds(pipe, prompt: list[str], negative_prompt: list[str] | None = None,
                         clip_skip: int | None = 1):
    """``(prompt_embeds, negative_prompt_embeds)`` exactly as ``I2VGenXLPipeline.encode_prompt`` makes them.

    The pipeline's default ``clip_skip=1`` (the penultimate CLIP layer, as the original model) reads
    ``text_encoder.text_model.final_layer_norm``, which transformers 5's ``CLIPTextModel`` no longer
    has; passing these embeddings to the call avoids that path with the same numbers.
    """
    import torch

    tokenizer, encoder = pipe.tokenizer, pipe.text_encoder
    final_norm = getattr(encoder, "text_model", encoder).final_layer_norm

    def embed(texts: list[str], length: int):
        tokens = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
        ids = tokens.input_ids.to(encoder.device)
        use_mask = getattr(encoder.config, "use_attention_mask", False)  # as the pipeline; unset for CLIP
        mask = tokens.attention_mask.to(encoder.device) if use_mask else None
        if clip_skip is None:
            return encoder(ids, attention_mask=mask)[0]
        hidden = encoder(ids, attention_mask=mask, output_hidden_states=True).hidden_states[-(clip_skip + 1)]
        return final_norm(hidden)

    with torch.no_grad():
        pos = embed(list(prompt), tokenizer.model_max_length)
        neg = embed(list(negative_prompt) if negative_prompt is not None else [""] * len(prompt), pos.shape[1])
    return pos.to(encoder.dtype), neg.to(encoder.dtype)
