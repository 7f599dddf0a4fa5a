"""Presets as files: ``params/<name>.yaml`` -> the ``dvc exp run -S`` overrides it stands for.

A preset is a partial params mapping: nested YAML with params.yaml's keys, only those it sets, and
a comment header saying what it is for and where it was measured (the comments are the one place
its values are explained). Paths to data are never in a preset: they are arguments
(``data.source``). The presets of this repository:

* ``offline`` -- the offline run (``bash scripts/repro.sh --offline DATA_DIR``);
* ``grid-scratch`` -- the grids' from-scratch CPU settings (``gva grid``'s default ``--base``);
* ``paper`` -- the paper-table experiment's CPU regime (``gva grid paper``).

:func:`load` flattens one into ``key=value`` strings (YAML flow values, as
:func:`gva.protocol.format_value` writes them), in the file's order, after checking it with
:mod:`gva.config` applied to params.yaml: an unknown key or a bad value is a
:class:`~gva.errors.ConfigError` naming the preset file and the key. ``gva preset NAME [--lines]``
prints them::

    dvc exp run $(gva preset offline) -S data.source=DATA_DIR dvc.yaml

Names resolve in ``params/`` of the working directory (the repository root, as for params.yaml);
anything with a ``/`` or a ``.yaml`` suffix is a file path.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from gva.config import config_from_dict, load_yaml
from gva.errors import ConfigError
from gva.protocol import format_value

#: Where named presets live, relative to the repository root (the working directory).
PRESETS_DIR = Path("params")
#: Keys a preset may not set: paths to data are arguments, not settings.
ARGUMENT_KEYS = ("data.source",)


def path_of(name_or_path: str | Path) -> Path:
    """``offline`` -> ``params/offline.yaml``; a path (a ``/`` or a ``.yaml``/``.yml`` suffix) as is."""
    text = str(name_or_path)
    if "/" in text or text.endswith((".yaml", ".yml")):
        return Path(text)
    return PRESETS_DIR / f"{text}.yaml"


def known() -> list[str]:
    """The names of the presets in :data:`PRESETS_DIR`, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")) if PRESETS_DIR.is_dir() else []


def read(name_or_path: str | Path) -> dict[str, Any]:
    """The preset's mapping as written (nested), checked to be one; not yet validated."""
    path = path_of(name_or_path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        names = ", ".join(known()) or "none"
        raise ConfigError(f"{path}: no such preset (presets in {PRESETS_DIR}/: {names})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the preset ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{path}: a preset is a mapping of params sections (data:, svd:, train: ...), "
                          f"each a mapping of keys")
    return raw


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 0.01}}`` -> ``{"train.lr": 0.01}``, in the mapping's order."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def lines(values: Mapping[str, Any]) -> list[str]:
    """Flattened values -> ``key=value`` strings, as ``dvc exp run -S`` takes them (a value that
    has no such spelling, a non-finite float: a :class:`ConfigError` naming the key)."""
    out = []
    for key, value in values.items():
        try:
            out.append(f"{key}={format_value(value)}")
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    return out


def apply(params: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A copy of the nested ``params`` with ``key=value`` overrides applied in order (the later
    wins), each value parsed as YAML as ``dvc exp run -S`` does."""
    out = copy.deepcopy(dict(params))
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{item!r}: an override is key=value")
        try:
            value = load_yaml(text) if text else ""
        except yaml.YAMLError:
            value = text
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return out


def read_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """The params file's mapping (``{}`` when it does not exist: the config's defaults)."""
    path = Path(path)
    if not path.is_file():
        return {}
    raw = load_yaml(path.read_text(encoding="utf-8"))
    return raw if isinstance(raw, dict) else {}


def check(overrides: Iterable[str], params: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``params`` with ``overrides`` applied, validated by :mod:`gva.config`; an error names
    ``where`` (a preset file, an experiment) and the key. Returns the applied mapping."""
    try:
        applied = apply(params, overrides)
        config_from_dict(applied)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    return applied


def load(name_or_path: str | Path, params: str | Path | Mapping[str, Any] = "params.yaml") -> list[str]:
    """The preset's ``key=value`` overrides in the file's order, checked against ``params`` (a
    params file, or a mapping; a missing file: the config's defaults). An unknown key, a bad
    value or a path to data is a :class:`ConfigError` naming the preset file and the key."""
    path = path_of(name_or_path)
    values = flatten(read(path))
    for key in ARGUMENT_KEYS:
        if key in values:
            raise ConfigError(f"{path}: {key} is set: a path to data is an argument, not part of a preset")
    try:
        out = lines(values)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    check(out, params if isinstance(params, Mapping) else read_params(params), str(path))
    return out


def main(argv: list[str] | None = None) -> int:
    """``gva preset NAME|FILE [--lines]``: print the ``dvc exp run`` overrides of a preset file."""
    assert main.__doc__ is not None  # the description
    parser = argparse.ArgumentParser(prog="gva preset", description=main.__doc__.splitlines()[0],
                                     epilog=f"presets in {PRESETS_DIR}/: {', '.join(known()) or 'none'}")
    parser.add_argument("preset", metavar="NAME|FILE", help=f"a name in {PRESETS_DIR}/ or a YAML file")
    parser.add_argument("--lines", action="store_true", help="one key=value per line (for scripts)")
    parser.add_argument("--params", default="params.yaml",
                        help="the params file it is checked against (default: params.yaml)")
    args = parser.parse_args(argv)
    try:
        values = load(args.preset, args.params)
    except ConfigError as exc:
        print(f"gva preset: error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(values) if args.lines else " ".join(a for v in values for a in ("-S", v)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
