"""The reference code's evaluation protocol as a set of knobs: the one place that defines it.

gva's defaults are its own protocol. The published reference run differs in the ways listed in
:data:`KNOBS` (read from its public code); each is a params override here, so the reference
protocol, or it with any knob set back to gva's, is one ``dvc exp run``:

    dvc exp run $(gva protocol reference) dvc.yaml
    dvc exp run $(gva protocol reference --without geometry,select) dvc.yaml

``gva grid --audit`` (:mod:`gva.grid`) queues the leave-one-out grid from this module, and ``gva report``
names each run's *protocol variant* with :func:`variant_of`. The ``frame0`` knob is a way of
*scoring* (2-D on generated frame 0 instead of the original image): ``evaluate`` computes both
from the same models, so a run with it yields two variants, with and without it.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Knob:
    """One way the reference protocol differs from gva's."""

    name: str
    what: str                    # the reference's behaviour, in words
    reference: dict[str, Any]    # params overrides that turn it on (flattened keys)
    gva: dict[str, Any]          # gva's values (the defaults)
    key: str                     # the param whose value says whether a run has it on
    needs_pretrained: bool = False  # meaningful only with ImageNet weights (model.pretrained)


KNOBS: tuple[Knob, ...] = (
    Knob("geometry", "every frame stretched 16:9 (1024x576), then Resize + CenterCrop: the central "
         "56 % of the width, 1.78x wider", {"svd.geometry": "reference", "svd.width": 1024, "svd.height": 576},
         {"svd.geometry": "square", "svd.width": 224, "svd.height": 224}, "svd.geometry"),
    Knob("codec", "clips through an H.264 MP4 (crf 18, yuv420p) for training and scoring",
         {"svd.codec": "h264"}, {"svd.codec": "none"}, "svd.codec"),
    Knob("frame0", "2-D model scored on frame 0 of the generated test clip, not the original image",
         {"svd.first_frame": "generated", "evaluate.extra_protocols": ["frame0"]},
         {"svd.first_frame": "original", "evaluate.extra_protocols": []}, "evaluate.extra_protocols"),
    Knob("select", "best epoch chosen on the test set (both models)",
         {"train.select_on": "test"}, {"train.select_on": "val"}, "train.select_on"),
    Knob("bn_drop", "BatchNorm running statistics dropped at inflation",
         {"inflate.bn_stats": "drop"}, {"inflate.bn_stats": "copy"}, "inflate.bn_stats"),
    Knob("aug3d", "3-D model trained without augmentation (2-D with flip + shift)",
         {"train3d.augment": False}, {"train3d.augment": None}, "train3d.augment"),
    Knob("init", "3-D model initialised from ImageNet weights with a fresh head, not from the 2-D model",
         {"inflate.source": "imagenet"}, {"inflate.source": "train2d"}, "inflate.source", needs_pretrained=True),
)
KNOB_NAMES = tuple(k.name for k in KNOBS)
#: Every param some knob sets: together they name a run's protocol variant.
PROTOCOL_KEYS = tuple(sorted({key for k in KNOBS for key in (*k.reference, *k.gva)}))

#: The experiment that settles what CPU controls cannot: with a real generator, is the reported
#: gap a 3-D gain or a 2-D domain shift? Frame 0 is generated, and evaluate scores the 2-D model
#: on the original image, on generated frame 0 and on all frames averaged, all paired with the
#: 3-D model (``gva report``'s "3-D gain vs 2-D domain shift" table). Run it with the
#: ``train2d.frames: all`` control (``gva grid --preset shift --control "svd"``).
SHIFT = {"svd.first_frame": "generated", "evaluate.extra_protocols": ["frame0", "frames_mean"]}
PRESETS = ("reference", "gva", "shift")
#: Knobs that are a way of scoring, read from the same run both ways.
SCORING_KNOBS = ("frame0",)


def knob(name: str) -> Knob:
    """The knob called ``name``; an unknown name is a ``ValueError`` listing the known ones."""
    for k in KNOBS:
        if k.name == name:
            return k
    raise ValueError(f"unknown protocol knob {name!r}; known: {', '.join(KNOB_NAMES)}")


def overrides(preset: str, without: tuple[str, ...] = (), pretrained: bool = True) -> dict[str, Any]:
    """Params overrides (flattened key -> value) of ``preset`` (``reference``, ``gva`` or ``shift``).

    ``without`` sets those knobs back to gva's values; ``pretrained=False`` leaves out the knobs
    that need ImageNet weights (from scratch, the 3-D model can only start from the 2-D one).
    ``shift`` is gva's protocol plus :data:`SHIFT`.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown protocol preset {preset!r}; known: {', '.join(PRESETS)}")
    for name in without:
        knob(name)
    if preset == "shift":
        return {**overrides("gva"), **SHIFT}
    out: dict[str, Any] = {}
    for k in KNOBS:
        on = preset == "reference" and k.name not in without and (pretrained or not k.needs_pretrained)
        out.update(k.reference if on else k.gva)
    return out


def format_float(value: float) -> str:
    """A finite float spelled so that PyYAML (YAML 1.1), YAML 1.2 and ``dvc exp run -S`` (Hydra's
    override grammar) all read it back as the same float: the shortest round-trip digits
    (``repr``), with a ``.0`` in an exponent form's mantissa (``1e-05`` -> ``1.0e-05``), since YAML
    1.1 reads a float only with a dot (``1e-05`` would be the string ``'1e-05'``). Not finite:
    a ``ValueError`` (no spelling is a float to all three: YAML ``.inf``, Hydra ``inf``)."""
    if not math.isfinite(value):
        raise ValueError(f"{value!r}: a non-finite float has no spelling both YAML and dvc exp run -S read")
    text = repr(float(value))
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        text = f"{mantissa}.0e{exponent}"
    return text


def format_value(value: Any) -> str:
    """A value as ``dvc exp run -S`` parses it (YAML flow style); a float as :func:`format_float`
    spells it, so that it reads back as the same float."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, list):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def set_args(values: Mapping[str, Any]) -> list[str]:
    """``["-S", "k=v", ...]`` for ``dvc exp run``."""
    return [a for key, value in values.items() for a in ("-S", f"{key}={format_value(value)}")]


def _is_on(k: Knob, params: Mapping[str, Any]) -> bool:
    value = params.get(k.key, k.gva[k.key])
    if k.name == "frame0":
        return "frame0" in (value or [])
    return value == k.reference[k.key]


def knobs_on(params: Mapping[str, Any]) -> tuple[str, ...]:
    """The knobs a run (flattened params) has at the reference's values, in :data:`KNOBS` order."""
    return tuple(k.name for k in KNOBS if _is_on(k, params))


def applicable_knobs(params: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The knobs at least one of these runs (flattened params) has on, in :data:`KNOBS` order."""
    on = {name for p in params for name in knobs_on(p)}
    return tuple(k.name for k in KNOBS if k.name in on)


def variant_name(on: tuple[str, ...], applicable: tuple[str, ...] = KNOB_NAMES) -> str:
    """``gva protocol``, ``reference protocol``, ``reference, gva's geometry`` (leave-one-out), or
    ``gva + select`` (a few knobs on), by whichever is shorter to say."""
    off = tuple(n for n in applicable if n not in on)
    if not on:
        return "gva protocol"
    if not off:
        return "reference protocol"
    if len(off) <= len(on):
        return "reference, gva's " + " + ".join(off)
    return "gva + " + " + ".join(on)


def main(argv: list[str] | None = None) -> int:
    """``gva protocol {reference,gva,shift} [--without K,...] [--from-scratch] [--lines]``: print
    the ``dvc exp run`` overrides of a protocol preset."""
    assert main.__doc__ is not None  # the description
    parser = argparse.ArgumentParser(prog="gva protocol", description=main.__doc__.splitlines()[0],
                                     epilog="knobs: " + "; ".join(f"{k.name}: {k.what}" for k in KNOBS))
    parser.add_argument("preset", choices=PRESETS)
    parser.add_argument("--without", default="", metavar="K,...",
                        help="knobs set back to gva's values (leave-one-out)")
    parser.add_argument("--from-scratch", action="store_true",
                        help="model.pretrained is false: leave out knobs that need ImageNet weights")
    parser.add_argument("--lines", action="store_true", help="one key=value per line (for scripts)")
    args = parser.parse_args(argv)
    without = tuple(n for n in args.without.split(",") if n)
    try:
        values = overrides(args.preset, without, pretrained=not args.from_scratch)
    except ValueError as exc:
        parser.error(str(exc))
    if args.lines:
        print("\n".join(f"{k}={format_value(v)}" for k, v in values.items()))
    else:
        print(" ".join(set_args(values)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
