"""``svd.generator`` names -> generator classes, and the factory :func:`build_generator`.

One line per generator in :data:`GENERATORS`; everything else about a kind (how it is built,
which settings change its bytes, how it describes itself, one-time preparation) is a hook of its
class (:class:`gva.generate.base.Generator`). Generator modules keep torch/diffusers imports
inside their functions, so importing this registry stays light (``tests`` check it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from gva.config import SvdConfig
from gva.errors import ConfigError
from gva.generate.base import Generator
from gva.generate.cogvideox import CogVideoXGenerator, TinyCogVideoXGenerator
from gva.generate.controls import MotionGenerator, RepeatGenerator
from gva.generate.i2vgen import I2VGenXLGenerator, TinyI2VGenXLGenerator
from gva.generate.ltx import LtxGenerator, TinyLtxGenerator
from gva.generate.postprocess import apply_protocol, protocol_settings
from gva.generate.reference import ReferenceGenerator, StaticReferenceGenerator
from gva.generate.provenance import code_files
from gva.generate.svd import SvdGenerator, TinySvdGenerator
from gva.generate.wan import TinyWanGenerator, WanGenerator
from gva.paths import CACHE_DIR

#: ``svd.generator`` value -> generator class.
GENERATORS: dict[str, type[Generator]] = {
    "svd": SvdGenerator,
    "tiny-svd": TinySvdGenerator,
    "cogvideox": CogVideoXGenerator,
    "tiny-cogvideox": TinyCogVideoXGenerator,
    "ltx": LtxGenerator,
    "tiny-ltx": TinyLtxGenerator,
    "wan": WanGenerator,
    "tiny-wan": TinyWanGenerator,
    "i2vgen": I2VGenXLGenerator,
    "tiny-i2vgen": TinyI2VGenXLGenerator,
    "repeat": RepeatGenerator,
    "motion": MotionGenerator,
    "reference": ReferenceGenerator,
    "reference-static": StaticReferenceGenerator,
}


def generator_class(name: str) -> type[Generator]:
    """The class registered as ``name``; an unknown name is a :class:`ConfigError`."""
    try:
        return GENERATORS[name]
    except KeyError:
        raise ConfigError(f"svd.generator: unknown generator {name!r}; known: {', '.join(GENERATORS)}") from None


def _class_files(cls: type) -> set[Path]:
    """The ``gva.generate`` modules the classes of ``cls``'s hierarchy are defined in."""
    return {Path(sys.modules[c.__module__].__file__).resolve() for c in cls.__mro__
            if c.__module__.startswith("gva.generate.")}


def code_files_of(name: str) -> list[Path]:
    """The source files whose code decides the clips of generator ``name``, for its cache key
    (:func:`gva.generate.provenance.code_files`). A module that holds classes of some generators'
    hierarchies but not of all (``svd.py``, ``i2v.py``, ``controls.py`` ...) is *specific*: it
    counts for a generator only when its hierarchy lives there or imports it."""
    per_class = [_class_files(c) for c in GENERATORS.values()]
    specific = set().union(*per_class) - set.intersection(*per_class)
    return code_files(_class_files(generator_class(name)), specific)


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


def prepare(svd_cfg: SvdConfig, cache_root: str | Path = CACHE_DIR) -> None:
    """The generator's one-time per-machine preparation (see :meth:`Generator.prepare`)."""
    generator_class(svd_cfg.generator).prepare(svd_cfg, cache_root)
