"""Image -> clip generation (the ``svd_generate`` stage).

``base`` defines the :class:`Generator` interface and per-image seeding; ``registry`` maps
``svd.generator`` names to generator classes and builds them (:func:`build_generator`);
``svd`` wraps diffusers' StableVideoDiffusionPipeline (``svd``, ``tiny-svd``); ``controls``
holds the ``repeat`` and ``motion`` controls; ``provenance`` hashes the code and library
versions that decide clip bytes; ``runner`` does chunked, resumable, multi-process generation;
``stage`` is the DVC stage. Heavy imports (torch, diffusers) happen inside the functions that
need them.
"""

from gva.generate.base import Generator, image_seed
from gva.generate.registry import GENERATORS, build_generator

__all__ = ["GENERATORS", "Generator", "build_generator", "image_seed"]
