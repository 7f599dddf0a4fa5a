"""The generator named by ``svd.generator``: built, keyed and prepared through its class's hooks.

What the stage, the runner and ``gva predict`` call: :func:`build_generator` (wrapped by the frame
geometry and codec every generator's clips go through, :mod:`gva.generate.postprocess`),
:func:`cache_settings` and :func:`code_files_of` (the resume-cache key's settings and code,
:mod:`gva.generate.provenance`), :func:`prepare`. Generator modules keep torch/diffusers imports
inside their functions, so keying a generator stays light (``tests`` check it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gva.config import SvdConfig
from gva.generate.base import Generator
from gva.generate.postprocess import apply_protocol, protocol_settings
from gva.generate.provenance import class_ref, generator_code_files
from gva.generate.registry import generator_class
from gva.paths import CACHE_DIR


def resolve_device(device: str) -> str:
    """``svd.device`` -> ``cpu`` / ``cuda[:N]`` (``auto``: cuda if available), checked to exist."""
    from gva.device import resolve_device as resolve  # torch: imported only when a device is needed

    return str(resolve(device, "svd.device"))


def build_generator(svd_cfg: SvdConfig, device: str = "auto", cache_root: str | Path = CACHE_DIR) -> Generator:
    """The generator named by ``svd.generator``, on ``device`` (``auto``: cuda if available).

    ``cache_root`` holds what a generator builds or downloads (e.g. ``<cache_root>/tiny-svd``).
    With ``svd.geometry: reference`` or ``svd.codec: h264`` it comes wrapped
    (:mod:`gva.generate.postprocess`).
    """
    cls = generator_class(svd_cfg.generator)
    return apply_protocol(cls.from_config(svd_cfg, resolve_device(device), cache_root), svd_cfg)


def cache_settings(svd_cfg: SvdConfig, device: str) -> dict[str, Any]:
    """The generator's name and the settings that change its bytes on (resolved) ``device``,
    plus the frame geometry and codec every generator's clips go through."""
    return {"generator": svd_cfg.generator, **generator_class(svd_cfg.generator).cache_settings(svd_cfg, device),
            **protocol_settings(svd_cfg)}


def code_files_of(name: str) -> list[Path]:
    """The source files whose code decides the clips of generator ``name`` (its cache key's code:
    :func:`gva.generate.provenance.generator_code_files`)."""
    return generator_code_files(generator_class(name))


def class_of(name: str) -> str:
    """``module:Class`` of generator ``name``: its registry entry, resolved (part of its cache key)."""
    return class_ref(generator_class(name))


def prepare(svd_cfg: SvdConfig, cache_root: str | Path = CACHE_DIR) -> None:
    """The generator's one-time per-machine preparation (see :meth:`Generator.prepare`)."""
    generator_class(svd_cfg.generator).prepare(svd_cfg, cache_root)
