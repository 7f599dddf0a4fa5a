"""Loading diffusers pipelines for the model-based generators, and their frames -> gva's clips.

Shared by every diffusers generator (:mod:`gva.generate.diffusion`) and the reference importer:

* :func:`load_pipeline` -- ``<Pipeline>.from_pretrained`` on a hub id (the Hugging Face cache
  first, then the hub; an fp16 weight variant first when fp16 is asked for) or on a local
  directory (a ``tiny-<name>`` build's included, :mod:`gva.tiny`), with one error that says what
  to do when nothing loads.
* :func:`to_clips` -- a pipeline's frames resized back to the curated size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gva.errors import ConfigError, GenerationError

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def is_model_dir(model: str | None) -> bool:
    """Whether ``model`` names a local diffusers pipeline directory."""
    return bool(model) and Path(str(model), "model_index.json").is_file()


def resolve_dtype(dtype: str, device: str) -> str:
    """The dtype actually used: fp32 on CPU whatever ``svd.dtype`` says (half is slow/unsupported there)."""
    return "fp32" if not device.startswith("cuda") else dtype


def device_type(device: str) -> str:
    """``cuda:1`` -> ``cuda``: different device types give different floats, device indices do not."""
    return "cuda" if device.startswith("cuda") else "cpu"


def torch_dtype(dtype: str):
    """``fp32`` / ``fp16`` / ``bf16`` -> the torch dtype; anything else is a ValueError."""
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    return getattr(torch, DTYPES[dtype])


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """No per-component loading bars from diffusers/transformers inside (gva's own bar is the
    progress); the bars are restored as they were afterwards."""
    import diffusers.utils.logging as dlog
    import transformers.utils.logging as tlog

    restore = (dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled())
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if restore[0]:
            dlog.enable_progress_bar()
        if restore[1]:
            tlog.enable_progress_bar()


def pipeline_class(name: str):
    """A diffusers pipeline class by name (imported lazily)."""
    import diffusers

    return getattr(diffusers, name)


def load_pipeline(pipeline: str, model: str, device: str, dtype: str, offline_hint: str):
    """``<pipeline>.from_pretrained(model)`` on ``device`` in ``dtype`` with errors that say what to do.

    ``offline_hint`` names the generator to use instead (e.g. ``tiny-svd``) in the error message.
    """
    cls = pipeline_class(pipeline)
    weights_dtype = torch_dtype(dtype)
    local = is_model_dir(model)
    if not local and Path(model).exists():
        raise ConfigError(f"svd.model {model!r} is a path but not a diffusers pipeline directory "
                          "(no model_index.json)")
    attempts: list[dict[str, Any]] = []
    if not local and dtype == "fp16":
        attempts.append({"variant": "fp16"})  # many hub repos ship fp16 weights as a variant
    attempts.append({})
    errors = []
    for extra in attempts:
        for local_only in ([False] if local else [True, False]):  # the HF cache first, then the hub
            try:
                with quiet_loading():
                    pipe = cls.from_pretrained(model, dtype=weights_dtype, local_files_only=local_only, **extra)
            except (OSError, ValueError) as exc:  # hub, network and missing-file errors are OSErrors
                errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                continue
            # outside the try: an out-of-memory or device error is not "the hub is unreachable"
            return pipe.to(device)
    raise GenerationError(
        f"cannot load svd.model {model!r} as a {pipeline}" + (
            " (not a local directory and the hub is unreachable or the id is wrong)" if not local else "")
        + f": {errors[-1]}. Set svd.model to a local pipeline directory, or use svd.generator: "
          f"{offline_hint} for an offline smoke run.")


def to_clips(video, images, first_frame_original: bool):
    """A pipeline's frames (tensor [B,T,3,h,w] in [0,1]) -> float32 clips [B,T,H,W,3] at the size of
    ``images`` (uint8 [B,H,W,3]): resized back (bilinear, antialiased), clamped, and with frame 0
    set to the image itself when ``first_frame_original``."""
    import numpy as np
    import torch.nn.functional as F

    B, T = video.shape[:2]
    H, W = images.shape[1:3]
    frames = video.float().flatten(0, 1)
    if frames.shape[-2:] != (H, W):
        frames = F.interpolate(frames, size=(H, W), mode="bilinear", antialias=True, align_corners=False)
    out = frames.clamp(0, 1).reshape(B, T, 3, H, W).permute(0, 1, 3, 4, 2).cpu().numpy().astype(np.float32)
    if first_frame_original:
        out[:, 0] = images.astype(np.float32) / 255.0
    return np.ascontiguousarray(out)
