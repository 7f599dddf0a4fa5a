"""``train.freeze``: keep the leading part of a network fixed while the rest trains.

``train.freeze: NAME`` freezes everything registered before the module ``NAME`` (a dotted name as
in the ``state_dict`` keys, e.g. ``blocks.3`` for timm's EfficientNets, ``layer3`` for torchvision's
ResNets, ``features.14`` for VGG):

* every parameter before ``NAME``'s first parameter in registration (``state_dict``) order gets
  ``requires_grad = False``, so backward stops at ``NAME`` and the optimiser never holds it;
* every module before ``NAME`` in ``named_modules()`` order (its ancestors excepted) is held in
  eval mode while training (:func:`train_mode`): BatchNorm running statistics stay as they were,
  and dropout / drop-path are off, so the frozen part computes one fixed function.

Why a module name rather than a count of stages (mmaction2's ``frozen_stages``, which works because
its ResNet3d knows its own stages): gva's backbones are any torchvision / timm model and a "stage"
means something different in each (timm's ``blocks.i``, torchvision's ``layerN`` or ``features``
indices), whereas names are what checkpoints and ``state_dict`` show, and inflation keeps them (it
maps 2-D weights by name, as mmaction2's inflation does): the same ``NAME`` freezes the same layers
of the 3-D model. Registration order is the forward order for the CNNs gva uses (stem, stages,
head); a model that registers a layer before the layers it follows would have it frozen too.

In a 3-D model, a frozen conv with a temporal kernel never learns its temporal weights (with
``inflate.init: centre`` it stays a 2-D conv run at 3-D cost): :meth:`FreezeReport.temporal_warning`
says so; keep ``inflate.last_n`` within the trainable part.

``None`` freezes nothing and changes nothing (the default).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch.nn as nn

from gva.errors import ConfigError

# Marks a module held in eval mode by train_mode (an instance attribute: not in the state_dict,
# travels with deepcopy; a checkpoint reload is unfrozen until freeze_before runs again).
_FROZEN = "_gva_frozen"


@dataclass(frozen=True)
class FreezeReport:
    """What :func:`freeze_before` froze (``before`` None: nothing)."""

    before: str | None
    frozen_params: int        # parameter elements with requires_grad False
    trainable_params: int
    frozen_tensors: int
    frozen_batchnorms: int    # BatchNorm layers whose running statistics stay fixed
    frozen_temporal_convs: int = 0   # 3-D: frozen convs with a temporal kernel (it never learns)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        if self.before is None:
            return f"nothing frozen ({self.trainable_params:,} parameters train)"
        total = self.frozen_params + self.trainable_params
        return (f"frozen before {self.before!r}: {self.frozen_params:,} of {total:,} parameters "
                f"({self.frozen_tensors} tensors, {self.frozen_batchnorms} BatchNorm layers in eval mode); "
                f"{self.trainable_params:,} train")

    def temporal_warning(self) -> str | None:
        """Why freezing temporally inflated convs wastes time, or None when none are frozen."""
        if not self.frozen_temporal_convs:
            return None
        return (f"train.freeze freezes {self.frozen_temporal_convs} convolutions with a temporal kernel: "
                "their temporal weights stay as inflated (with init centre, a 2-D conv run at the cost "
                "of a 3-D one); set inflate.last_n to at most the number of convolutions from "
                f"{self.before!r} on")


def freeze_names(model: nn.Module, depth: int = 2) -> list[str]:
    """Module names up to ``depth`` dots that hold parameters: the choices an error lists."""
    return [n for n, m in model.named_modules()
            if n and n.count(".") < depth and next(m.parameters(), None) is not None]


def _boundary_error(model: nn.Module, name: str, key: str, problem: str) -> ConfigError:
    names = freeze_names(model)
    return ConfigError(f"{key}: {name!r} {problem}; name a module holding parameters, e.g. one of "
                       f"{', '.join(names)} (or a deeper module name), or null to train every layer")


def freeze_before(model: nn.Module, name: str | None, key: str = "train.freeze") -> FreezeReport:
    """Freeze, in place, everything of ``model`` registered before module ``name`` (module docstring).

    Raises :class:`ConfigError` naming ``key`` and listing valid names when ``name`` is not a module
    of ``model`` holding parameters. Call before wrapping the model (DDP, compile) and before
    building the optimiser.
    """
    params = list(model.named_parameters())
    if name is None:
        return FreezeReport(None, 0, sum(p.numel() for _, p in params if p.requires_grad),
                            sum(1 for _, p in params if not p.requires_grad), 0)
    modules = dict(model.named_modules())
    if name not in modules or name == "":
        raise _boundary_error(model, name, key, "is not a module of this model")
    first = next(modules[name].parameters(), None)
    if first is None:
        raise _boundary_error(model, name, key, "holds no parameters")
    frozen_tensors = frozen = 0
    for _, p in params:
        if p is first:
            break
        p.requires_grad_(False)
        frozen_tensors += 1
        frozen += p.numel()
    batchnorms = temporal = 0
    for n, m in model.named_modules():
        if n == name:
            break
        if n == "" or name.startswith(n + "."):
            continue  # an ancestor of the boundary: its later children train
        setattr(m, _FROZEN, True)
        batchnorms += isinstance(m, nn.modules.batchnorm._BatchNorm)
        temporal += isinstance(m, nn.Conv3d) and m.kernel_size[0] > 1
    trainable = sum(p.numel() for _, p in params if p.requires_grad)
    return FreezeReport(name, frozen, trainable, frozen_tensors, batchnorms, temporal)


def train_mode(model: nn.Module) -> nn.Module:
    """``model.train()``, with the modules :func:`freeze_before` froze kept in eval mode."""
    model.train()
    for m in model.modules():
        if getattr(m, _FROZEN, False):
            m.eval()
    return model


__all__ = ["FreezeReport", "freeze_before", "freeze_names", "train_mode"]
