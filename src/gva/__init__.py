"""gva: does a synthetic temporal dimension make a static image easier to classify?

The library behind the DVC stages ``curate -> svd_generate -> train2d -> inflate -> train3d -> evaluate``.
"""

__version__ = "0.1.0"
