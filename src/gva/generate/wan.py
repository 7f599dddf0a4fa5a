"""``wan``: Wan 2.1 image-to-video (``WanImageToVideoPipeline``).

A text-conditioned (umT5) diffusion transformer that also attends to a CLIP embedding of the input
image, over a causal 3-D VAE that compresses time 4x: clips are generated with 4k+1 frames on
canvases that are multiples of 16. A call takes one image: the pipeline repeats the CLIP embedding
and the image latents once per prompt, so a batch of B images would make B*B rows. The model card
keeps the VAE and the image encoder in fp32 under a half dtype, as gva does; prompt cleaning uses
the ``ftfy`` package.
"""

from __future__ import annotations

from gva.generate.i2v import I2VFamily, I2VGenerator

WAN = I2VFamily(name="wan", pipeline="WanImageToVideoPipeline",
                default_model="Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", frame_step=4, multiple=16, guidance=5.0,
                fps_arg=None, fp32_components=("vae", "image_encoder"), dtype="bf16",
                batch_note="WanImageToVideoPipeline conditions every clip of a call on one image")


class WanGenerator(I2VGenerator):
    """``wan``: Wan I2V from ``svd.model`` (null: Wan 2.1 I2V 14B 480P)."""

    family = WAN

