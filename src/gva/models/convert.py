"""The module conversions of 2-D -> 3-D inflation (:mod:`gva.models.inflate`), and their report.

The inflated network takes clips ``[B,3,T,H,W]``. Conversions (module names are kept, so the
3-D ``state_dict`` has the 2-D keys; only inflated conv weights gain a time axis):

* ``Conv2d`` -> ``Conv3d``: temporal kernel ``time_kernel`` for the last ``last_n`` convs (all
  when None; registration order, 1x1 included; more than the model has is an error), 1 for the
  others; temporal stride 1, temporal padding ``kt // 2``; groups, dilation, bias and padding
  mode kept. timm's ``Conv2dSame`` (TF "SAME" padding, asymmetric and computed from the input
  size, in the ``tf_`` EfficientNets' strided convs) counts as a conv too: its ``Conv3d`` pads H
  and W per input as the 2-D layer does and time by ``kt // 2``. ``init="centre"`` puts the
  2-D kernel on the centre slice and zeros on the others; ``init="mean"`` puts ``kernel / kt``
  on every slice.
* ``BatchNorm2d`` -> ``BatchNorm3d`` with affine parameters *and* running statistics copied.
* ``MaxPool2d`` / ``AvgPool2d`` -> 3-D with temporal kernel 1.
* ``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` -> 3-D pools that also reduce time to 1, so a
  ``torch.flatten`` in the model's ``forward`` (torchvision VGG/ResNet) sees the 2-D feature size.
* timm's global pools (``SelectAdaptivePool2d`` and friends) average over time first, then run
  unchanged on ``[B,C,H,W]``.

Everything else is kept as it is; :mod:`gva.models.fold_search` finds what must run time-folded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypeGuard, TypeVar

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair
from torch.nn.utils import skip_init

from gva.errors import InflationError
from gva.models.fold import (
    InflatedAdaptiveAvgPool3d,
    InflatedAdaptiveMaxPool3d,
    InflatedAvgPool3d,
    InflatedBatchNorm3d,
    InflatedConv3d,
    InflatedConv3dSame,
    InflatedDropout3d,
    InflatedMaxPool3d,
    TimePool,
    set_forward,
    time_mean_forward,
)

Init = Literal["centre", "mean"]
ROOT = "<root>"  # the name of the whole model in reports and plans

# --------------------------------------------------------------------------------------------
# Report / plan


@dataclass
class InflationReport:
    """What :func:`inflate` did. ``untransferred`` lists 2-D state_dict keys whose values are not
    found in the 3-D model (empty when everything transferred); ``new`` lists 3-D keys that had no
    2-D source. ``to_dict()`` is the plan :func:`inflate_from_plan` rebuilds the network from."""

    time_kernel: int
    init: str
    last_n: int | None
    converted: dict[str, str] = field(default_factory=dict)
    temporal_convs: list[str] = field(default_factory=list)
    spatial_only_convs: list[str] = field(default_factory=list)
    time_pooled: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    untransferred: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"inflated {len(self.converted)} layers ({len(self.temporal_convs)} convs with "
                f"temporal kernel {self.time_kernel}, {len(self.spatial_only_convs)} with 1), "
                f"time pooled at {self.time_pooled or 'the folded output'}, "
                f"{len(self.folded)} modules time-folded, "
                f"untransferred 2-D weights: {self.untransferred or 'none'}")


# --------------------------------------------------------------------------------------------
# Conversions (mmaction2-style: one small helper per layer type)


_M = TypeVar("_M", bound=nn.Module)


def _plain(module: nn.Module, base: type[_M], method: str = "forward") -> TypeGuard[_M]:
    """``module`` is a ``base`` whose ``method`` is the stock one (subclasses may do anything)."""
    return isinstance(module, base) and getattr(type(module), method) is getattr(base, method)


def _is_same_conv(m: nn.Module) -> bool:
    """timm's ``Conv2dSame`` itself (TF "SAME" padding computed per input; not a subclass of it)."""
    cls = type(m)
    return (cls.__name__ == "Conv2dSame" and cls.__module__.startswith("timm.layers")
            and isinstance(m, nn.Conv2d) and m.padding_mode == "zeros")


def _is_conv(m: nn.Module) -> TypeGuard[nn.Conv2d]:
    return (_plain(m, nn.Conv2d) and _plain(m, nn.Conv2d, "_conv_forward")) or _is_same_conv(m)


def _is_timm_global_pool(m: nn.Module) -> bool:
    return type(m).__module__ == "timm.layers.adaptive_avgmax_pool"


def _conv_names(model: nn.Module) -> list[str]:
    """The convs that will be inflated, in registration order (shared ones once)."""
    return [n for n, m in model.named_modules() if _is_conv(m)]


def _convert_conv(conv: nn.Conv2d, kt: int, init: str) -> InflatedConv3d:
    cls = InflatedConv3d
    padding: Any
    if _is_same_conv(conv):
        # its H/W padding depends on the input size: InflatedConv3dSame pads as Conv2dSame does
        # (its own padding attribute is 0), the conv pads time
        cls, padding = InflatedConv3dSame, (kt // 2, 0, 0)
    elif isinstance(conv.padding, str):
        padding = conv.padding if conv.padding == "same" else (kt // 2, 0, 0)
    else:
        padding = (kt // 2, *conv.padding)
    w = conv.weight
    # skip_init: every value is set below, so no global random numbers are drawn
    new = skip_init(cls, conv.in_channels, conv.out_channels, (kt, *conv.kernel_size),
                    stride=(1, *conv.stride), padding=padding, dilation=(1, *conv.dilation),
                    groups=conv.groups, bias=conv.bias is not None,
                    padding_mode=conv.padding_mode, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        if init == "mean":
            new.weight.copy_((w / kt).unsqueeze(2).expand_as(new.weight))
        else:
            new.weight.zero_()
            new.weight[:, :, kt // 2] = w
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.weight.requires_grad_(w.requires_grad)
    if conv.bias is not None:
        new.bias.requires_grad_(conv.bias.requires_grad)
    return new


def _convert_bn(bn: nn.BatchNorm2d) -> InflatedBatchNorm3d:
    ref = next(iter(bn.state_dict().values()), None)
    new = InflatedBatchNorm3d(bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine,
                              track_running_stats=bn.track_running_stats,
                              device=None if ref is None else ref.device,
                              dtype=None if ref is None else ref.dtype)
    new.load_state_dict(bn.state_dict())  # weight, bias, running_mean/var, num_batches_tracked
    if bn.affine:
        new.weight.requires_grad_(bn.weight.requires_grad)
        new.bias.requires_grad_(bn.bias.requires_grad)
    return new


def _convert_pool(m: nn.Module) -> nn.Module | None:
    """Local pools keep time (temporal kernel 1); adaptive (global) pools also reduce it to 1."""
    if _plain(m, nn.MaxPool2d) and not m.return_indices:
        k, s, p, d = (_pair(v) for v in (m.kernel_size, m.stride, m.padding, m.dilation))
        return InflatedMaxPool3d((1, *k), (1, *s), (0, *p), (1, *d), ceil_mode=m.ceil_mode)
    if _plain(m, nn.AvgPool2d):
        k, s, p = (_pair(v) for v in (m.kernel_size, m.stride, m.padding))
        return InflatedAvgPool3d((1, *k), (1, *s), (0, *p), ceil_mode=m.ceil_mode,
                                 count_include_pad=m.count_include_pad,
                                 divisor_override=m.divisor_override)
    if _plain(m, nn.AdaptiveAvgPool2d):
        return InflatedAdaptiveAvgPool3d((1, *_pair(m.output_size)))
    if _plain(m, nn.AdaptiveMaxPool2d) and not m.return_indices:
        return InflatedAdaptiveMaxPool3d((1, *_pair(m.output_size)))
    return None


def _convert_leaf(m: nn.Module, kt: int, init: str) -> nn.Module | None:
    """The 3-D replacement of ``m``, or None when ``m`` is kept (and recursed into)."""
    if _is_conv(m):
        return _convert_conv(m, kt, init)
    if _plain(m, nn.BatchNorm2d) and _plain(m, nn.BatchNorm2d, "_check_input_dim"):
        return _convert_bn(m)
    if _plain(m, nn.Dropout2d):
        return InflatedDropout3d(m.p, m.inplace)
    return _convert_pool(m)


def _describe(old: nn.Module, new: nn.Module) -> str:
    detail = ""
    if isinstance(new, InflatedConv3dSame):
        detail = f"(kernel={tuple(new.kernel_size)}, padding=same)"
    elif isinstance(new, InflatedConv3d):
        detail = f"(kernel={tuple(new.kernel_size)})"
    elif isinstance(new, TimePool):
        detail = f"(output={tuple(new.output_size)})"
    base = next(c for c in type(new).__mro__ if c.__module__.startswith("torch.nn")).__name__  # not Inflated*
    return f"{type(old).__name__} -> {base}{detail}"


def convert_tree(root: nn.Module, time_kernel: int, init: str,
                  last_n: int | None) -> InflationReport:
    """Replace, in place, every convertible module of ``root``; report what was converted."""
    report = InflationReport(time_kernel=time_kernel, init=init, last_n=last_n)
    convs = _conv_names(root)
    temporal = set(convs if last_n is None else convs[len(convs) - last_n:])
    memo: dict[int, nn.Module] = {}  # shared submodules stay shared

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in list(module._modules.items()):
            if child is None:
                continue
            full = f"{prefix}.{name}" if prefix else name
            if id(child) in memo:
                module._modules[name] = memo[id(child)]
                continue
            new = _convert_leaf(child, time_kernel if full in temporal else 1, init)
            if new is not None:
                new.train(child.training)
                memo[id(child)] = module._modules[name] = new
                report.converted[full] = _describe(child, new)
                if isinstance(new, InflatedConv3d):
                    kind = report.temporal_convs if full in temporal else report.spatial_only_convs
                    kind.append(full)
                if isinstance(new, TimePool):
                    report.time_pooled.append(full)
            elif _is_timm_global_pool(child):
                set_forward(child, time_mean_forward, full)  # don't recurse: runs on 4-D
                memo[id(child)] = child
                report.converted[full] = f"{type(child).__name__}: time averaged first"
                report.time_pooled.append(full)
            else:
                memo[id(child)] = child
                visit(child, full)

    visit(root, "")
    return report


def check_args(model2d: nn.Module, time_kernel: Any, init: Any, last_n: Any) -> None:
    if not isinstance(time_kernel, int) or time_kernel < 1 or time_kernel % 2 == 0:
        raise InflationError(f"time_kernel must be a positive odd number, got {time_kernel!r}")
    if init not in ("centre", "mean"):
        raise InflationError(f"init must be 'centre' or 'mean', got {init!r}")
    if last_n is not None:
        if not isinstance(last_n, int) or last_n < 0:
            raise InflationError(f"last_n must be >= 0 or None, got {last_n!r}")
        n_convs = len(_conv_names(model2d))
        if last_n > n_convs:
            raise InflationError(f"last_n={last_n} but the model has only {n_convs} convolutions "
                                 f"(Conv2d layers that inflate); use at most {n_convs}, or None "
                                 f"for all")


__all__ = ["Init", "ROOT", "InflationReport", "convert_tree", "check_args"]
