"""Turn a params device string (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a torch device.

Resolving to CUDA also switches the process to deterministic CUDA kernels (CPU kernels already
are), so that a clip or a trained model depends only on its inputs and seeds on a GPU too.
"""

from __future__ import annotations

import contextlib
import os
import platform
from collections.abc import Iterator

import torch

from gva.errors import DeviceError


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[int]:
    """torch's intra-op CPU threads at ``n`` inside the block (None: as they are); yields the count.

    A knob because on a CPU shared with other jobs, OpenMP's waiting threads spin while their peers
    are descheduled: on the 2-core machine here, under load, one thread trained 3-5x faster than
    two (``benchmarks/regime.py``). Restored on exit: tests and callers keep their own setting.
    """
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(old)


def use_deterministic_cuda() -> None:
    """Deterministic cuDNN/cuBLAS kernels: no autotuning, no non-deterministic algorithms.

    ``CUBLAS_WORKSPACE_CONFIG`` must be set before the first cuBLAS call, hence here, when the device
    is resolved, before any model exists. Ops without a deterministic CUDA kernel warn, not fail.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.use_deterministic_algorithms(True, warn_only=True)


def device_name(device: torch.device | str) -> str:
    """The GPU's name for a CUDA device, else the CPU's (as far as the platform tells)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine() or "cpu"


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (a no-op on CPU): timings must not end before the GPU does."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def resolve_device(name: str, key: str = "device") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given, checked to exist.

    ``key`` names the param in error messages (e.g. ``train.device``). A CUDA result turns on
    :func:`use_deterministic_cuda`.
    """
    if name == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise DeviceError(f"{key} must be auto, cpu or cuda[:N], got {name!r}") from None
        if device.type not in ("cpu", "cuda"):
            raise DeviceError(f"{key} must be auto, cpu or cuda[:N], got {name!r}")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError(f"{key} is {name!r} but CUDA is not available on this machine")
    if device.type == "cuda":
        use_deterministic_cuda()
    return device
