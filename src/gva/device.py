"""Turn a params device string (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a torch device."""

from __future__ import annotations

import torch


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given, checked to exist.

    ``key`` names the param in error messages (e.g. ``train.device``).
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{key} must be auto, cpu or cuda[:N], got {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{key} must be auto, cpu or cuda[:N], got {name!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"{key} is {name!r} but CUDA is not available on this machine")
    return device
