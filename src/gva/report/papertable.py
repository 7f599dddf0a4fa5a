"""The paper's table: top-1 and top-3 of declared runs beside a reference run's own numbers.

Descriptive, not a comparison (the declared comparisons judge): a design file's ``table`` block
names, per row, a run stem and the predictions columns of its 2-D and 3-D model, and which of the
reference run's models the columns stand beside::

    table:
      title: "The paper's table"
      reference: "the paper (reference run: VGG-11, 224 px, its protocol)"
      rows:
        - {name: "R4: the reference protocol", stem: r4-ref, model2d: pred_2d_frame0, model3d: pred_3d}
        - {name: "R1: gva's protocol", stem: r1-svd, model2d: pred_2d, model3d: pred_3d}

gva's cells are the mean over the stem's seeds with a 95 % interval from the crossed model of
:mod:`gva.stats.crossed` applied to the 0/1 hits (seeds and test images both random: the
accuracy another training run would reach on other images like these; with one seed, over the
images only; pooled cross-fitted runs: one model per seed x fold). Top-3 reads the matching ``top3_*`` column. The reference row is read from its
``evaluation_results`` folder (``model2d_metrics.json`` / ``model3d_metrics.json``: ``top1``,
``top3``), given to ``gva report --reference-results DIR``; it is one run, without an interval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gva.errors import ReportError
from gva.stats import crossed

MODELS = ("model2d", "model3d")
METRICS = ("top1", "top3")


@dataclass(frozen=True)
class TableRow:
    name: str
    stem: str
    model2d: str          # pred_* column of predictions.csv
    model3d: str


@dataclass(frozen=True)
class TableSpec:
    title: str
    reference: str        # the reference row's label
    rows: tuple[TableRow, ...]


def parse_table(value: Any, where: str) -> TableSpec:
    """The design file's ``table`` block; malformed: a :class:`ReportError` saying where."""
    if not isinstance(value, dict) or not isinstance(value.get("rows"), list) or not value["rows"]:
        raise ReportError(f"{where}: table needs a non-empty 'rows' list")
    rows = []
    for i, r in enumerate(value["rows"]):
        keys = ("name", "stem", *MODELS)
        if not isinstance(r, dict) or not all(isinstance(r.get(k), str) for k in keys):
            raise ReportError(f"{where}: table.rows[{i}] needs string {', '.join(repr(k) for k in keys)}")
        if not (r["model2d"].startswith("pred_") and r["model3d"].startswith("pred_")):
            raise ReportError(f"{where}: table.rows[{i}]: model2d and model3d must be pred_* columns")
        rows.append(TableRow(r["name"], r["stem"], r["model2d"], r["model3d"]))
    return TableSpec(str(value.get("title", "The paper's table")), str(value.get("reference", "reference run")),
                     tuple(rows))


@dataclass(frozen=True)
class Cell:
    mean: float
    low: float
    high: float


@dataclass(frozen=True)
class TableData:
    """Per row: its number of seeds and a cell per (model, metric); the reference's values or None."""

    spec: TableSpec
    seeds: dict[str, int]
    cells: dict[str, dict[tuple[str, str], Cell]]
    reference: dict[tuple[str, str], float] | None


def _hits(pred: Mapping[str, np.ndarray], column: str, metric: str, where: str) -> np.ndarray:
    if metric == "top1":
        if column not in pred:
            raise ReportError(f"{where}: no predictions column {column!r} for the paper's table")
        values = pred[column]
        return (values if values.ndim == 1 else values[:, 0]) == pred["label"]
    ranked = "top3_" + column.removeprefix("pred_")
    if ranked not in pred:
        raise ReportError(f"{where}: no predictions column {ranked!r} for the paper's table's top-3")
    return (pred[ranked] == pred["label"][:, None]).any(axis=1)


def cell(runs: Sequence[Any], column: str, metric: str) -> Cell:
    """Mean accuracy over ``runs`` (one per seed, the same test images in the same order) and its
    95 % interval from the crossed model."""
    ids = None
    hits, folds = [], []
    for run in runs:
        pred = run.predictions
        order = np.argsort(pred["id"], kind="stable")
        if ids is None:
            ids = pred["id"][order]
        elif not np.array_equal(ids, pred["id"][order]):
            raise ReportError(f"{run.name}: its test images differ from the other seeds'")
        hits.append(_hits(pred, column, metric, run.name)[order].astype(float))
        folds.append(pred["fold"][order] if "fold" in pred else np.zeros(len(order), dtype=np.int64))
    fit = crossed.fit(np.stack(hits), np.stack(folds))  # pooled folds: one model per seed x fold
    low, high = fit.interval()
    return Cell(float(fit.estimate), float(low), float(high))


def read_reference(folder: str | Path) -> dict[tuple[str, str], float]:
    """The reference run's top-1 / top-3 per model from ``<model>_metrics.json``."""
    out = {}
    for model in MODELS:
        path = Path(folder) / f"{model}_metrics.json"
        try:
            data = json.loads(path.read_text())
            for metric in METRICS:
                out[model, metric] = float(data[metric])
        except OSError as exc:
            raise ReportError(f"{path}: cannot read the reference results ({exc.strerror or exc})") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ReportError(f"{path}: expected a JSON object with numbers top1 and top3 ({exc})") from None
    return out


def compute(spec: TableSpec, runs_by_stem: Mapping[str, Mapping[Any, Any]],
            reference: str | Path | None) -> TableData | None:
    """Every row whose stem has finished runs with predictions (None when no row has)."""
    seeds, cells = {}, {}
    for row in spec.rows:
        found = [r for _, r in sorted(runs_by_stem.get(row.stem, {}).items(), key=lambda kv: str(kv[0]))
                 if r.predictions is not None]
        if not found:
            continue
        seeds[row.name] = len(found)
        cells[row.name] = {(m, metric): cell(found, getattr(row, m), metric) for m in MODELS for metric in METRICS}
    if not cells:
        return None
    return TableData(spec, seeds, cells, read_reference(reference) if reference else None)


def render_table(data: TableData) -> list[str]:
    """Markdown: one row per declared run (mean [95 %]) and the reference row."""
    lines = [f"## {data.spec.title}", "",
             "Descriptive: top-1 and top-3 on the test images, mean over seeds with a 95 % interval "
             "(crossed model: seeds and images random; one seed: images only). "
             "The comparisons that judge are the declared ones below.", "",
             "| | seeds | 2-D top-1 | 3-D top-1 | 2-D top-3 | 3-D top-3 |", "| --- | --- | --- | --- | --- | --- |"]
    if data.reference is not None:
        ref = data.reference
        lines.append(f"| {data.spec.reference} | 1 run | {ref['model2d', 'top1']:.3f} | {ref['model3d', 'top1']:.3f} | "
                     f"{ref['model2d', 'top3']:.3f} | {ref['model3d', 'top3']:.3f} |")
    for row in data.spec.rows:
        if row.name not in data.cells:
            lines.append(f"| {row.name} | 0 | – | – | – | – |")
            continue
        c = data.cells[row.name]
        parts = [f"{c[m, metric].mean:.3f} [{c[m, metric].low:.3f}, {c[m, metric].high:.3f}]"
                 for metric in METRICS for m in MODELS]
        lines.append(f"| {row.name} | {data.seeds[row.name]} | " + " | ".join(parts) + " |")
    return lines


def table_json(data: TableData) -> dict[str, Any]:
    rows = []
    for row in data.spec.rows:
        entry: dict[str, Any] = {"name": row.name, "stem": row.stem, "model2d": row.model2d, "model3d": row.model3d,
                                 "seeds": data.seeds.get(row.name, 0)}
        for (m, metric), c in data.cells.get(row.name, {}).items():
            entry[f"{m}_{metric}"] = {"mean": c.mean, "low": c.low, "high": c.high}
        rows.append(entry)
    out: dict[str, Any] = {"title": data.spec.title, "rows": rows}
    if data.reference is not None:
        out["reference"] = {"name": data.spec.reference,
                            **{f"{m}_{metric}": v for (m, metric), v in data.reference.items()}}
    return out


__all__ = ["TableSpec", "TableRow", "TableData", "Cell", "parse_table", "cell", "read_reference", "compute",
           "render_table", "table_json"]
