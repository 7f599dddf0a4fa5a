"""Control generators: ``repeat`` (the image T times) and ``motion`` (seeded classical camera motion).

They answer "is it the generated content or just having T frames / any motion that helps?"
Both are fast on CPU and need no model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gva.config import MotionConfig, SvdConfig, to_dict
from gva.errors import ConfigError
from gva.generate.base import Generator, Inputs, check_images


def _check_frames(frames: int) -> None:
    if frames < 1:
        raise ConfigError(f"svd.frames must be positive, got {frames}")


class RepeatGenerator(Generator):
    """Every frame is the input image: the no-motion control."""

    first_frame_original = True

    def __init__(self, frames: int):
        _check_frames(frames)
        self.frames = frames

    @classmethod
    def from_config(cls, cfg: SvdConfig, device: str = "cpu", cache_root: str | Path = "") -> RepeatGenerator:
        """Reads ``svd.frames`` only; runs on the CPU whatever ``device`` says."""
        return cls(cfg.frames)

    @classmethod
    def cache_settings(cls, cfg: SvdConfig, device: str) -> dict[str, Any]:
        return {"frames": cfg.frames}

    def generate_float(self, images: np.ndarray, seeds: Sequence[int], inputs: Inputs = None) -> np.ndarray:
        images = check_images(images, seeds)
        x = images.astype(np.float32) / 255.0
        return np.repeat(x[:, None], self.frames, axis=1)


def motion_params(seed: int, cfg: MotionConfig) -> tuple[float, float, float, float]:
    """The camera motion reached at the last frame for one image: (zoom, shift_x, shift_y, degrees).

    Each is uniform in [-max, max]; a positive zoom zooms in. Depends only on the seed.
    """
    rng = np.random.default_rng(seed)
    zoom, sx, sy, rot = rng.uniform(-1.0, 1.0, size=4)
    return (float(zoom * cfg.max_zoom), float(sx * cfg.max_shift), float(sy * cfg.max_shift),
            float(rot * cfg.max_rotate))


class MotionGenerator(Generator):
    """Small, seeded camera motion: frame t applies fraction t/(T-1) of a random zoom/pan/rotation.

    Frame 0 is the image itself; the motion is linear in time so consecutive frames look like a
    slowly moving camera. Borders uncovered by the motion are filled by reflection.
    """

    first_frame_original = True

    def __init__(self, frames: int, cfg: MotionConfig):
        _check_frames(frames)
        if cfg.max_zoom < 0 or cfg.max_shift < 0 or cfg.max_rotate < 0:
            raise ConfigError(f"svd.motion limits must be >= 0, got {cfg}")
        if cfg.max_zoom >= 1:
            raise ConfigError(f"svd.motion.max_zoom must be < 1, got {cfg.max_zoom}")
        self.frames = frames
        self.cfg = cfg

    @classmethod
    def from_config(cls, cfg: SvdConfig, device: str = "cpu", cache_root: str | Path = "") -> MotionGenerator:
        """Reads ``svd.frames`` and ``svd.motion``; runs on the CPU whatever ``device`` says."""
        return cls(cfg.frames, cfg.motion)

    @classmethod
    def cache_settings(cls, cfg: SvdConfig, device: str) -> dict[str, Any]:
        """Frames, the seed (it draws the motion) and the motion limits; CPU-only, so no device."""
        return {"frames": cfg.frames, "seed": cfg.seed, "motion": to_dict(cfg.motion)}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), **to_dict(self.cfg)}

    def _thetas(self, seeds: Sequence[int]) -> np.ndarray:
        """Affine matrices [B,T,2,3] mapping output to input coordinates (normalised [-1,1])."""
        T = self.frames
        out = np.zeros((len(seeds), T, 2, 3), dtype=np.float64)
        for b, seed in enumerate(seeds):
            zoom, sx, sy, deg = motion_params(int(seed), self.cfg)
            for t in range(T):
                a = t / (T - 1) if T > 1 else 0.0
                scale = 1.0 / (1.0 + a * zoom)  # zoom in -> sample a smaller input window
                ang = math.radians(a * deg)
                c, s = math.cos(ang) * scale, math.sin(ang) * scale
                # a shift of f (fraction of the side) is 2f in normalised coordinates
                out[b, t] = [[c, -s, 2 * a * sx], [s, c, 2 * a * sy]]
        return out

    def generate_float(self, images: np.ndarray, seeds: Sequence[int], inputs: Inputs = None) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        images = check_images(images, seeds)
        B, H, W, _ = images.shape
        T = self.frames
        x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)  # [B,3,H,W]
        x = x[:, None].expand(B, T, 3, H, W).reshape(B * T, 3, H, W)
        theta = torch.from_numpy(self._thetas(seeds)).float().reshape(B * T, 2, 3)
        grid = F.affine_grid(theta, [B * T, 3, H, W], align_corners=False)
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        clips = y.reshape(B, T, 3, H, W).permute(0, 1, 3, 4, 2).clamp(0, 1).numpy().astype(np.float32)
        clips[:, 0] = images.astype(np.float32) / 255.0  # identity transform: keep it exact
        return np.ascontiguousarray(clips)
