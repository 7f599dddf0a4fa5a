"""How a model runs: numeric precision (autocast), memory layout, and ``torch.compile``.

One :class:`Execution` serves training (``train.precision`` / ``channels_last`` / ``compile``),
evaluation (``evaluate.*``, so latency is reported for what was actually used) and ``gva
predict``. Weights always stay float32: autocast computes the listed ops in bf16/fp16 and the
checkpoint is unchanged. fp16 needs a GPU (with a gradient scaler while training); bf16 runs on
CPU (oneDNN's AVX-512 BF16 kernels where the processor has them) and GPU. ``channels_last``
means ``channels_last`` for 2-D and ``channels_last_3d`` for 3-D models and inputs. A compile
backend that is missing or fails on the model is reported in one warning and the model runs
eager — never silently.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.nn as nn

from gva.errors import ConfigError

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Execution:
    """Resolved execution settings for one device."""

    precision: str = "fp32"          # fp32 | bf16 | fp16
    channels_last: bool = False
    compile: bool = False
    device_type: str = "cpu"

    @classmethod
    def resolve(cls, precision: str, channels_last: bool, compile: bool, device: torch.device | str,
                key: str = "train") -> Execution:
        """Check the settings against the device; ``key`` names the params section in errors."""
        device_type = torch.device(device).type
        if precision not in DTYPES:
            raise ConfigError(f"{key}.precision must be fp32, bf16 or fp16, got {precision!r}")
        if precision == "fp16" and device_type != "cuda":
            raise ConfigError(f"{key}.precision fp16 needs a CUDA device (here: {device_type}); "
                              "use bf16 on a CPU")
        return cls(precision, bool(channels_last), bool(compile), device_type)

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]

    def describe(self) -> dict[str, Any]:
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile}

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to bf16/fp16 around forward and loss; nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def memory_format(self, ndim: int) -> torch.memory_format | None:
        if not self.channels_last:
            return None
        return torch.channels_last_3d if ndim == 5 else torch.channels_last

    def model(self, model: nn.Module, clips: bool) -> nn.Module:
        """Put ``model`` (in place) into the memory layout; ``clips``: a 3-D model."""
        fmt = self.memory_format(5 if clips else 4)
        if fmt is not None:
            model.to(memory_format=fmt)
        return model

    def input(self, x: torch.Tensor) -> torch.Tensor:
        fmt = self.memory_format(x.dim())
        return x.contiguous(memory_format=fmt) if fmt is not None else x

    def grad_scaler(self) -> torch.amp.GradScaler | None:
        """fp16 training on a GPU needs loss scaling; bf16 has fp32's range and needs none."""
        return torch.amp.GradScaler(self.device_type) if self.precision == "fp16" else None

    def compiled(self, net: nn.Module, example: torch.Tensor, what: str) -> nn.Module:
        """``torch.compile(net)`` when asked, tried once on ``example`` (no gradient, eval mode,
        BN statistics restored); on failure one warning and the eager ``net``."""
        if not self.compile:
            return net
        training = net.training
        try:
            compiled = cast(nn.Module, torch.compile(net))  # an OptimizedModule
            with torch.no_grad(), self.autocast():  # eval + no_grad: no statistic is updated
                net.eval()
                compiled(self.input(example))
        except Exception as exc:  # a missing C++ toolchain, an op the backend lacks ...
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            log.warning("%s: torch.compile failed (%s: %s); running eager", what, type(exc).__name__, first[:300])
            return net
        finally:
            net.train(training)
        return compiled


class FastInference(nn.Module):
    """Inference wrapper: input layout, autocast, float32 logits out (for evaluate and predict)."""

    def __init__(self, model: nn.Module, execution: Execution, clips: bool) -> None:
        super().__init__()
        self.model = execution.model(model, clips)
        self.execution = execution
        self.net: nn.Module = self.model

    def compile_on(self, example: torch.Tensor, what: str) -> FastInference:
        self.net = self.execution.compiled(self.model, example, what)
        return self

    def describe(self) -> dict[str, Any]:
        """What actually runs: ``compile`` is false when the backend failed (and warned)."""
        return {**self.execution.describe(), "compile": self.net is not self.model}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.execution.autocast():
            return self.net(self.execution.input(x)).float()
