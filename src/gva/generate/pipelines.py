"""Loading diffusers pipelines for the model-based generators: hub id or local directory, and the
locally built tiny models (``tiny-<name>``) saved once and loaded back like any other directory.

Shared by every diffusers generator (:mod:`gva.generate.svd`, :mod:`gva.generate.i2v`):

* :func:`load_pipeline` -- ``<Pipeline>.from_pretrained`` on a hub id (the Hugging Face cache
  first, then the hub; an fp16 weight variant first when fp16 is asked for) or on a local
  directory, with one error that says what to do when nothing loads.
* :func:`tiny_model_dir` -- a tiny random pipeline built by a builder function, saved atomically
  under ``<cache>/tiny-<name>/v<version>`` with a stamp (the builder's code and the library
  versions), rebuilt whenever the stamp differs, so the model in it is always the one this code
  builds. Loading it goes through :func:`load_pipeline`: the real loading path, no download.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

from gva.errors import ConfigError, GenerationError
from gva.generate.provenance import code_hash, library_versions
from gva.io import atomic_path, write_json

log = logging.getLogger(__name__)

TINY_STAMP = "gva-tiny-model.json"
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


def tiny_stamp(version: int, code_files: Sequence[Path]) -> dict[str, Any]:
    """What a tiny model directory is a function of: its builder's code and the library versions."""
    return {"version": version, "code_hash": code_hash(list(code_files)), "versions": library_versions()}


def tiny_model_dir(name: str, version: int, build: Callable[[], Any], code_files: Sequence[Path],
                   cache_root: str | Path) -> Path:
    """``<cache_root>/<name>/v<version>``: the pipeline ``build()`` returns, saved there on first use.

    Rebuilt (atomically) when its stamp differs from :func:`tiny_stamp`, i.e. when the builder's
    code or a library changed.
    """
    path = Path(cache_root) / name / f"v{version}"
    stamp = tiny_stamp(version, code_files)
    try:
        current = json.loads((path / TINY_STAMP).read_text()) if is_model_dir(str(path)) else None
    except (OSError, ValueError):
        current = None
    if current != stamp:
        log.info("building the tiny random %s pipeline in %s", name, path)
        pipe = build()
        with atomic_path(path) as tmp:
            pipe.save_pretrained(tmp)
            write_json(tmp / TINY_STAMP, stamp)
    return path


class TinyModel:
    """Mixin of the ``tiny-<name>`` generators: where the weights come from.

    ``svd.model`` is used only when it names a local pipeline directory; otherwise the model is the
    tiny build's directory (:meth:`tiny_dir`, built once per machine by :meth:`prepare`),
    identified as ``<tiny_name>-v<tiny_version>``. Put it before the generator class in the bases.
    """

    tiny_version: ClassVar[int] = 1

    @classmethod
    def tiny_name(cls) -> str:
        """``tiny-<name>``: the generator name, the directory under the cache and the model id's stem."""
        raise NotImplementedError

    @classmethod
    def tiny_dir(cls, cache_root: str | Path) -> Path:
        """The tiny build's pipeline directory (:func:`tiny_model_dir`), built on first use."""
        raise NotImplementedError

    @classmethod
    def model_id(cls, cfg) -> str:
        return str(cfg.model) if is_model_dir(cfg.model) else f"{cls.tiny_name()}-v{cls.tiny_version}"

    @classmethod
    def model_path(cls, cfg, cache_root: str | Path) -> str:
        return str(cfg.model) if is_model_dir(cfg.model) else str(cls.tiny_dir(cache_root))

    @classmethod
    def prepare(cls, cfg, cache_root: str | Path) -> None:
        """Build the model directory once per machine, before the ranks load it."""
        cls.model_path(cfg, cache_root)


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
