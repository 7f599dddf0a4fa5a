"""Plot data for ``dvc plots`` and PNG figures for the README.

``dvc plots`` files are lists of records: one ``{"actual", "predicted"}`` record per test sample
for DVC's ``confusion`` template, and one record per class (precision/recall/F1 of each model side
by side) for the per-class comparison. PNGs are drawn with matplotlib's object API
(``matplotlib.figure.Figure``, rendered by Agg) so no global pyplot state or display is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from gva.io import atomic_path

METRICS = ("precision", "recall", "f1")


def confusion_records(labels: np.ndarray, preds: np.ndarray,
                      class_names: Sequence[str]) -> list[dict[str, str]]:
    """One ``{"actual": name, "predicted": name}`` per sample, in sample order."""
    return [{"actual": class_names[int(t)], "predicted": class_names[int(p)]}
            for t, p in zip(labels, preds)]


def per_class_records(class_names: Sequence[str], wnids: Sequence[str],
                      reports: dict[str, object]) -> list[dict]:
    """One record per class: ``class``, ``wnid``, ``support`` and ``<metric>_<model>`` columns.

    ``reports`` maps a short model tag (``"2d"``, ``"3d"``) to a
    :class:`gva.evaluate.metrics.ClassificationReport`.
    """
    first = next(iter(reports.values()))
    records = []
    for k, name in enumerate(class_names):
        rec: dict = {"class": name, "wnid": wnids[k], "support": int(first.support[k])}
        for metric in METRICS:
            for tag, rep in reports.items():
                rec[f"{metric}_{tag}"] = float(getattr(rep, metric)[k])
        records.append(rec)
    return records


def _save(fig: Figure, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")


def plot_confusion(confusion: np.ndarray, class_names: Sequence[str], title: str,
                   path: str | Path) -> None:
    """Row-normalised confusion matrix (share of each actual class) with counts annotated."""
    cm = np.asarray(confusion, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    n = len(class_names)
    side = max(4.0, 0.55 * n + 2.0)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of actual class")
    ax.set_xticks(range(n), labels=class_names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(n), labels=class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    if n <= 25:  # counts stay legible only for small matrices
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    _save(fig, path)


def plot_per_class(records: list[dict], tags: Sequence[str], labels: dict[str, str],
                   path: str | Path) -> None:
    """Grouped horizontal bars: precision, recall and F1 per class, one bar per model."""
    names = [r["class"] for r in records]
    n = len(names)
    fig = Figure(figsize=(12.0, max(3.0, 0.45 * n + 1.5)))
    axes = fig.subplots(1, len(METRICS), sharey=True)
    y = np.arange(n)
    height = 0.8 / max(1, len(tags))
    for ax, metric in zip(np.atleast_1d(axes), METRICS):
        for i, tag in enumerate(tags):
            values = [r[f"{metric}_{tag}"] for r in records]
            ax.barh(y + (i - (len(tags) - 1) / 2) * height, values, height=height, label=labels[tag])
        ax.set_xlim(0.0, 1.0)
        ax.set_title(metric)
        ax.grid(axis="x", alpha=0.3)
    first = np.atleast_1d(axes)[0]
    first.set_yticks(y, labels=names, fontsize=8)
    first.invert_yaxis()
    first.legend(loc="lower left", fontsize=8)
    _save(fig, path)
