"""Generic 2-D -> 3-D inflation of an image classifier (I3D style), by walking its modules.

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

Everything else is kept as it is, which is right only if it treats a 5-D tensor as a clip. The
modules for which that is not so are run *time-folded* (:mod:`gva.models.fold`: ``[B,C,T,H,W]
-> [B*T,C,H,W]`` around them, inflated layers inside still mix time). They are found on float64
CPU copies (the model passed in is never run) in two ways:

1. the *probe*: a static clip is run through the 3-D network; the innermost module that raises
   on its 5-D input (a ``permute`` in a ConvNeXt block, a channels-last ``LayerNorm2d``, a Conv2d
   subclass with its own forward, functional pooling in ``forward``) is folded, until it runs;
2. the *check*: the static clip (one frame repeated) must give the 2-D network's output on the
   frame to ``_CHECK_RTOL`` relative -- float64 rounding is ~1e-14, a module that accepts 5-D
   but reduces the wrong axes (timm's ``SqueezeExcite`` does ``x.mean((2, 3))``, meant for H, W)
   is ~1e-5 or worse. Every module's input and output on the frame is recorded; when the check
   fails, so are the 3-D network's on the clip, and a module whose 3-D input matches the 2-D one
   but whose output does not is a culprit. The innermost culprits are folded; repeat until the
   check passes. The check sees what the probe image exercises: where a feature map is 1x1 at
   ``probe_size``, averaging (T, H) and (H, W) agree on a static clip.

A module that still fails when folded is refused with an :class:`InflationError` naming it. So
static-clip equivalence holds, checked, for ``init="centre"`` and any ``last_n``. With
``init="mean"`` and zero temporal padding it holds only away from the clip edges: the first/last
``kt // 2`` frames see zeros in place of neighbours, so their activations are scaled by (frames
seen)/kt; for T=1 every temporal conv output is divided by ``kt``.

:meth:`InflationReport.to_dict` is a *plan*: :func:`inflate_from_plan` rebuilds the same 3-D
network from it (same conversions, same folded modules), without probe, check or random numbers
-- for loading saved weights.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Mapping, Optional

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair
from torch.nn.utils import skip_init

from gva.errors import InflationError
from gva.models.fold import (INFLATED_TYPES, InflatedAdaptiveAvgPool3d, InflatedAdaptiveMaxPool3d,
                             InflatedAvgPool3d, InflatedBatchNorm3d, InflatedConv3d, InflatedConv3dSame,
                             InflatedDropout3d, InflatedMaxPool3d, TimePool, folded_forward,
                             is_folded, reset_folds, set_forward, time_mean_forward,
                             unset_forward)

Init = Literal["centre", "mean"]

# Relative tolerance of the float64 static-clip check, and of "this tensor matches" when
# locating culprits. Rounding gives ~1e-14; a module with the wrong semantics ~1e-5 and more.
_CHECK_RTOL = 1e-9
_MATCH_RTOL = 1e-10  # tighter: a culprit whose own error is small must still be seen
_ROOT = "<root>"  # the name of the whole model in reports and plans

# --------------------------------------------------------------------------------------------
# Report / plan


@dataclass
class InflationReport:
    """What :func:`inflate` did. ``untransferred`` lists 2-D state_dict keys whose values are not
    found in the 3-D model (empty when everything transferred); ``new`` lists 3-D keys that had no
    2-D source. ``to_dict()`` is the plan :func:`inflate_from_plan` rebuilds the network from."""

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


def _plain(module: nn.Module, base: type, method: str = "forward") -> bool:
    """``module`` is a ``base`` whose ``method`` is the stock one (subclasses may do anything)."""
    return isinstance(module, base) and getattr(type(module), method) is getattr(base, method)


def _is_same_conv(m: nn.Module) -> bool:
    """timm's ``Conv2dSame`` itself (TF "SAME" padding computed per input; not a subclass of it)."""
    cls = type(m)
    return (cls.__name__ == "Conv2dSame" and cls.__module__.startswith("timm.layers")
            and isinstance(m, nn.Conv2d) and m.padding_mode == "zeros")


def _is_conv(m: nn.Module) -> bool:
    return (_plain(m, nn.Conv2d) and _plain(m, nn.Conv2d, "_conv_forward")) or _is_same_conv(m)


def _is_timm_global_pool(m: nn.Module) -> bool:
    return type(m).__module__ == "timm.layers.adaptive_avgmax_pool"


def _conv_names(model: nn.Module) -> list[str]:
    """The convs that will be inflated, in registration order (shared ones once)."""
    return [n for n, m in model.named_modules() if _is_conv(m)]


def _convert_conv(conv: nn.Conv2d, kt: int, init: str) -> InflatedConv3d:
    cls = InflatedConv3d
    if _is_same_conv(conv):
        # its H/W padding depends on the input size: InflatedConv3dSame pads as Conv2dSame does
        # (its own padding attribute is 0), the conv pads time
        cls, padding = InflatedConv3dSame, (kt // 2, 0, 0)
    elif isinstance(conv.padding, str):
        padding: Any = conv.padding if conv.padding == "same" else (kt // 2, 0, 0)
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


def _convert_pool(m: nn.Module) -> Optional[nn.Module]:
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


def _convert_leaf(m: nn.Module, kt: int, init: str) -> Optional[nn.Module]:
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


def _convert_tree(root: nn.Module, time_kernel: int, init: str,
                  last_n: Optional[int]) -> InflationReport:
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


def _check_args(model2d: nn.Module, time_kernel: Any, init: Any, last_n: Any) -> None:
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


# --------------------------------------------------------------------------------------------
# Building and the public API


def _build(model2d: nn.Module, time_kernel: int, init: str, last_n: Optional[int],
           folded: list[str]) -> tuple[nn.Module, InflationReport]:
    """A converted deep copy of ``model2d`` with the ``folded`` modules run time-folded."""
    model3d = copy.deepcopy(model2d)
    report = _convert_tree(model3d, time_kernel, init, last_n)
    _apply_folds(model3d, folded)
    report.folded = list(folded)
    _transfer_check(model2d, model3d, report)
    model3d.inflation_report = report  # plain attribute: travels with the module, not state_dict
    return model3d, report


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

    ``probe_size`` is the side of the probe image used to find the modules to fold and to verify
    static-clip equivalence (``check``); it must be a size the 2-D model accepts. Without
    ``check`` only modules that raise on 5-D input are found.
    """
    _check_args(model2d, time_kernel, init, last_n)
    folded = _find_folds(model2d, time_kernel, last_n, probe_size, check)
    return _build(model2d, time_kernel, init, last_n, folded)


def inflate(model2d: nn.Module, time_kernel: int = 3, init: Init = "centre",
            last_n: Optional[int] = None, probe_size: int = 64) -> nn.Module:
    """Inflate ``model2d`` ([B,3,H,W]) to a clip model ([B,3,T,H,W]).

    The :class:`InflationReport` (incl. untransferred 2-D weights) is ``result.inflation_report``.
    """
    return inflate_with_report(model2d, time_kernel, init, last_n, probe_size)[0]


_PLAN_KEYS = ("time_kernel", "init", "last_n", "converted", "temporal_convs",
              "spatial_only_convs", "folded")


def inflate_from_plan(model2d: nn.Module, plan: Mapping[str, Any]) -> nn.Module:
    """Rebuild the network :func:`inflate` made, from its plan (``InflationReport.to_dict()``).

    ``model2d`` (left untouched) must have the architecture that was inflated; its weights do not
    matter if the 3-D weights are loaded afterwards (``load_state_dict``). The same conversions
    are applied and the plan's modules folded -- no probe, no check, no random numbers.
    :class:`InflationError` if the plan does not fit the model. The report is
    ``result.inflation_report``.
    """
    missing = [k for k in _PLAN_KEYS if k not in plan]
    if missing:
        raise InflationError(f"inflation plan lacks {', '.join(missing)}")
    time_kernel, init, last_n = plan["time_kernel"], plan["init"], plan["last_n"]
    _check_args(model2d, time_kernel, init, last_n)
    model3d, report = _build(model2d, time_kernel, init, last_n, list(plan["folded"]))
    for key in ("temporal_convs", "spatial_only_convs", "converted"):
        ours, theirs = getattr(report, key), plan[key]
        theirs = dict(theirs) if isinstance(ours, dict) else list(theirs)
        if ours != theirs:
            if isinstance(ours, dict):
                odd = sorted(set(ours) ^ set(theirs)) or [k for k in ours if ours[k] != theirs[k]]
                what = f"{odd[0]!r}: plan {theirs.get(odd[0])!r}, model {ours.get(odd[0])!r}"
            else:
                odd = [a for a, b in zip(ours, theirs) if a != b] or sorted(set(ours) ^ set(theirs))
                what = repr(odd[0]) if odd else "the list lengths"
            raise InflationError(
                f"inflation plan does not fit the model: its {key} ({len(theirs)}) differ from "
                f"what time_kernel={time_kernel}, last_n={last_n} give for this model "
                f"({len(ours)}); first difference: {what}")
    return model3d


# --------------------------------------------------------------------------------------------
# Finding the modules to fold, on a float64 copy: probe (1), then check (2)


def _find_folds(model2d: nn.Module, time_kernel: int, last_n: Optional[int], probe_size: int,
                check: bool) -> list[str]:
    """The modules of the inflated ``model2d`` to run time-folded (probe, then check)."""
    # One float64 CPU copy: the check must resolve 1e-9, and the caller's model is never run. It
    # serves as the 2-D reference (recorded module by module), then is inflated in place.
    work = copy.deepcopy(model2d).to("cpu", torch.float64).eval()
    gen = torch.Generator().manual_seed(0)  # never touch the global RNG (training seeds it)
    frame = torch.randn(1, 3, probe_size, probe_size, generator=gen, dtype=torch.float64)
    clip = frame.unsqueeze(2).expand(-1, -1, 2, -1, -1).contiguous()
    out2, calls2 = None, {}
    if check:
        try:
            with torch.no_grad():
                out2, calls2 = _record(work, frame)
        except Exception as exc:
            with torch.no_grad():
                chain = _traced_forward(work, frame)[2]  # again, to name the failing layer
            name, module = (chain[-1][0], chain[-1][1]) if chain else (_ROOT, work)
            raise InflationError(f"the 2-D model fails on a {probe_size}px probe image in layer "
                                 f"{name!r} ({type(module).__name__}: {type(exc).__name__}: "
                                 f"{exc}); pass a probe_size it accepts") from exc
    _convert_tree(work, time_kernel, "centre", last_n)  # centre: static-clip equivalent
    work3d = work.eval()
    folded: list[str] = []
    with torch.no_grad():
        for _ in range(sum(1 for _ in work3d.modules()) + 1):  # each round folds >= 1 more
            out3 = _fold_failures(work3d, clip, folded)
            if not check:
                return folded
            err = _mismatch(out3, out2)
            if err <= _CHECK_RTOL:
                return folded
            culprits = _culprits(calls2, work3d, clip)
            if not culprits:
                raise InflationError(
                    f"static-clip check failed: the inflated model returns "
                    f"{getattr(out3, 'shape', type(out3))} for a clip, the 2-D model "
                    f"{getattr(out2, 'shape', type(out2))} for a frame (relative error {err:.3g}), "
                    f"and no layer could be blamed (folded: {folded})")
            for name, what in culprits.items():
                module = _submodule(work3d, name)
                if is_folded(module) or any(_inside(name, f) for f in folded):
                    raise InflationError(
                        f"cannot inflate: layer {name!r} ({type(module).__name__}) gives a "
                        f"different result on a static clip than on its frame even when run "
                        f"frame by frame ({what})")
                set_forward(module, folded_forward, name)
                folded.append(name)
            folded[:] = _prune_nested(work3d, folded)
    raise InflationError("static-clip check did not converge")  # unreachable


# --------------------------------------------------------------------------------------------
# (1) Probe: fold the innermost module that raises on 5-D input, until the clip runs


def _traced_forward(model: nn.Module, x: torch.Tensor
                    ) -> tuple[Any, Optional[Exception], list[tuple[str, nn.Module, int]]]:
    """Run ``model(x)``; on failure also return the chain of modules active when it raised."""
    active: list[tuple[str, nn.Module, int]] = []
    handles = []

    def pre(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x0 = args[0] if args else None
            active.append((name or _ROOT, module, x0.dim() if torch.is_tensor(x0) else -1))
        return hook

    def post(module: nn.Module, args: tuple, out: Any) -> None:
        active.pop()

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(pre(name), prepend=True))
        handles.append(module.register_forward_hook(post))
    try:
        return model(x), None, []
    except Exception as exc:  # any failure of arbitrary model code is diagnosed by the caller
        return None, exc, list(active)
    finally:
        for h in handles:
            h.remove()
        reset_folds()


def _fold_failures(model3d: nn.Module, clip: torch.Tensor, folded: list[str]) -> Any:
    """Fold (appending to ``folded``) until ``model3d(clip)`` runs; return its output."""
    for _ in range(sum(1 for _ in model3d.modules()) + 1):  # each round folds one more module
        out, exc, chain = _traced_forward(model3d, clip)
        if exc is None:
            folded[:] = _prune_nested(model3d, folded)
            return out
        where = " > ".join(f"{n}({type(m).__name__}, {d}-D in)" for n, m, d in chain)
        if chain and isinstance(chain[-1][1], INFLATED_TYPES):
            name, module, _ = chain[-1]
            raise InflationError(f"inflated layer {name!r} ({type(module).__name__}) failed on the "
                                 f"probe clip {tuple(clip.shape)}: {exc} (is probe_size "
                                 f"{clip.shape[-1]} too small for this network?)") from exc
        target = next(((n, m) for n, m, d in reversed(chain) if d == 5 and not is_folded(m)), None)
        if target is None:
            name, module = (chain[-1][0], chain[-1][1]) if chain else (_ROOT, model3d)
            raise InflationError(f"cannot inflate: layer {name!r} ({type(module).__name__}) fails "
                                 f"on clips even when run frame by frame ({type(exc).__name__}: "
                                 f"{exc}); active modules: {where}") from exc
        set_forward(target[1], folded_forward, target[0])
        folded.append(target[0])
    raise InflationError("inflation probe did not converge")  # unreachable


# --------------------------------------------------------------------------------------------
# (2) Check: a static clip must give the 2-D output; fold the innermost modules whose
# input matches but whose output does not


def _mismatch(x3: Any, x2: Any) -> float:
    """Relative max error of a 3-D tensor against the 2-D one: equal shapes, or ``[B,C,T,...]``
    against ``[B,C,...]`` for every t. ``inf`` when not comparable."""
    if not (torch.is_tensor(x3) and torch.is_tensor(x2)):
        return float("inf")
    if x3.shape != x2.shape:
        if not (x3.dim() == x2.dim() + 1 >= 3 and x3.shape[:2] + x3.shape[3:] == x2.shape):
            return float("inf")
        x2 = x2.unsqueeze(2)
    if x3.numel() == 0:
        return 0.0
    x3, x2 = x3.double(), x2.double()
    diff = (x3 - x2).abs().max().item()
    scale = x2.abs().max().item()
    return 0.0 if diff == 0 else diff / scale if scale > 0 else float("inf")


def _record(model: nn.Module, x: torch.Tensor) -> tuple[Any, dict[str, list[list[Any]]]]:
    """``model(x)`` and, per module name, per call: [first positional tensor input, tensor
    output] (cloned: the in-place activations that follow would change them)."""
    calls: dict[str, list[list[Any]]] = {}
    handles = []

    def pre(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x0 = args[0] if args and torch.is_tensor(args[0]) else None
            calls.setdefault(name, []).append([None if x0 is None else x0.clone(), None])
        return hook

    def post(name: str):
        def hook(module: nn.Module, args: tuple, out: Any) -> None:
            if torch.is_tensor(out):
                calls[name][-1][1] = out.clone()
        return hook

    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(pre(name or _ROOT)))
        handles.append(module.register_forward_hook(post(name or _ROOT)))
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
        reset_folds()
    return out, calls


def _culprits(calls2: dict[str, list[list[Any]]], work3d: nn.Module,
              clip: torch.Tensor) -> dict[str, str]:
    """The innermost modules whose input on the clip matches their input on the frame (``calls2``:
    the 2-D network's record) but whose output does not, with a description of the difference.
    Inside a folded module tensors are ``[B*T,...]``: not comparable, so never culprits."""
    calls3 = _record(work3d, clip)[1]
    found: dict[str, str] = {}
    for name, c3 in calls3.items():
        for (x3, y3), (x2, y2) in zip(c3, calls2.get(name, [])):
            if y2 is None or _mismatch(x3, x2) > _MATCH_RTOL:
                continue
            err = _mismatch(y3, y2)
            if err > _MATCH_RTOL:
                found[name] = (f"relative error {err:.3g}, output "
                               f"{tuple(y3.shape) if y3 is not None else None} for a clip vs "
                               f"{tuple(y2.shape)} for a frame")
                break
    return {n: d for n, d in found.items() if not any(_inside(o, n) for o in found)}


# --------------------------------------------------------------------------------------------
# Folding by name (a plan's ``folded``, and the search above)


def _submodule(model: nn.Module, name: str) -> nn.Module:
    return model if name in (_ROOT, "") else model.get_submodule(name)


def _apply_folds(model3d: nn.Module, names: list[str]) -> None:
    for name in names:
        try:
            module = _submodule(model3d, name)
        except AttributeError:
            raise InflationError(f"cannot fold {name!r}: the model has no such submodule") from None
        set_forward(module, folded_forward, name)


def _inside(name: str, ancestor: str) -> bool:
    """``name`` is a strict descendant of ``ancestor`` (dotted module names, root ``<root>``)."""
    return name != ancestor and (ancestor == _ROOT or name.startswith(ancestor + "."))


def _prune_nested(model3d: nn.Module, folded: list[str]) -> list[str]:
    """Un-fold modules inside a folded ancestor: they only ever see folded 4-D input there."""
    keep = []
    for name in folded:
        if any(_inside(name, other) for other in folded):
            unset_forward(_submodule(model3d, name))
        else:
            keep.append(name)
    return keep


__all__ = ["InflationError", "InflationReport", "Init", "inflate", "inflate_with_report",
           "inflate_from_plan", "InflatedConv3d", "InflatedConv3dSame", "InflatedBatchNorm3d", "InflatedMaxPool3d",
           "InflatedAvgPool3d", "InflatedAdaptiveAvgPool3d", "InflatedAdaptiveMaxPool3d",
           "InflatedDropout3d"]
