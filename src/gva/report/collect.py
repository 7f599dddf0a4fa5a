"""Reading finished runs: ``dvc exp show --json`` output or run directories -> :class:`Run` s.

A :class:`Run` is one finished pipeline run: its flattened params (``{"train": {"seed": 0}}``
-> ``{"train.seed": 0}``) and the evaluate stage's ``metrics/metrics.json``. Input that does not
have the expected shape is a :class:`~gva.errors.ReportError` naming the file (or the input) and
what is wrong; nothing here indexes into parsed data without checking its type first.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gva.errors import ReportError

METRICS_FILE = "metrics/metrics.json"
PREDICTIONS_FILE = "metrics/predictions.csv"
EXP_SHOW = "`dvc exp show --json` output"


@dataclass(frozen=True)
class Run:
    """One finished pipeline run: a name, its flattened params and its metrics.json content."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    rev: str = ""
    #: ``metrics/predictions.csv`` as arrays (:func:`gva.report.predictions.read_predictions`), if known
    predictions: dict | None = field(default=None, compare=False, repr=False)


def flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists are kept as values."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def _kind(value: Any) -> str:
    """``a list``, ``a str`` ... for messages."""
    name = {dict: "mapping", list: "list", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__)
    return f"an {name}" if name[0] in "aeiou" else f"a {name}"


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str,
           default: Any) -> Any:
    """``obj[key]``, or ``default`` when it is missing or falsy (null, empty); a value of
    another type than ``kind`` is a :class:`ReportError` saying where."""
    value = obj.get(key) or default
    if not isinstance(value, kind):
        expected = "a list" if kind is list else "a mapping" if kind is dict else "a string"
        raise ReportError(f"{where}: {key!r} is {_kind(value)}, not {expected}")
    return value


def _params_of(data: Mapping[str, Any], where: str) -> dict[str, Any]:
    params = _field(data, "params", dict, where, {})
    params = _field(params, "params.yaml", dict, f"{where}: params", {})
    return flatten(_field(params, "data", dict, f"{where}: params: params.yaml", {}))


def _metrics_of(data: Mapping[str, Any], where: str) -> dict[str, Any] | None:
    entry = _field(_field(data, "metrics", dict, where, {}), METRICS_FILE, dict,
                   f"{where}: metrics", {})
    metrics = entry.get("data")
    return metrics if isinstance(metrics, dict) and "delta" in metrics else None


def runs_from_exp_show(exp_show: Any, include_workspace: bool = False,
                       include_commits: bool = True,
                       source: str = EXP_SHOW) -> tuple[list[Run], list[str]]:
    """Finished runs in ``dvc exp show --json`` output (DVC 3.x) and notes on what was skipped.

    The output is a list of commits (the first is usually ``workspace``); each commit has
    ``data`` (params, metrics) and ``experiments``: a list of ``{"name", "executor", "revs"}``
    groups whose ``revs[0]`` is the experiment. Experiments still queued or running, failed,
    or without ``metrics/metrics.json`` are skipped and listed in the notes. Anything not of
    that shape is a :class:`ReportError` that starts with ``source`` (the file it came from).
    """
    if not isinstance(exp_show, list):
        raise ReportError(f"{source}: expected the JSON list printed by `dvc exp show --json`, "
                          f"got {_kind(exp_show)}")
    runs: list[Run] = []
    notes: list[str] = []
    for i, commit in enumerate(exp_show):
        if not isinstance(commit, dict):
            raise ReportError(f"{source}: item {i} is {_kind(commit)}, not a commit mapping")
        where = f"{source}: item {i}"
        rev = _field(commit, "rev", str, where, "")
        where = f"{source}: commit {rev or i}"
        data = _field(commit, "data", dict, where, {})
        is_ws = rev == "workspace"
        if (include_workspace if is_ws else include_commits):
            metrics = _metrics_of(data, f"{where}: data")
            if metrics is not None:
                name = _field(commit, "name", str, where, "") or rev
                runs.append(Run(name, _params_of(data, f"{where}: data"), metrics, rev))
        for j, group in enumerate(_field(commit, "experiments", list, where, [])):
            gwhere = f"{where}: experiment {j}"
            if not isinstance(group, dict):
                raise ReportError(f"{gwhere} is {_kind(group)}, not a mapping")
            name = _field(group, "name", str, gwhere, "")
            gwhere = f"{where}: experiment {name or j}"
            state = _field(_field(group, "executor", dict, gwhere, {}), "state", str,
                           f"{gwhere}: executor", "") or "success"
            revs = _field(group, "revs", list, gwhere, [])
            if state != "success" or not revs:
                notes.append(f"{name or '?'}: {state}, skipped")
                continue
            exp = revs[0]
            if not isinstance(exp, dict):
                raise ReportError(f"{gwhere}: 'revs' item 0 is {_kind(exp)}, not a mapping")
            exp_rev = _field(exp, "rev", str, gwhere, "")
            name = name or _field(exp, "name", str, gwhere, "") or exp_rev
            exp_data = _field(exp, "data", dict, gwhere, {})
            metrics = _metrics_of(exp_data, f"{gwhere}: data") if not exp.get("error") else None
            if metrics is None:
                notes.append(f"{name}: no {METRICS_FILE}, skipped")
                continue
            runs.append(Run(name, _params_of(exp_data, f"{gwhere}: data"), metrics, exp_rev))
    return runs, sorted(notes)


def run_from_path(path: str | Path) -> Run:
    """A run directory (``DIR/params.yaml`` and ``DIR/metrics/metrics.json``) or a metrics.json
    file whose run root (its parent or grandparent) holds ``params.yaml``. Named by the root's
    directory name."""
    path = Path(path)
    metrics_path = path / METRICS_FILE if path.is_dir() else path
    if not metrics_path.is_file():
        raise ReportError(f"{metrics_path}: no metrics file")
    root = next((d for d in (metrics_path.parent, metrics_path.parent.parent)
                 if (d / "params.yaml").is_file()), None)
    if root is None:
        raise ReportError(f"{metrics_path}: no params.yaml in its directory or the one above")
    params = _read(root / "params.yaml", "YAML") or {}
    if not isinstance(params, dict):
        raise ReportError(f"{root / 'params.yaml'}: expected a mapping of params, "
                          f"got {_kind(params)}")
    metrics = _read(metrics_path, "JSON")
    if not isinstance(metrics, dict) or "delta" not in metrics:
        raise ReportError(f"{metrics_path}: not a gva evaluate metrics.json (no 'delta')")
    preds = root / PREDICTIONS_FILE
    from gva.report.predictions import read_predictions

    run = Run(root.resolve().name, flatten(params), metrics)
    if not preds.is_file():
        return run
    predictions = read_predictions(preds)
    check_predictions(run, predictions, str(preds))
    return replace(run, predictions=predictions)


def check_predictions(run: Run, predictions: Mapping[str, Any], where: str) -> None:
    """``predictions`` must be ``run``'s own: the number of images its metrics give (``n_test``)
    and, for every model the file holds (``pred_<tag>``), the top-1 its metrics give
    (``model<tag>.top1``), recomputed from the file. A stale file (another run's, an older one) or
    an edited one changes the comparisons, so it is a :class:`ReportError` naming ``where``. (An
    edit that keeps every model's number of correct images is not caught.)"""
    labels = predictions["label"]
    n = int(labels.size)
    recorded_n = run.metrics.get("n_test")
    if isinstance(recorded_n, (int, float)) and int(recorded_n) != n:
        raise ReportError(f"{where}: does not reproduce run {run.name}'s metrics: it holds {n} test images, the "
                          f"run's n_test is {int(recorded_n)}")
    checked = 0
    for col in sorted(c for c in predictions if c.startswith("pred_")):
        model = run.metrics.get(f"model{col[len('pred_'):]}")
        recorded = model.get("top1") if isinstance(model, dict) else None
        if not isinstance(recorded, (int, float)) or isinstance(recorded, bool):
            continue
        right = int((predictions[col] == labels).sum())
        if n == 0 or round(float(recorded) * n) != right or abs(float(recorded) - right / n) > 1e-6:
            raise ReportError(f"{where}: does not reproduce run {run.name}'s metrics: model{col[len('pred_'):]} "
                              f"top-1 recomputed from it is {right / max(n, 1):.4f} ({right}/{n}), the run's "
                              f"metrics.json has {float(recorded):.4f}; it is another run's or an edited file "
                              "(delete it to read the run's own again)")
        checked += 1
    if not checked:
        raise ReportError(f"{where}: cannot be tied to run {run.name}: its metrics.json gives no top-1 for the "
                          f"models in the file ({', '.join(c for c in predictions if c.startswith('pred_'))})")


def attach_predictions(runs: Sequence[Run], repo: str | Path = ".",
                       store: str | Path | None = None) -> tuple[list[Run], list[str]]:
    """``runs`` with their ``predictions.csv`` attached where it can be found, and notes on the rest.

    Looked up in ``store/<run name>.csv`` first, then in the run's revision of ``repo``: in git
    (``git show <rev>:metrics/predictions.csv``: runs made while dvc.yaml kept it git-tracked), else
    through DVC (``dvc.api.read``: an output in DVC's cache, which dvc.lock at that revision points
    to, read from the local cache or else the default remote). A file found either way is also
    written to ``store`` when given, so a report can be regenerated later from the committed store
    without the experiment refs (which live only in the clones that have them). Every file must
    reproduce its run's metrics (:func:`check_predictions`): a stored file is tied to its run by
    them, not by its name alone.
    """
    from gva.io import atomic_path
    from gva.report.predictions import parse_predictions, read_predictions

    out, notes = [], []
    store_dir = Path(store) if store is not None else None
    if store_dir is not None and store_dir.exists() and not store_dir.is_dir():
        raise ReportError(f"--predictions {store_dir}: not a directory")
    for run in runs:
        if run.predictions is not None:
            out.append(run)
            continue
        cached = store_dir / f"{run.name}.csv" if store_dir is not None else None
        if cached is not None and cached.is_file():
            predictions = read_predictions(cached)
            check_predictions(run, predictions, str(cached))
            out.append(replace(run, predictions=predictions))
            continue
        text = _read_at_rev(repo, run.rev, PREDICTIONS_FILE) if run.rev else None
        if text is None:
            notes.append(f"{run.name}: no {PREDICTIONS_FILE}")
            out.append(run)
            continue
        where = f"{run.name}: {PREDICTIONS_FILE} at {run.rev}"
        predictions = parse_predictions(text, where)
        check_predictions(run, predictions, where)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(cached) as tmp_path:
                tmp_path.write_text(text)
        out.append(replace(run, predictions=predictions))
    return out, notes


def _read_at_rev(repo: str | Path, rev: str, path: str) -> str | None:
    """``path`` as of git revision ``rev`` of ``repo``: git-tracked (``git show``, no DVC import), or
    a DVC output (``dvc.api.read``); None when neither has it (or ``repo``/``rev`` do not exist)."""
    text = _git_show(repo, rev, path)
    return text if text is not None else _dvc_read(repo, rev, path)


def _dvc_read(repo: str | Path, rev: str, path: str) -> str | None:
    """``dvc.api.read(path, repo, rev)``, or None when the repo, the rev, the output or its data (in
    the cache or on the remote) is missing."""
    from dvc.api import read
    from dvc.exceptions import DvcException

    try:
        return read(path, repo=str(Path(repo).resolve()), rev=rev)
    except (DvcException, OSError):
        return None


def _git_show(repo: str | Path, rev: str, path: str) -> str | None:
    """``git show rev:path`` in ``repo``, or None when git, the repo, the rev or the file is missing."""
    try:
        done = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=repo, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def parse_json(text: str, source: str) -> Any:
    """``json.loads(text)``; text that does not parse is a :class:`ReportError` naming
    ``source``."""
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise ReportError(f"{source}: not valid JSON: {exc}") from exc


def _read(path: Path, kind: str) -> Any:
    """Parse ``path`` as ``kind`` ("JSON" or "YAML"); a file that does not parse is a
    :class:`ReportError` naming it."""
    if kind == "JSON":
        return parse_json(path.read_text(), str(path))
    from gva.config import load_yaml  # YAML 1.2 floats: DVC writes -S lr=1.0e-05 as `lr: 1e-05`

    try:
        return load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ReportError(f"{path}: not valid {kind}: {exc}") from exc


def read_exp_json(path: str | Path) -> Any:
    """A file holding ``dvc exp show --json`` output, parsed (not yet checked)."""
    return _read(Path(path), "JSON")


def dvc_exp_show(repo: str | Path = ".") -> Any:
    """Run ``dvc exp show --json`` in ``repo`` and parse it."""
    out = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, check=True,
                         capture_output=True, text=True).stdout
    return parse_json(out, f"`dvc exp show --json` in {repo}")


__all__ = ["METRICS_FILE", "PREDICTIONS_FILE", "attach_predictions", "check_predictions", "Run", "flatten", "runs_from_exp_show", "run_from_path",
           "parse_json", "read_exp_json", "dvc_exp_show"]
