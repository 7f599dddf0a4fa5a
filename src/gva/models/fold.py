"""Time folding: run a 2-D module on every frame of a clip, with time folded into the batch.

A module that cannot take ``[B,C,T,H,W]`` gets :func:`folded_forward` as its *instance*
``forward`` (:func:`set_forward`; its class, name and ``state_dict`` keys stay the same, and
``deepcopy`` rebinds it). That forward reshapes the clip to ``[B*T,C,H,W]``, calls the class
forward, and reshapes the result back. While it runs, a per-thread stack holds the ``(B, T)`` of
every live fold, so the inflated layers below, when they meet a 4-D tensor, can undo the fold
where time matters: a temporal conv unfolds, convolves over time and refolds; BatchNorm on
``[B*T,C,H,W]`` already has BatchNorm3d's statistics; a global pool averages time away and marks
the fold *collapsed* (the batch is ``B`` again from there on). A folded module whose output has
no spatial axes (features, logits) averages them over time.

The same layers also take plain 4-D input outside any fold (time already pooled): they treat it
as ``T = 1``.
"""

from __future__ import annotations

import math
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from gva.errors import InflationError

# --------------------------------------------------------------------------------------------
# The fold stack


@dataclass
class Fold:
    """A folded region being executed: its clip had batch ``b`` and ``t`` frames."""

    b: int
    t: int
    collapsed: bool = False  # set when a pool inside the region averaged time away


_local = threading.local()


def _stack() -> list[Fold]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def current_fold() -> Fold | None:
    """The innermost live fold of this thread, or None outside folded modules."""
    stack = _stack()
    return stack[-1] if stack else None


def reset_folds() -> None:
    """Forget live folds (after a forward pass that raised half-way through a folded module)."""
    _stack().clear()


def unfold(x: torch.Tensor) -> tuple[torch.Tensor, Fold] | None:
    """``[B*T,C,...]`` inside a live fold -> ``([B,C,T,...], fold)``; None if time isn't folded."""
    fold = current_fold()
    if fold is None or fold.collapsed:
        return None
    if x.shape[0] != fold.b * fold.t:
        raise InflationError(f"time-folded tensor has batch {x.shape[0]}, expected "
                             f"{fold.b}x{fold.t}; a layer changed the batch size")
    return x.reshape(fold.b, fold.t, *x.shape[1:]).transpose(1, 2), fold


def refold(y: torch.Tensor) -> torch.Tensor:
    """``[B,C,T,...] -> [B*T,C,...]``."""
    b, c, t = y.shape[:3]
    return y.transpose(1, 2).reshape(b * t, c, *y.shape[3:])


# --------------------------------------------------------------------------------------------
# Instance forwards


def folded_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """Instance ``forward`` of a module that cannot take 5-D input: run it on frames."""
    x = args[0] if args else None
    if not (torch.is_tensor(x) and x.dim() == 5):
        return type(self).forward(self, *args, **kwargs)  # already folded / time already pooled
    b, _, t = x.shape[:3]
    fold = Fold(b, t)
    _stack().append(fold)
    try:
        y = type(self).forward(self, refold(x), *args[1:], **kwargs)
    finally:
        _stack().pop()
    if not torch.is_tensor(y):
        raise InflationError(f"layer {self._gva_name!r} ({type(self).__name__}) runs time-folded "
                             f"but returns {type(y).__name__}, not a tensor")
    if fold.collapsed:  # a pool inside averaged time: batch is B again
        return y.unsqueeze(2) if y.dim() == 4 else y
    if y.dim() == 4:
        return y.reshape(b, t, *y.shape[1:]).transpose(1, 2)
    # features / logits without spatial axes: time is averaged here
    return y.reshape(b, t, *y.shape[1:]).mean(1)


def time_mean_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """Instance ``forward`` of a 2-D global pool: average time first, then pool the frame."""
    x = args[0] if args else None
    if torch.is_tensor(x) and x.dim() == 5:
        args = (x.mean(2), *args[1:])
    else:
        fold = current_fold()
        if torch.is_tensor(x) and fold is not None and not fold.collapsed and x.dim() == 4:
            args = (x.reshape(fold.b, fold.t, *x.shape[1:]).mean(1), *args[1:])
            fold.collapsed = True
    return type(self).forward(self, *args, **kwargs)


def set_forward(module: nn.Module, fn: Callable[..., Any], name: str) -> None:
    """Make ``fn`` the instance ``forward`` of ``module`` (``name`` is used in error messages)."""
    module.forward = types.MethodType(fn, module)
    module._gva_name = name  # type: ignore[assignment]  # a plain attribute (nn.Module types tensors, modules)


def unset_forward(module: nn.Module) -> None:
    """Back to the class ``forward``."""
    module.__dict__.pop("forward", None)
    module.__dict__.pop("_gva_name", None)


def is_folded(module: nn.Module) -> bool:
    """``module`` runs time-folded (has :func:`folded_forward` as its instance forward)."""
    fwd = module.__dict__.get("forward")
    return isinstance(fwd, types.MethodType) and fwd.__func__ is folded_forward


# --------------------------------------------------------------------------------------------
# 3-D layers that also accept time-folded 4-D input (inside a folded module) or 4-D input with
# time already pooled (treated as T=1).


class InflatedConv3d(nn.Conv3d):
    """``nn.Conv3d`` made from a ``Conv2d``; temporal stride 1, so T is preserved."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)
        unfolded = unfold(x)
        if unfolded is None:
            return super().forward(x.unsqueeze(2)).squeeze(2)
        return refold(super().forward(unfolded[0]))


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding of one spatial axis (before, after): the output has
    ``ceil(size / stride)`` positions; an odd total pads one more *after* (timm's ``pad_same``)."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class InflatedConv3dSame(InflatedConv3d):
    """timm's ``Conv2dSame`` (TF "SAME": asymmetric H/W padding computed from each input's size)
    -> ``Conv3d``: H and W are padded exactly as the 2-D layer pads each frame, time
    symmetrically by ``kt // 2`` (the conv's own ``padding[0]``; temporal stride is 1)."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        (_, kh, kw), (_, sh, sw), (_, dh, dw) = self.kernel_size, self.stride, self.dilation
        top, bottom = same_padding(x.shape[-2], kh, sh, dh)
        left, right = same_padding(x.shape[-1], kw, sw, dw)
        x = F.pad(x, (left, right, top, bottom))
        return F.conv3d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


class InflatedBatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d``; on ``[B*T,C,H,W]`` its statistics are the same as on ``[B,C,T,H,W]``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (4, 5):
            raise ValueError(f"expected 4D (time-folded) or 5D input (got {input.dim()}D input)")


class InflatedMaxPool3d(nn.MaxPool3d):
    """``nn.MaxPool3d`` with temporal kernel 1."""

    # tuples, as the conversion builds it
    kernel_size: tuple[int, int, int]
    stride: tuple[int, int, int]
    padding: tuple[int, int, int]
    dilation: tuple[int, int, int]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)
        return F.max_pool2d(x, self.kernel_size[1:], self.stride[1:], self.padding[1:],
                            self.dilation[1:], ceil_mode=self.ceil_mode)


class InflatedAvgPool3d(nn.AvgPool3d):
    """``nn.AvgPool3d`` with temporal kernel 1."""

    # tuples, as the conversion builds it
    kernel_size: tuple[int, int, int]
    stride: tuple[int, int, int]
    padding: tuple[int, int, int]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)
        return F.avg_pool2d(x, self.kernel_size[1:], self.stride[1:], self.padding[1:],
                            self.ceil_mode, self.count_include_pad, self.divisor_override)


class TimePool:
    """Adaptive pool whose temporal output size is 1; on folded input it collapses the fold."""

    _reduce_time: str
    _pool2d: Any
    output_size: Any   # the adaptive pool's (its torch type is wider): (1, h, w) as the conversion builds it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)  # type: ignore[misc]  # the nn pool after this mixin in the MRO
        y = self._pool2d(x, self.output_size[1:])
        fold = current_fold()
        if fold is None or fold.collapsed:
            return y
        y = y.reshape(fold.b, fold.t, *y.shape[1:])
        fold.collapsed = True
        return y.mean(1) if self._reduce_time == "mean" else y.amax(1)


class InflatedAdaptiveAvgPool3d(TimePool, nn.AdaptiveAvgPool3d):
    """``AdaptiveAvgPool2d(s)`` -> ``AdaptiveAvgPool3d((1, *s))``: also averages time."""

    _reduce_time = "mean"
    _pool2d = staticmethod(F.adaptive_avg_pool2d)


class InflatedAdaptiveMaxPool3d(TimePool, nn.AdaptiveMaxPool3d):
    """``AdaptiveMaxPool2d(s)`` -> ``AdaptiveMaxPool3d((1, *s))``: also max-pools time."""

    _reduce_time = "max"
    _pool2d = staticmethod(F.adaptive_max_pool2d)


class InflatedDropout3d(nn.Dropout3d):
    """``Dropout2d`` -> ``Dropout3d`` (a channel is dropped for the whole clip)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)
        return F.dropout2d(x, self.p, self.training, self.inplace)


INFLATED_TYPES = (InflatedConv3d, InflatedConv3dSame, InflatedBatchNorm3d, InflatedMaxPool3d, InflatedAvgPool3d,
                  InflatedAdaptiveAvgPool3d, InflatedAdaptiveMaxPool3d, InflatedDropout3d)

__all__ = ["Fold", "current_fold", "reset_folds", "unfold", "refold", "folded_forward",
           "time_mean_forward", "set_forward", "unset_forward", "is_folded", "InflatedConv3d",
           "InflatedConv3dSame", "same_padding",
           "InflatedBatchNorm3d", "InflatedMaxPool3d", "InflatedAvgPool3d", "TimePool",
           "InflatedAdaptiveAvgPool3d", "InflatedAdaptiveMaxPool3d", "InflatedDropout3d",
           "INFLATED_TYPES"]
