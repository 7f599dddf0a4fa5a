"""Image -> clip generation (the ``svd_generate`` stage).

``base`` defines the interface and the factory ``build_generator``; ``svd`` wraps diffusers'
StableVideoDiffusionPipeline (``svd``, ``tiny-svd``); ``controls`` holds the ``repeat`` and
``motion`` controls; ``runner`` does chunked, resumable, multi-process generation; ``stage`` is
the DVC stage. Heavy imports (torch, diffusers) happen inside the functions that need them.
"""

from gva.generate.base import Generator, build_generator, image_seed

__all__ = ["Generator", "build_generator", "image_seed"]
