"""Plot data for ``dvc plots`` and PNG figures for the README.

``dvc plots`` files are lists of records: one ``{"actual", "predicted"}`` record per test sample
for DVC's ``confusion`` template, and one record per (class, model, metric) for the per-class
comparison, drawn by the custom template ``templates/per_class.json`` (DVC's built-in bar
templates take one value field and cannot group two models' bars per class). PNGs are drawn with matplotlib's object API
(``matplotlib.figure.Figure``, rendered by Agg) so no global pyplot state or display is needed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from gva.evaluate.metrics import ClassificationReport
from gva.io import save_png

METRICS = ("precision", "recall", "f1")


def confusion_records(labels: np.ndarray, preds: np.ndarray,
                      class_names: Sequence[str]) -> list[dict[str, str]]:
    """One ``{"actual": name, "predicted": name}`` per sample, in sample order."""
    return [{"actual": class_names[int(t)], "predicted": class_names[int(p)]}
            for t, p in zip(labels, preds)]


def per_class_records(class_names: Sequence[str], wnids: Sequence[str],
                      reports: Mapping[str, ClassificationReport]) -> list[dict]:
    """Long-format records for ``dvc plots``: one per (class, model, metric).

    Fields ``class``, ``wnid``, ``model`` (a key of ``reports``, e.g. ``"2-D on images"``),
    ``metric`` (precision | recall | f1), ``value`` and ``support``; drawn by
    ``templates/per_class.json`` as grouped bars (x: value, y: class), one panel per metric.
    """
    records = []
    for k, name in enumerate(class_names):
        for model, rep in reports.items():
            for metric in METRICS:
                records.append({"class": name, "wnid": wnids[k], "model": model, "metric": metric,
                                "value": float(getattr(rep, metric)[k]),
                                "support": int(rep.support[k])})
    return records


def per_class_table(class_names: Sequence[str], wnids: Sequence[str],
                    reports: Mapping[str, ClassificationReport],
                    paired: Mapping[str, Sequence[dict]] | None = None) -> dict[str, dict]:
    """``{class name: {"wnid", "support", <model key>: {"precision", "recall", "f1"}, <comparison>:
    {"n", "only_a", "only_b", "p", "p_holm"}}}``; ``paired`` maps a comparison name (e.g.
    ``model3d_vs_model2d``) to per-class McNemar rows (:func:`gva.stats.paired.per_class_mcnemar`,
    Holm-adjusted over the classes; ``only_a``: only the second-named model right)."""
    first = next(iter(reports.values()))
    table = {}
    for k, name in enumerate(class_names):
        entry: dict = {"wnid": wnids[k], "support": int(first.support[k])}
        for key, rep in reports.items():
            entry[key] = {m: float(getattr(rep, m)[k]) for m in METRICS}
        for key, rows in (paired or {}).items():
            entry[key] = dict(rows[k])
        table[name] = entry
    return table


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
    save_png(fig, path, bbox_inches="tight")


def plot_per_class(class_names: Sequence[str], reports: Mapping[str, ClassificationReport],
                   path: str | Path, paired: Sequence[dict] | None = None) -> None:
    """Grouped horizontal bars: precision, recall and F1 per class, one bar per model. With
    ``paired`` (per-class McNemar rows, 3-D vs 2-D), each class label carries its Holm-adjusted p
    and a ``*`` where it is below 0.05."""
    n = len(class_names)
    if paired is not None:
        class_names = [f"{name}  (p={row['p_holm']:.2g}{'*' if row['p_holm'] < 0.05 else ''})"
                       for name, row in zip(class_names, paired)]
    fig = Figure(figsize=(12.0, max(3.0, 0.45 * n + 1.5)))
    axes = np.atleast_1d(fig.subplots(1, len(METRICS), sharey=True))
    y = np.arange(n)
    height = 0.8 / max(1, len(reports))
    for ax, metric in zip(axes, METRICS):
        for i, (label, rep) in enumerate(reports.items()):
            ax.barh(y + (i - (len(reports) - 1) / 2) * height, getattr(rep, metric), height=height,
                    label=label)
        ax.set_xlim(0.0, 1.0)
        ax.set_title(metric)
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, labels=list(class_names), fontsize=8)
    axes[0].invert_yaxis()
    axes[0].legend(loc="lower left", fontsize=8)
    save_png(fig, path, bbox_inches="tight")
