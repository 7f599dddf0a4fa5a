"""``cogvideox``: CogVideoX image-to-video (``CogVideoXImageToVideoPipeline``).

A text-conditioned (T5) diffusion transformer over a 3-D VAE that compresses time 4x. The pipeline
asks for 4k+1 frames, but the VAE decodes an even latent count T to 4T frames (its temporal
upsampling splits off the first frame only when T is odd), so only 8k+1 requests come back exact:
clips are generated with 8k+1 frames (:class:`gva.generate.i2v.I2VFamily`). The default model,
``THUDM/CogVideoX-5b-I2V``, has learned position embeddings fixed to 480 x 720 (the tiny build's:
16 x 16), which :meth:`CogVideoXGenerator.check_model` enforces with a message instead of a shape
error; CogVideoX 1.5 I2V weights (rotary embeddings) take any multiple of 16.
"""

from __future__ import annotations

from gva.errors import ConfigError
from gva.generate.i2v import I2VFamily, I2VGenerator

COGVIDEOX = I2VFamily(name="cogvideox", pipeline="CogVideoXImageToVideoPipeline",
                      default_model="THUDM/CogVideoX-5b-I2V", frame_step=8, multiple=16, guidance=6.0,
                      fps_arg=None, native_size=(480, 720), dtype="bf16")


class CogVideoXGenerator(I2VGenerator):
    """``cogvideox``: CogVideoX I2V from ``svd.model`` (null: ``THUDM/CogVideoX-5b-I2V``, 480 x 720)."""

    family = COGVIDEOX

    def check_model(self) -> None:
        cfg = self.pipe.transformer.config
        if getattr(cfg, "use_learned_positional_embeddings", False):
            scale = self.pipe.vae_scale_factor_spatial
            native = (cfg.sample_height * scale, cfg.sample_width * scale)
            if (self.height, self.width) != native:
                raise ConfigError(f"svd.model {self.model_name!r} has learned position embeddings fixed to "
                                  f"{native[0]}x{native[1]}: set svd.height={native[0]} svd.width={native[1]} "
                                  f"(got {self.height}x{self.width}), or a CogVideoX 1.5 model")

