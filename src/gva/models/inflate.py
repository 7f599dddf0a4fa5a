"""Generic 2-D -> 3-D inflation of an image classifier (I3D style), by walking its modules.

The inflated network takes clips ``[B,3,T,H,W]``. Conversions (module names are kept, so the
3-D ``state_dict`` has the 2-D keys; only inflated conv weights gain a time axis):

* ``Conv2d`` -> ``Conv3d``: temporal kernel ``time_kernel`` (1 for convs before the last
  ``last_n``), temporal stride 1, temporal padding ``kt // 2``; groups, dilation, bias and
  padding mode kept. ``init="centre"`` puts the 2-D kernel on the centre slice and zeros on the
  others; ``init="mean"`` puts ``kernel / kt`` on every slice.
* ``BatchNorm2d`` -> ``BatchNorm3d`` with affine parameters *and* running statistics copied.
* ``MaxPool2d`` / ``AvgPool2d`` -> 3-D with temporal kernel 1.
* ``AdaptiveAvgPool2d`` / ``AdaptiveMaxPool2d`` -> 3-D pools that also reduce time to 1, so a
  ``torch.flatten`` in the model's ``forward`` (torchvision VGG/ResNet) sees the 2-D feature size.
* timm's global pools (``SelectAdaptivePool2d`` and friends) average over time first, then run
  unchanged on ``[B,C,H,W]``.
* Anything else that breaks on a 5-D tensor (a ``permute`` in a ConvNeXt block, a channels-last
  ``LayerNorm2d``, a Conv2d subclass with its own forward, functional pooling in ``forward``) is
  found by a probe forward pass and run *time-folded*: ``[B,C,T,H,W] -> [B*T,C,H,W]`` around it.
  Inflated convs inside a folded module still mix time (they unfold internally), and BatchNorm on
  ``[B*T,C,H,W]`` computes exactly BatchNorm3d's statistics. A folded module whose output has no
  spatial axes (features/logits) averages over time. What cannot be made to work is refused with
  an :class:`InflationError` naming the layer.

Static-clip equivalence (a clip of one frame repeated T times gives the 2-D logits in eval mode)
holds by construction for ``init="centre"`` and any ``last_n``, and is checked on a probe input at
inflation time. With ``init="mean"`` and zero temporal padding it holds only away from the clip
edges: the first/last ``kt // 2`` frames see zeros in place of neighbours, so their activations
are scaled by (frames seen)/kt; for T=1 every temporal conv output is divided by ``kt``.
"""

from __future__ import annotations

import copy
import threading
import types
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair

Init = Literal["centre", "mean"]

# Relative tolerance of the built-in static-clip self check (a structural bug gives O(1) errors).
_CHECK_RTOL = 1e-3


class InflationError(ValueError):
    """The network cannot be inflated; the message names the layer."""


# --------------------------------------------------------------------------------------------
# Time folding: a per-thread stack of the (batch, frames) of the folded regions being executed.


@dataclass
class _Fold:
    b: int
    t: int
    collapsed: bool = False  # set when a pool inside the region averaged time away


_local = threading.local()


def _stack() -> list[_Fold]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


def _current() -> Optional[_Fold]:
    stack = _stack()
    return stack[-1] if stack else None


def _unfolded(x: torch.Tensor) -> Optional[tuple[torch.Tensor, _Fold]]:
    """``[B*T,C,H,W]`` inside a live fold -> ``([B,C,T,H,W], fold)``; None if time isn't folded."""
    fold = _current()
    if fold is None or fold.collapsed:
        return None
    if x.shape[0] != fold.b * fold.t:
        raise InflationError(f"time-folded tensor has batch {x.shape[0]}, expected "
                             f"{fold.b}x{fold.t}; a layer changed the batch size")
    return x.reshape(fold.b, fold.t, *x.shape[1:]).transpose(1, 2), fold


def _refold(y: torch.Tensor) -> torch.Tensor:
    """``[B,C,T,H,W] -> [B*T,C,H,W]``."""
    b, c, t = y.shape[:3]
    return y.transpose(1, 2).reshape(b * t, c, *y.shape[3:])


def _folded_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """Instance ``forward`` of a module that cannot take 5-D input: run it on frames."""
    x = args[0] if args else None
    if not (torch.is_tensor(x) and x.dim() == 5):
        return type(self).forward(self, *args, **kwargs)  # already folded / time already pooled
    b, _, t = x.shape[:3]
    fold = _Fold(b, t)
    _stack().append(fold)
    try:
        y = type(self).forward(self, _refold(x), *args[1:], **kwargs)
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


def _time_mean_forward(self: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """Instance ``forward`` of a 2-D global pool: average time first, then pool the frame."""
    x = args[0] if args else None
    if torch.is_tensor(x) and x.dim() == 5:
        args = (x.mean(2), *args[1:])
    else:
        fold = _current()
        if torch.is_tensor(x) and fold is not None and not fold.collapsed and x.dim() == 4:
            args = (x.reshape(fold.b, fold.t, *x.shape[1:]).mean(1), *args[1:])
            fold.collapsed = True
    return type(self).forward(self, *args, **kwargs)


def _set_forward(module: nn.Module, fn: Any, name: str) -> None:
    # An instance attribute keeps the module's class, name and state_dict keys; deepcopy rebinds it.
    module.forward = types.MethodType(fn, module)
    module._gva_name = name


def _is_folded(module: nn.Module) -> bool:
    fwd = module.__dict__.get("forward")
    return isinstance(fwd, types.MethodType) and fwd.__func__ is _folded_forward


# --------------------------------------------------------------------------------------------
# 3-D layers that also accept time-folded 4-D input (inside a folded module) or 4-D input with
# time already pooled (treated as T=1).


class InflatedConv3d(nn.Conv3d):
    """``nn.Conv3d`` made from a ``Conv2d``; temporal stride 1, so T is preserved."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)
        unfolded = _unfolded(x)
        if unfolded is None:
            return super().forward(x.unsqueeze(2)).squeeze(2)
        return _refold(super().forward(unfolded[0]))


class InflatedBatchNorm3d(nn.BatchNorm3d):
    """``nn.BatchNorm3d``; on ``[B*T,C,H,W]`` its statistics are the same as on ``[B,C,T,H,W]``."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (4, 5):
            raise ValueError(f"expected 4D (time-folded) or 5D input (got {input.dim()}D input)")


class InflatedMaxPool3d(nn.MaxPool3d):
    """``nn.MaxPool3d`` with temporal kernel 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)
        return F.max_pool2d(x, self.kernel_size[1:], self.stride[1:], self.padding[1:],
                            self.dilation[1:], ceil_mode=self.ceil_mode)


class InflatedAvgPool3d(nn.AvgPool3d):
    """``nn.AvgPool3d`` with temporal kernel 1."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)
        return F.avg_pool2d(x, self.kernel_size[1:], self.stride[1:], self.padding[1:],
                            self.ceil_mode, self.count_include_pad, self.divisor_override)


class _TimePool:
    """Adaptive pool whose temporal output size is 1; on folded input it collapses the fold."""

    _reduce_time: str
    _pool2d: Any

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)  # type: ignore[misc]
        y = self._pool2d(x, self.output_size[1:])  # type: ignore[attr-defined]
        fold = _current()
        if fold is None or fold.collapsed:
            return y
        y = y.reshape(fold.b, fold.t, *y.shape[1:])
        fold.collapsed = True
        return y.mean(1) if self._reduce_time == "mean" else y.amax(1)


class InflatedAdaptiveAvgPool3d(_TimePool, nn.AdaptiveAvgPool3d):
    """``AdaptiveAvgPool2d(s)`` -> ``AdaptiveAvgPool3d((1, *s))``: also averages time."""

    _reduce_time = "mean"
    _pool2d = staticmethod(F.adaptive_avg_pool2d)


class InflatedAdaptiveMaxPool3d(_TimePool, nn.AdaptiveMaxPool3d):
    """``AdaptiveMaxPool2d(s)`` -> ``AdaptiveMaxPool3d((1, *s))``: also max-pools time."""

    _reduce_time = "max"
    _pool2d = staticmethod(F.adaptive_max_pool2d)


class InflatedDropout3d(nn.Dropout3d):
    """``Dropout2d`` -> ``Dropout3d`` (a channel is dropped for the whole clip)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 5:
            return super().forward(x)
        return F.dropout2d(x, self.p, self.training, self.inplace)


_CONVERTED_TYPES = (InflatedConv3d, InflatedBatchNorm3d, InflatedMaxPool3d, InflatedAvgPool3d,
                    InflatedAdaptiveAvgPool3d, InflatedAdaptiveMaxPool3d, InflatedDropout3d)


# --------------------------------------------------------------------------------------------
# Report


@dataclass
class InflationReport:
    """What :func:`inflate` did. ``untransferred`` lists 2-D state_dict keys whose values are not
    found in the 3-D model (empty when everything transferred); ``new`` lists 3-D keys that had no
    2-D source."""

    time_kernel: int
    init: str
    last_n: Optional[int]
    converted: dict[str, str] = field(default_factory=dict)
    temporal_convs: list[str] = field(default_factory=list)
    spatial_only_convs: list[str] = field(default_factory=list)
    time_pooled: list[str] = field(default_factory=list)
    folded: list[str] = field(default_factory=list)
    untransferred: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"inflated {len(self.converted)} layers ({len(self.temporal_convs)} convs with "
                f"temporal kernel {self.time_kernel}, {len(self.spatial_only_convs)} with 1), "
                f"time pooled at {self.time_pooled or 'the folded output'}, "
                f"{len(self.folded)} modules time-folded, "
                f"untransferred 2-D weights: {self.untransferred or 'none'}")


# --------------------------------------------------------------------------------------------
# Conversion


def _plain(module: nn.Module, base: type, method: str = "forward") -> bool:
    """``module`` is a ``base`` whose ``method`` is the stock one (subclasses may do anything)."""
    return isinstance(module, base) and getattr(type(module), method) is getattr(base, method)


def _is_timm_global_pool(module: nn.Module) -> bool:
    return type(module).__module__ == "timm.layers.adaptive_avgmax_pool"


def _convert_conv(conv: nn.Conv2d, kt: int) -> InflatedConv3d:
    if isinstance(conv.padding, str):
        padding: Any = conv.padding if conv.padding == "same" else (kt // 2, 0, 0)
    else:
        padding = (kt // 2, *conv.padding)
    w = conv.weight
    new = InflatedConv3d(conv.in_channels, conv.out_channels, (kt, *conv.kernel_size),
                         stride=(1, *conv.stride), padding=padding, dilation=(1, *conv.dilation),
                         groups=conv.groups, bias=conv.bias is not None,
                         padding_mode=conv.padding_mode, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :, kt // 2] = w  # centre init; "mean" is applied after the self check
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    new.weight.requires_grad_(w.requires_grad)
    if new.bias is not None:
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


def _convert_leaf(m: nn.Module, kt: int) -> Optional[nn.Module]:
    """The 3-D replacement of ``m``, or None when ``m`` is kept (and recursed into)."""
    if _plain(m, nn.Conv2d) and _plain(m, nn.Conv2d, "_conv_forward"):
        return _convert_conv(m, kt)
    if _plain(m, nn.BatchNorm2d) and _plain(m, nn.BatchNorm2d, "_check_input_dim"):
        return _convert_bn(m)
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
    if _plain(m, nn.Dropout2d):
        return InflatedDropout3d(m.p, m.inplace)
    return None


def _describe(old: nn.Module, new: nn.Module) -> str:
    detail = ""
    if isinstance(new, InflatedConv3d):
        detail = f"(kernel={tuple(new.kernel_size)})"
    elif isinstance(new, _TimePool):
        detail = f"(output={tuple(new.output_size)})"
    return f"{type(old).__name__} -> {type(new).__mro__[1 + isinstance(new, _TimePool)].__name__}{detail}"


def _convert_tree(root: nn.Module, time_kernel: int, last_n: Optional[int],
                  report: InflationReport) -> None:
    convs = [n for n, m in root.named_modules()
             if _plain(m, nn.Conv2d) and _plain(m, nn.Conv2d, "_conv_forward")]
    temporal = set(convs if last_n is None else convs[len(convs) - min(last_n, len(convs)):])
    memo: dict[int, nn.Module] = {}  # shared submodules stay shared

    def visit(module: nn.Module, prefix: str) -> None:
        for name, child in list(module._modules.items()):
            if child is None:
                continue
            full = f"{prefix}.{name}" if prefix else name
            if id(child) in memo:
                module._modules[name] = memo[id(child)]
                continue
            new = _convert_leaf(child, time_kernel if full in temporal else 1)
            if new is not None:
                new.train(child.training)
                memo[id(child)] = module._modules[name] = new
                report.converted[full] = _describe(child, new)
                if isinstance(new, InflatedConv3d):
                    (report.temporal_convs if full in temporal else report.spatial_only_convs).append(full)
                if isinstance(new, _TimePool):
                    report.time_pooled.append(full)
            elif _is_timm_global_pool(child):
                _set_forward(child, _time_mean_forward, full)  # don't recurse: runs on 4-D
                memo[id(child)] = child
                report.converted[full] = f"{type(child).__name__}: time averaged first"
                report.time_pooled.append(full)
            else:
                memo[id(child)] = child
                visit(child, full)

    visit(root, "")


# --------------------------------------------------------------------------------------------
# Probe: find the modules that break on 5-D input and fold them; then check static equivalence.


def _modes(model: nn.Module) -> dict[nn.Module, bool]:
    return {m: m.training for m in model.modules()}


def _restore(modes: dict[nn.Module, bool]) -> None:
    for m, training in modes.items():
        m.training = training


def _traced_forward(model: nn.Module, x: torch.Tensor
                    ) -> tuple[Optional[torch.Tensor], Optional[Exception], list[tuple[str, nn.Module, int]]]:
    """Run ``model(x)``; on failure also return the chain of modules active when it raised."""
    active: list[tuple[str, nn.Module, int]] = []
    handles = []

    def pre(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x0 = args[0] if args else None
            active.append((name, module, x0.dim() if torch.is_tensor(x0) else -1))
        return hook

    def post(module: nn.Module, args: tuple, out: Any) -> None:
        active.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(pre(name), prepend=True))
        handles.append(module.register_forward_hook(post))
    try:
        return model(x), None, []
    except Exception as exc:  # any failure of arbitrary model code is diagnosed below
        return None, exc, list(active)
    finally:
        for h in handles:
            h.remove()
        _stack().clear()


def _probe_and_fold(model3d: nn.Module, clip: torch.Tensor, report: InflationReport) -> torch.Tensor:
    n_modules = sum(1 for _ in model3d.modules())
    for _ in range(n_modules + 1):
        out, exc, chain = _traced_forward(model3d, clip)
        if exc is None:
            _prune_nested_folds(model3d, report)
            return out
        where = " > ".join(f"{n or '<root>'}({type(m).__name__}, {d}-D in)" for n, m, d in chain)
        if chain and isinstance(chain[-1][1], _CONVERTED_TYPES):
            name, module, _ = chain[-1]
            raise InflationError(f"inflated layer {name!r} ({type(module).__name__}) failed on the "
                                 f"probe clip {tuple(clip.shape)}: {exc} (is probe_size {clip.shape[-1]} too small "
                                 f"for this network?)") from exc
        target = next(((n, m) for n, m, d in reversed(chain) if d == 5 and not _is_folded(m)), None)
        if target is None:
            name, module = (chain[-1][0], chain[-1][1]) if chain else ("<root>", model3d)
            raise InflationError(f"cannot inflate: layer {name or '<root>'!r} "
                                 f"({type(module).__name__}) fails on clips even when run frame by "
                                 f"frame ({type(exc).__name__}: {exc}); active modules: {where}") from exc
        name, module = target
        _set_forward(module, _folded_forward, name)
        report.folded.append(name or "<root>")
    raise InflationError("inflation probe did not converge")  # unreachable: each round folds one more


def _prune_nested_folds(model3d: nn.Module, report: InflationReport) -> None:
    """Un-fold modules inside a folded ancestor: they only ever see folded 4-D input there."""
    folded = set(report.folded)
    keep = []
    for name in report.folded:
        parts = name.split(".") if name != "<root>" else []
        ancestors = {"<root>"} | {".".join(parts[:i]) for i in range(1, len(parts))}
        if name != "<root>" and ancestors & folded:
            module = model3d.get_submodule(name)
            del module.forward, module._gva_name
        else:
            keep.append(name)
    report.folded = keep


def _transfer_check(model2d: nn.Module, model3d: nn.Module, report: InflationReport) -> None:
    sd2, sd3 = model2d.state_dict(), model3d.state_dict()
    for key, w2 in sd2.items():
        w3 = sd3.get(key)
        if w3 is None:
            report.untransferred.append(key)
        elif w3.shape == w2.shape:
            if not torch.equal(w3, w2):
                report.untransferred.append(key)
        elif w3.dim() == w2.dim() + 1 == 5 and w3.shape[:2] + w3.shape[3:] == w2.shape:
            if not torch.allclose(w3.sum(2), w2, rtol=1e-5, atol=1e-7):  # centre & mean: sum = 2-D
                report.untransferred.append(key)
        else:
            report.untransferred.append(key)
    report.new = [k for k in sd3 if k not in sd2]


def inflate_with_report(model2d: nn.Module, time_kernel: int = 3, init: Init = "centre",
                        last_n: Optional[int] = None, probe_size: int = 64,
                        check: bool = True) -> tuple[nn.Module, InflationReport]:
    """Inflate a copy of ``model2d`` (left untouched) to a clip model; see the module docstring.

    ``probe_size`` is the side of the probe image used to find layers that break on 5-D input and
    to verify static-clip equivalence (``check``); it must be a size the 2-D model accepts.
    """
    if time_kernel < 1 or time_kernel % 2 == 0:
        raise InflationError(f"time_kernel must be a positive odd number, got {time_kernel}")
    if init not in ("centre", "mean"):
        raise InflationError(f"init must be 'centre' or 'mean', got {init!r}")
    if last_n is not None and last_n < 0:
        raise InflationError(f"last_n must be >= 0 or None, got {last_n}")
    report = InflationReport(time_kernel=time_kernel, init=init, last_n=last_n)
    model3d = copy.deepcopy(model2d)
    _convert_tree(model3d, time_kernel, last_n, report)

    param = next(model3d.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    gen = torch.Generator().manual_seed(0)  # never touch the global RNG (training seeds it)
    frame = torch.randn(1, 3, probe_size, probe_size, generator=gen).to(device, dtype)
    clip = frame.unsqueeze(2).expand(-1, -1, 2, -1, -1).contiguous()
    modes2, modes3 = _modes(model2d), _modes(model3d)
    try:
        model2d.eval()
        model3d.eval()
        with torch.no_grad():
            out3 = _probe_and_fold(model3d, clip, report)
            if check:
                out2 = model2d(frame)
                if (torch.is_tensor(out3) and torch.is_tensor(out2) and out3.dim() == out2.dim() + 1 == 5
                        and out3.shape[:2] + out3.shape[3:] == out2.shape):
                    out2 = out2.unsqueeze(2).expand_as(out3)  # a feature-map model: every frame
                if not (torch.is_tensor(out3) and torch.is_tensor(out2) and out3.shape == out2.shape):
                    raise InflationError(
                        f"inflated model returns {getattr(out3, 'shape', type(out3))} for a clip, "
                        f"the 2-D model {tuple(out2.shape)} for a frame; some layer does not handle "
                        f"time (converted: {sorted(report.converted)}, folded: {report.folded})")
                diff = (out3 - out2).abs().max().item()
                if not diff <= _CHECK_RTOL * (1.0 + out2.abs().max().item()):
                    raise InflationError(
                        f"static-clip check failed: inflated logits differ from 2-D logits by "
                        f"{diff:.3g}; a layer that received 5-D input mixes time or axes wrongly "
                        f"(kept as-is: {_unconverted_5d(model3d, clip)})")
    finally:
        _restore(modes2)
        _restore(modes3)

    if init == "mean":
        with torch.no_grad():
            for m in model3d.modules():
                if isinstance(m, InflatedConv3d) and m.kernel_size[0] > 1:
                    kt = m.kernel_size[0]
                    m.weight.copy_((m.weight[:, :, kt // 2] / kt).unsqueeze(2).expand_as(m.weight))
    _transfer_check(model2d, model3d, report)
    model3d.inflation_report = report  # plain attribute: travels with the module, not the state_dict
    return model3d, report


def _unconverted_5d(model3d: nn.Module, clip: torch.Tensor) -> list[str]:
    """Names of leaf modules that are not ours but receive 5-D tensors (suspects for a bad check)."""
    seen: list[str] = []
    handles = []
    for name, m in model3d.named_modules():
        if not list(m.children()) and not isinstance(m, _CONVERTED_TYPES):
            def hook(module, args, name=name):
                if args and torch.is_tensor(args[0]) and args[0].dim() == 5:
                    seen.append(name)
            handles.append(m.register_forward_pre_hook(hook))
    try:
        model3d(clip)
    finally:
        for h in handles:
            h.remove()
    return sorted(set(seen))


def inflate(model2d: nn.Module, time_kernel: int = 3, init: Init = "centre",
            last_n: Optional[int] = None, probe_size: int = 64) -> nn.Module:
    """Inflate ``model2d`` ([B,3,H,W]) to a clip model ([B,3,T,H,W]).

    The :class:`InflationReport` (incl. untransferred 2-D weights) is ``result.inflation_report``.
    """
    return inflate_with_report(model2d, time_kernel, init, last_n, probe_size)[0]
