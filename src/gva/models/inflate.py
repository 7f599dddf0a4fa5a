"""Generic 2-D -> 3-D inflation of an image classifier (I3D style), by walking its modules.

The inflated network takes clips ``[B,3,T,H,W]`` and keeps the 2-D module names, so its
``state_dict`` has the 2-D keys (only inflated conv weights gain a time axis). Two steps:

* :mod:`gva.models.convert` -- each ``Conv2d`` (timm's ``Conv2dSame`` too), ``BatchNorm2d``
  (running statistics copied), pool and timm global pool becomes its 3-D counterpart; the last
  ``last_n`` convs get temporal kernel ``time_kernel`` (``init`` centre or mean), the rest 1;
* :mod:`gva.models.fold_search` -- on float64 CPU copies (the model passed in is never run), a
  probe and a static-clip check find the modules that must run time-folded (``[B,C,T,H,W] ->
  [B*T,C,H,W]`` around them, :mod:`gva.models.fold`); one that still fails folded is refused with
  an :class:`InflationError` naming it.

So static-clip equivalence holds, checked, for ``init="centre"`` and any ``last_n``. With
``init="mean"`` and zero temporal padding it holds only away from the clip edges: the first/last
``kt // 2`` frames see zeros in place of neighbours, so their activations are scaled by (frames
seen)/kt; for T=1 every temporal conv output is divided by ``kt``.

:meth:`InflationReport.to_dict` is a *plan*: :func:`inflate_from_plan` rebuilds the same 3-D
network from it (same conversions, same folded modules), without probe, check or random numbers
-- for loading saved weights.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from gva.errors import InflationError
from gva.models.convert import InflationReport, Init, check_args, convert_tree
from gva.models.fold_search import apply_folds, find_folds

# --------------------------------------------------------------------------------------------
# Building and the public API


def _build(model2d: nn.Module, time_kernel: int, init: str, last_n: int | None,
           folded: list[str]) -> tuple[nn.Module, InflationReport]:
    """A converted deep copy of ``model2d`` with the ``folded`` modules run time-folded."""
    model3d = copy.deepcopy(model2d)
    report = convert_tree(model3d, time_kernel, init, last_n)
    apply_folds(model3d, folded)
    report.folded = list(folded)
    _transfer_check(model2d, model3d, report)
    # plain attribute: travels with the module, not state_dict (nn.Module's typing allows tensors, modules)
    model3d.inflation_report = report  # type: ignore[assignment]
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
                        last_n: int | None = None, probe_size: int = 64,
                        check: bool = True) -> tuple[nn.Module, InflationReport]:
    """Inflate a copy of ``model2d`` (left untouched) to a clip model; see the module docstring.

    ``probe_size`` is the side of the probe image used to find the modules to fold and to verify
    static-clip equivalence (``check``); it must be a size the 2-D model accepts. Without
    ``check`` only modules that raise on 5-D input are found.
    """
    check_args(model2d, time_kernel, init, last_n)
    folded = find_folds(model2d, time_kernel, last_n, probe_size, check)
    return _build(model2d, time_kernel, init, last_n, folded)


def inflate(model2d: nn.Module, time_kernel: int = 3, init: Init = "centre",
            last_n: int | None = None, probe_size: int = 64) -> nn.Module:
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
    check_args(model2d, time_kernel, init, last_n)
    model3d, report = _build(model2d, time_kernel, init, last_n, list(plan["folded"]))
    for key in ("temporal_convs", "spatial_only_convs", "converted"):
        ours, theirs = getattr(report, key), plan[key]
        theirs = dict(theirs) if isinstance(ours, dict) else list(theirs)
        if ours != theirs:
            if isinstance(ours, dict):
                assert isinstance(theirs, dict)  # made a dict above
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



__all__ = ["InflationError", "InflationReport", "Init", "inflate", "inflate_with_report", "inflate_from_plan"]
