"""Training: ``loop`` (the one loop, 2-D and 3-D: :func:`fit`) and ``stage`` (``train2d``, ``train3d``)."""

from gva.train.loop import FitResult, fit

__all__ = ["fit", "FitResult"]
