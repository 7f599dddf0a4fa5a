"""Finding the modules of an inflated network that must run time-folded (:mod:`gva.models.inflate`).

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
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

from gva.errors import InflationError
from gva.models.convert import ROOT, convert_tree
from gva.models.fold import INFLATED_TYPES, folded_forward, is_folded, reset_folds, set_forward, unset_forward

# Relative tolerance of the float64 static-clip check, and of "this tensor matches" when
# locating culprits. Rounding gives ~1e-14; a module with the wrong semantics ~1e-5 and more.
_CHECK_RTOL = 1e-9
_MATCH_RTOL = 1e-10  # tighter: a culprit whose own error is small must still be seen
_ROOT = "<root>"  # the name of the whole model in reports and plans


# --------------------------------------------------------------------------------------------
# Finding the modules to fold, on a float64 copy: probe (1), then check (2)


def find_folds(model2d: nn.Module, time_kernel: int, last_n: int | None, probe_size: int,
                check: bool) -> list[str]:
    """The modules of the inflated ``model2d`` to run time-folded (probe, then check)."""
    # One float64 CPU copy: the check must resolve 1e-9, and the caller's model is never run. It
    # serves as the 2-D reference (recorded module by module), then is inflated in place.
    work = copy.deepcopy(model2d).to("cpu", torch.float64).eval()
    gen = torch.Generator().manual_seed(0)  # never touch the global RNG (training seeds it)
    frame = torch.randn(1, 3, probe_size, probe_size, generator=gen, dtype=torch.float64)
    clip = frame.unsqueeze(2).expand(-1, -1, 2, -1, -1).contiguous()
    out2: Any = None
    calls2: dict[str, list[list[Any]]] = {}
    if check:
        try:
            with torch.no_grad():
                out2, calls2 = _record(work, frame)
        except Exception as exc:
            with torch.no_grad():
                chain = _traced_forward(work, frame)[2]  # again, to name the failing layer
            name, module = (chain[-1][0], chain[-1][1]) if chain else (ROOT, work)
            raise InflationError(f"the 2-D model fails on a {probe_size}px probe image in layer "
                                 f"{name!r} ({type(module).__name__}: {type(exc).__name__}: "
                                 f"{exc}); pass a probe_size it accepts") from exc
    convert_tree(work, time_kernel, "centre", last_n)  # centre: static-clip equivalent
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
                    ) -> tuple[Any, Exception | None, list[tuple[str, nn.Module, int]]]:
    """Run ``model(x)``; on failure also return the chain of modules active when it raised."""
    active: list[tuple[str, nn.Module, int]] = []
    handles = []

    def pre(name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x0 = args[0] if args else None
            active.append((name or ROOT, module, x0.dim() if torch.is_tensor(x0) else -1))
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
            name, module = (chain[-1][0], chain[-1][1]) if chain else (ROOT, model3d)
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
        handles.append(module.register_forward_pre_hook(pre(name or ROOT)))
        handles.append(module.register_forward_hook(post(name or ROOT)))
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
    return model if name in (ROOT, "") else model.get_submodule(name)


def apply_folds(model3d: nn.Module, names: list[str]) -> None:
    for name in names:
        try:
            module = _submodule(model3d, name)
        except AttributeError:
            raise InflationError(f"cannot fold {name!r}: the model has no such submodule") from None
        set_forward(module, folded_forward, name)


def _inside(name: str, ancestor: str) -> bool:
    """``name`` is a strict descendant of ``ancestor`` (dotted module names, root ``<root>``)."""
    return name != ancestor and (ancestor == ROOT or name.startswith(ancestor + "."))


def _prune_nested(model3d: nn.Module, folded: list[str]) -> list[str]:
    """Un-fold modules inside a folded ancestor: they only ever see folded 4-D input there."""
    keep = []
    for name in folded:
        if any(_inside(name, other) for other in folded):
            unset_forward(_submodule(model3d, name))
        else:
            keep.append(name)
    return keep


__all__ = ["find_folds", "apply_folds"]
