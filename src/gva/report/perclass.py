"""Per-class F1 and confusion matrices of declared runs, beside a reference run's own results.

Descriptive, not a comparison: a design file's ``per_class`` block names a run stem and, per
model, its predictions column and the reference run's model name::

    per_class:
      stem: r4-ref
      models:
        - {name: "2-D on SVD frame 0", column: pred_2d_frame0, reference: model2d}
        - {name: "3-D on the SVD clips", column: pred_3d, reference: model3d}

gva's numbers are per-class F1 averaged over the stem's seeds and the confusion matrix summed over
them, divided by the number of seeds (mean counts per seed); the reference's are read from its
``evaluation_results`` folder (``per_class_metrics.csv``, ``<model>_confusion.csv``), given to
``gva report --reference-results DIR``. Classes are label indices (sorted wnids in both).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gva.errors import ReportError


@dataclass(frozen=True)
class PerClassModel:
    name: str
    column: str
    reference: str


@dataclass(frozen=True)
class PerClassSpec:
    stem: str
    models: tuple[PerClassModel, ...]


def parse_spec(value: Any, where: str) -> PerClassSpec:
    """The design file's ``per_class`` block; malformed: a :class:`ReportError` saying where."""
    if not isinstance(value, dict) or not isinstance(value.get("stem"), str) or not isinstance(
            value.get("models"), list) or not value["models"]:
        raise ReportError(f"{where}: per_class needs a 'stem' and a non-empty 'models' list")
    models = []
    for i, m in enumerate(value["models"]):
        if not isinstance(m, dict) or not all(isinstance(m.get(k), str) for k in ("name", "column", "reference")):
            raise ReportError(f"{where}: per_class.models[{i}] needs string 'name', 'column' and 'reference'")
        models.append(PerClassModel(m["name"], m["column"], m["reference"]))
    return PerClassSpec(value["stem"], tuple(models))


def _f1(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    f1 = np.zeros(n_classes)
    for c in range(n_classes):
        tp = np.sum((pred == c) & (labels == c))
        den = np.sum(pred == c) + np.sum(labels == c)
        f1[c] = 2 * tp / den if den else 0.0
    return f1


def _confusion(labels: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((n_classes, n_classes))
    np.add.at(out, (labels, pred), 1)
    return out


def gva_per_class(runs: Sequence[Any], column: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean per-class F1 over ``runs`` (one per seed) and their mean confusion matrix (rows: true)."""
    f1s, confs = [], []
    for run in runs:
        pred = run.predictions
        if pred is None or column not in pred:
            raise ReportError(f"{run.name}: no predictions column {column!r} for the per-class table")
        top1 = pred[column] if pred[column].ndim == 1 else pred[column][:, 0]
        if top1.size and (top1.min() < 0 or top1.max() >= n_classes or pred["label"].max() >= n_classes):
            raise ReportError(f"{run.name}: {column} holds a class outside 0..{n_classes - 1} (the run's "
                              "data.classes has fewer classes than its predictions)")
        f1s.append(_f1(pred["label"], top1, n_classes))
        confs.append(_confusion(pred["label"], top1, n_classes))
    return np.mean(f1s, axis=0), np.mean(confs, axis=0)


def read_reference(folder: str | Path, model: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference run's per-class F1 and confusion matrix of ``model`` (``model2d``/``model3d``)."""
    folder = Path(folder)
    metrics, confusion = folder / "per_class_metrics.csv", folder / f"{model}_confusion.csv"
    try:
        rows = list(csv.DictReader(metrics.open(newline="")))
        matrix = np.loadtxt(confusion, delimiter=",", skiprows=1, ndmin=2)
    except OSError as exc:
        raise ReportError(f"{exc.filename}: cannot read the reference results ({exc.strerror})") from None
    except ValueError as exc:
        raise ReportError(f"{confusion}: not a confusion matrix ({exc})") from None
    f1 = np.full(n_classes, np.nan)
    try:
        for row in rows:
            if row["model"] == model and 0 <= int(row["class"]) < n_classes:
                f1[int(row["class"])] = float(row["f1"])
    except (KeyError, ValueError) as exc:
        raise ReportError(f"{metrics}: expected columns class,precision,recall,f1,model ({exc})") from None
    if np.isnan(f1).any() or matrix.shape != (n_classes, n_classes):
        raise ReportError(f"{folder}: the reference results of {model} do not cover {n_classes} classes")
    return f1, matrix


@dataclass(frozen=True)
class PerClassData:
    """The numbers of a per-class block: per model, gva's mean F1 and mean confusion over seeds, and
    the reference's (None without ``--reference-results``)."""

    spec: PerClassSpec
    class_names: tuple[str, ...]
    n_seeds: int
    gva: dict[str, tuple[np.ndarray, np.ndarray]]
    reference: dict[str, tuple[np.ndarray, np.ndarray]] | None


def compute(spec: PerClassSpec, runs_by_seed: Mapping[Any, Any], reference: str | Path | None,
            class_names: Sequence[str]) -> PerClassData:
    """gva's per-class numbers over the stem's seeds, and the reference's when its folder is given."""
    n = len(class_names)
    runs = [runs_by_seed[s] for s in sorted(runs_by_seed, key=str)]
    table = {m.name: gva_per_class(runs, m.column, n) for m in spec.models}
    refs = {m.name: read_reference(reference, m.reference, n) for m in spec.models} if reference else None
    return PerClassData(spec, tuple(class_names), len(runs), table, refs)


def render_per_class(data: PerClassData) -> list[str]:
    """Markdown: per-class F1 (gva mean over seeds | reference) per model, then confusion matrices."""
    spec, names, n = data.spec, data.class_names, len(data.class_names)
    refs = data.reference
    lines = [f"### Per class: {spec.stem} beside the reference run", "",
             f"Descriptive (no interval). gva: mean over {data.n_seeds} seed(s) of per-class F1 and of the "
             "confusion matrix (counts per seed). " + ("Reference: its own `evaluation_results` (one run)."
                                                      if refs else "No `--reference-results` given: gva's "
                                                                   "numbers only."), ""]
    head = "| class | " + " | ".join(f"{m.name}: gva" + (" | reference" if refs else "") for m in spec.models) + " |"
    lines += [head, "|" + " --- |" * (1 + len(spec.models) * (2 if refs else 1))]
    for c in range(n):
        cells = []
        for m in spec.models:
            cells.append(f"{data.gva[m.name][0][c]:.3f}")
            if refs:
                cells.append(f"{refs[m.name][0][c]:.3f}")
        lines.append(f"| {c} {names[c]} | " + " | ".join(cells) + " |")
    for m in spec.models:
        sources = [("gva", data.gva[m.name][1])] + ([("reference", refs[m.name][1])] if refs else [])
        for who, matrix in sources:
            lines += ["", f"Confusion, {m.name} ({who}; rows: true class, columns: predicted):", "",
                      "| true \\ pred | " + " | ".join(str(c) for c in range(n)) + " |",
                      "|" + " --- |" * (n + 1)]
            fmt = "{:.0f}" if who == "reference" or data.n_seeds == 1 else "{:.1f}"
            for c in range(n):
                lines.append(f"| {c} | " + " | ".join(fmt.format(v) for v in matrix[c]) + " |")
    return lines


def per_class_json(data: PerClassData) -> dict[str, Any]:
    out: dict[str, Any] = {"stem": data.spec.stem, "seeds": data.n_seeds, "classes": list(data.class_names),
                           "models": {}}
    for m in data.spec.models:
        entry = {"column": m.column, "f1_gva": data.gva[m.name][0].tolist(),
                 "confusion_gva": data.gva[m.name][1].tolist()}
        if data.reference:
            entry.update(f1_reference=data.reference[m.name][0].tolist(),
                         confusion_reference=data.reference[m.name][1].tolist())
        out["models"][m.name] = entry
    return out


__all__ = ["PerClassSpec", "PerClassModel", "PerClassData", "parse_spec", "gva_per_class", "read_reference", "compute",
           "render_per_class", "per_class_json"]
