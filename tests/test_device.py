"""gva.device: params device strings, and deterministic kernels whenever CUDA is chosen."""

from __future__ import annotations

import os

import pytest
import torch

from gva import device as gdevice
from gva.errors import DeviceError


def test_device_strings():
    assert gdevice.resolve_device("cpu").type == "cpu"
    assert gdevice.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="train.device must be auto, cpu or cuda"):
        gdevice.resolve_device("tpu", "train.device")
    with pytest.raises(ValueError, match="evaluate.device must be"):
        gdevice.resolve_device("mps", "evaluate.device")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="svd.device is 'cuda:1' but CUDA is not available"):
            gdevice.resolve_device("cuda:1", "svd.device")


def test_cuda_turns_on_deterministic_kernels(monkeypatch):
    """Resolving to CUDA (faked here) sets cuBLAS/cuDNN/torch determinism; CPU leaves them alone."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(),
             torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.use_deterministic_algorithms(False)
        gdevice.resolve_device("cpu")
        assert not torch.are_deterministic_algorithms_enabled() and "CUBLAS_WORKSPACE_CONFIG" not in os.environ
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        torch.backends.cudnn.benchmark = True
        assert gdevice.resolve_device("auto").type == "cuda"
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[:2]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
