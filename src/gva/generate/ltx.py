"""``ltx``: LTX-Video image-to-video (``LTXImageToVideoPipeline``).

A text-conditioned (T5) diffusion transformer over a VAE that compresses time 8x and space 32x:
clips are generated with 8k+1 frames on canvases that are multiples of 32, and the model is
conditioned on the frame rate (``svd.fps`` -> ``frame_rate``).
"""

from __future__ import annotations

from gva.generate.i2v import I2VFamily, I2VGenerator

LTX = I2VFamily(name="ltx", pipeline="LTXImageToVideoPipeline", default_model="Lightricks/LTX-Video",
                frame_step=8, multiple=32, guidance=3.0, fps_arg="frame_rate", dtype="bf16")


class LtxGenerator(I2VGenerator):
    """``ltx``: LTX-Video I2V from ``svd.model`` (null: ``Lightricks/LTX-Video``)."""

    family = LTX

