"""``svd.generator`` names -> generator classes: the one list of generators, and nothing else.

One line per generator in :data:`GENERATORS`: its name and where its class lives
(``"module:Class"``). The class is imported the first time its name is asked for
(:func:`generator_class`), so importing the registry imports no generator module, and the tiny
random builds (:mod:`gva.tiny`) are loaded only when a ``tiny-*`` generator is asked for.
Everything else about a kind (how it is built, which settings change its bytes, how it describes
itself, one-time preparation) is a hook of its class (:class:`gva.generate.base.Generator`);
building, keying and preparing a generator by name is :mod:`gva.generate.factory`.

The registry only names generators, so it is no part of any generator's cache key
(:mod:`gva.generate.provenance`): adding a line keeps every other generator's clips.
"""

from __future__ import annotations

import importlib

from gva.errors import ConfigError
from gva.generate.base import Generator

#: ``svd.generator`` value -> ``"module:Class"`` of its generator (a class itself is accepted too).
GENERATORS: dict[str, str | type[Generator]] = {
    "svd": "gva.generate.svd:SvdGenerator",
    "tiny-svd": "gva.tiny.svd:TinySvdGenerator",
    "cogvideox": "gva.generate.cogvideox:CogVideoXGenerator",
    "tiny-cogvideox": "gva.tiny.cogvideox:TinyCogVideoXGenerator",
    "ltx": "gva.generate.ltx:LtxGenerator",
    "tiny-ltx": "gva.tiny.ltx:TinyLtxGenerator",
    "wan": "gva.generate.wan:WanGenerator",
    "tiny-wan": "gva.tiny.wan:TinyWanGenerator",
    "i2vgen": "gva.generate.i2vgen:I2VGenXLGenerator",
    "tiny-i2vgen": "gva.tiny.i2vgen:TinyI2VGenXLGenerator",
    "repeat": "gva.generate.controls:RepeatGenerator",
    "motion": "gva.generate.controls:MotionGenerator",
    "reference": "gva.generate.reference:ReferenceGenerator",
    "reference-static": "gva.generate.reference:StaticReferenceGenerator",
}


def generator_class(name: str) -> type[Generator]:
    """The class registered as ``name`` (imported on first use); an unknown name is a :class:`ConfigError`."""
    try:
        entry = GENERATORS[name]
    except KeyError:
        raise ConfigError(f"svd.generator: unknown generator {name!r}; known: {', '.join(GENERATORS)}") from None
    if isinstance(entry, str):
        module, _, qualname = entry.partition(":")
        entry = getattr(importlib.import_module(module), qualname)
    return entry


def entry_modules() -> list[str]:
    """The modules :data:`GENERATORS` names (imported lazily, so import scanners see them here)."""
    return list(dict.fromkeys(e.partition(":")[0] if isinstance(e, str) else e.__module__
                              for e in GENERATORS.values()))
