"""Image -> clip generation (the ``svd_generate`` stage).

``base`` defines the :class:`Generator` interface and per-image seeding; ``registry`` names the
``svd.generator`` kinds (and nothing else); ``factory`` builds and keys the named one
(:func:`build_generator`); ``diffusion`` is the one diffusers generator the model families share,
``svd`` and ``i2v`` (with ``cogvideox``, ``ltx``, ``wan``, ``i2vgen``) its families; ``controls``
holds the ``repeat`` and ``motion`` controls; ``provenance`` hashes the code and library versions
that decide clip bytes; ``runner`` does chunked, resumable, multi-process generation; ``stage`` is
the DVC stage. The ``tiny-*`` builds live apart, in :mod:`gva.tiny`. Heavy imports (torch,
diffusers) happen inside the functions that need them.
"""

from gva.generate.base import Generator, image_seed
from gva.generate.factory import build_generator
from gva.generate.registry import GENERATORS

__all__ = ["GENERATORS", "Generator", "build_generator", "image_seed"]
