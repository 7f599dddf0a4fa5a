"""The generator interface shared by every ``svd.generator`` kind, plus seeding and the factory.

A generator turns curated images (uint8 [B,H,W,3]) into clips (uint8 [B,T,H,W,3]) at the input
resolution. ``generate_float`` is the same computation before quantisation (float32 in [0,1]);
the invariance tests (batch, order, processes) compare it within 1e-5, the byte tests compare
``generate``. A clip depends only on its image, its seed and the settings, never on which other
images share its batch.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from gva.config import SvdConfig, to_dict

#: Bump when a change in gva's own code changes the bytes a generator produces (invalidates caches).
ALGORITHM_VERSION = 1


def image_seed(seed: int, image_id: int) -> int:
    """Per-image seed from (``svd.seed``, image id) only: a stable 63-bit hash, not ``hash()``."""
    digest = hashlib.blake2b(f"gva-svd:{int(seed)}:{int(image_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def check_images(images: Any, seeds: Sequence[int] | None = None) -> np.ndarray:
    """Validate a generator input batch; bad input raises ``ValueError`` naming the problem."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape [B,H,W,3], got {list(images.shape)}")
    if images.shape[1] < 2 or images.shape[2] < 2:
        raise ValueError(f"images are too small: {images.shape[1]}x{images.shape[2]}")
    if seeds is not None and len(seeds) != images.shape[0]:
        raise ValueError(f"got {images.shape[0]} images but {len(seeds)} seeds")
    return images


def quantise(clips: np.ndarray) -> np.ndarray:
    """float [0,1] -> uint8, rounding to nearest (as diffusers' own ``numpy_to_pil``)."""
    return np.clip(np.rint(clips * 255.0), 0, 255).astype(np.uint8)


class Generator(ABC):
    """Images -> clips. Subclasses implement :meth:`generate_float`."""

    #: frames per clip (T)
    frames: int
    #: frame 0 is the input image itself (set exactly after quantisation)
    first_frame_original: bool = False

    @abstractmethod
    def generate_float(self, images: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """uint8 [B,H,W,3] -> float32 [B,T,H,W,3] in [0,1], before quantisation."""

    def generate(self, images: np.ndarray, seeds: Sequence[int]) -> np.ndarray:
        """uint8 [B,H,W,3] + one seed per image -> uint8 [B,T,H,W,3] at the input resolution."""
        images = check_images(images, seeds)
        if images.shape[0] == 0:
            return np.zeros((0, self.frames) + images.shape[1:], dtype=np.uint8)
        clips = quantise(self.generate_float(images, seeds))
        if self.first_frame_original:
            clips[:, 0] = images  # exact, whatever the float path did
        return clips

    def describe(self) -> dict:
        """Settings as resolved (device, dtype ...), recorded in generation.json."""
        return {"class": type(self).__name__, "frames": self.frames}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` if available else ``cpu``; anything else is checked and returned."""
    from gva.device import resolve_device as resolve

    return str(resolve(device, "svd.device"))


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype actually used: fp32 on CPU whatever ``svd.dtype`` says (half is slow/unsupported there)."""
    return "fp32" if not device.startswith("cuda") else dtype


def cache_settings(cfg: SvdConfig, device: str) -> dict:
    """The settings that change clip bytes, for the resume-cache key.

    Excludes batch_size / chunk_size / processes (clips are invariant to them) and the preview
    knobs. Only the settings the chosen generator reads are included, so e.g. changing
    ``svd.steps`` does not invalidate a ``motion`` cache.
    """
    out: dict[str, Any] = {"generator": cfg.generator, "frames": cfg.frames,
                           "algorithm": ALGORITHM_VERSION}
    if cfg.generator == "repeat":
        return out
    out["seed"] = cfg.seed
    if cfg.generator == "motion":
        out["motion"] = to_dict(cfg.motion)
        return out
    for key in ("model", "steps", "height", "width", "motion_bucket_id", "fps", "noise_aug_strength",
                "min_guidance", "max_guidance", "decode_chunk_size", "first_frame"):
        out[key] = getattr(cfg, key)
    # Different devices / dtypes give different floats; the device index does not.
    out["device"] = "cuda" if device.startswith("cuda") else "cpu"
    out["dtype"] = resolve_dtype(cfg.dtype, device)
    if cfg.generator == "tiny-svd":
        from gva.generate.svd import TINY_SVD_VERSION, is_model_dir

        if not is_model_dir(cfg.model):
            out["model"] = f"tiny-svd-v{TINY_SVD_VERSION}"
    return out


def build_generator(svd_cfg: SvdConfig, device: str = "auto", cache_root: str = "data/.cache") -> Generator:
    """The generator named by ``svd.generator``, on ``device`` (``auto``: cuda if available).

    ``cache_root`` holds the built tiny-svd model directory (``<cache_root>/tiny-svd``).
    """
    if svd_cfg.generator == "repeat":
        from gva.generate.controls import RepeatGenerator

        return RepeatGenerator(svd_cfg.frames)
    if svd_cfg.generator == "motion":
        from gva.generate.controls import MotionGenerator

        return MotionGenerator(svd_cfg.frames, svd_cfg.motion)
    if svd_cfg.generator in ("svd", "tiny-svd"):
        from gva.generate.svd import SvdGenerator

        return SvdGenerator.from_config(svd_cfg, device=resolve_device(device), cache_root=cache_root)
    raise ValueError(f"unknown svd.generator {svd_cfg.generator!r}")
