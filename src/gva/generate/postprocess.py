"""What happens to every generator's clips after generation: frame geometry and codec.

gva's protocol stores each generated frame as the square image it came from (``svd.geometry:
square``, ``svd.codec: none``). The reference code did two more things, which ``svd.geometry:
reference`` and ``svd.codec: h264`` reproduce for any generator (for ``repeat`` they make a
static clip in the reference geometry):

* **geometry** -- SVD's preprocessing resizes the square image to ``svd.width`` x ``svd.height``
  (1024 x 576 in the reference: a 16:9 stretch, Lanczos as diffusers' ``VideoProcessor``), and
  every output frame then goes through ``transforms.Resize(224)`` + ``transforms.CenterCrop(224)``.
  Each frame therefore shows the central ``height/width`` of the image's width (~56 %),
  stretched ``width/height`` (~1.78x) horizontally. Here the same two torchvision transforms
  run on the PIL frame, with the curated side ``S`` in place of 224 (the model input is
  upscaled from ``S`` later, as for every clip). A generator's square output is stretched to
  ``width x height`` first (for ``svd`` that frame was generated at that size and squashed to
  the square by gva, so it is resampled twice: the geometry is the reference's, the pixels
  slightly softer).
* **codec** -- every clip is written as an H.264 MP4 (libx264, crf 18, yuv420p, one thread so
  the bytes are deterministic) and read back, as the reference code trained and scored its
  models on decoded MP4 frames.

:func:`apply_protocol` wraps a generator when either knob is on; the wrapper's settings join
the cache key through :func:`protocol_settings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gva.config import SvdConfig
from gva.generate.base import Generator, Inputs, check_images

#: crf of the reference code's MP4s (and of gva's previews).
H264_CRF = 18


def reference_geometry(frames: np.ndarray, width: int, height: int, size: int) -> np.ndarray:
    """uint8 [..., H, W, 3] frames -> uint8 [..., size, size, 3] in the reference geometry.

    Each frame is resized (Lanczos) to ``width x height`` unless it already has that size, then
    ``Resize(size)`` (short side to ``size``, bilinear, antialiased) and ``CenterCrop(size)``, the
    torchvision transforms the reference code applies to PIL frames.
    """
    import torchvision.transforms.functional as TF
    from PIL import Image

    frames = np.asarray(frames)
    flat = frames.reshape((-1,) + frames.shape[-3:])
    out = np.empty((flat.shape[0], size, size, 3), dtype=np.uint8)
    for i, frame in enumerate(flat):
        img = Image.fromarray(frame)
        if img.size != (width, height):
            img = img.resize((width, height), Image.Resampling.LANCZOS)
        out[i] = np.asarray(TF.center_crop(TF.resize(img, size), size))
    return out.reshape(frames.shape[:-3] + (size, size, 3))


def h264_round_trip(clip: np.ndarray, fps: int, crf: int = H264_CRF) -> np.ndarray:
    """uint8 [T,H,W,3] -> the same frames after an in-memory H.264 MP4 (yuv420p) encode and decode.

    yuv420p needs even sides: an odd side is padded by one replicated row/column and cropped back.
    """
    import io
    from fractions import Fraction

    import av

    clip = np.asarray(clip)
    t, h, w, _ = clip.shape
    padded = np.pad(clip, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge") if h % 2 or w % 2 else clip
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(int(fps), 1))
        stream.width, stream.height = padded.shape[2], padded.shape[1]
        stream.pix_fmt = "yuv420p"
        # asm=0: x264's C code. Its assembly (AVX-512 here, on an AMD EPYC) gave a different
        # bitstream for the same frames in ~1 run of 3, depending on memory state, and without it
        # the bytes cannot depend on the CPU; the C code is bit-exact with the asm's usual output
        # and costs ~7 ms more per 224 px clip.
        stream.options = {"crf": str(crf), "x264-params": "asm=0"}
        stream.codec_context.thread_count = 1  # x264's output does not depend on threads, but be sure
        for frame in padded:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    buf.seek(0)
    with av.open(buf, mode="r") as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(container.streams.video[0])]
    if len(decoded) != t:  # a codec that drops or adds frames would silently change the clip length
        raise RuntimeError(f"H.264 round trip returned {len(decoded)} frames for {t}")
    return np.stack(decoded)[:, :h, :w]


def protocol_settings(cfg: SvdConfig) -> dict[str, Any]:
    """The geometry/codec settings that change clip bytes (part of the cache key)."""
    settings: dict[str, Any] = {"geometry": cfg.geometry, "codec": cfg.codec}
    if cfg.geometry == "reference":
        settings["stretch"] = [cfg.width, cfg.height]
    if cfg.codec == "h264":
        settings["h264"] = {"crf": H264_CRF, "fps": cfg.fps, "pix_fmt": "yuv420p"}
    return settings


class ProtocolGenerator(Generator):
    """A generator whose clips then go through the reference geometry and/or the H.264 round trip."""

    def __init__(self, inner: Generator, cfg: SvdConfig):
        self.inner = inner
        self.frames = inner.frames
        self.takes_inputs = inner.takes_inputs
        self.geometry, self.codec = cfg.geometry, cfg.codec
        self.width, self.height, self.fps = cfg.width, cfg.height, cfg.fps
        self.settings = protocol_settings(cfg)

    @classmethod
    def from_config(cls, cfg: SvdConfig, device: str, cache_root) -> Generator:  # pragma: no cover
        raise TypeError("ProtocolGenerator wraps a built generator: use apply_protocol")

    @classmethod
    def cache_settings(cls, cfg: SvdConfig, device: str) -> dict[str, Any]:  # pragma: no cover
        return protocol_settings(cfg)

    def generate(self, images: np.ndarray, seeds: Sequence[int], inputs: Inputs = None) -> np.ndarray:
        images = check_images(images, seeds)
        clips = self.inner.generate(images, seeds, inputs)
        if self.geometry == "reference":
            clips = reference_geometry(clips, self.width, self.height, images.shape[1])
        if self.codec == "h264":
            clips = np.stack([h264_round_trip(c, self.fps) for c in clips]) if len(clips) else clips
        return clips

    def generate_float(self, images: np.ndarray, seeds: Sequence[int], inputs: Inputs = None) -> np.ndarray:
        return self.generate(images, seeds, inputs).astype(np.float32) / 255.0

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "postprocess": self.settings}


def apply_protocol(generator: Generator, cfg: SvdConfig) -> Generator:
    """``generator`` itself under gva's protocol, else wrapped in :class:`ProtocolGenerator`."""
    if cfg.geometry == "square" and cfg.codec == "none":
        return generator
    return ProtocolGenerator(generator, cfg)


__all__ = ["reference_geometry", "h264_round_trip", "protocol_settings", "apply_protocol",
           "ProtocolGenerator", "H264_CRF"]
