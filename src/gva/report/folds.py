"""Cross-fitted runs (``data.folds``) pooled into one replicate per configuration and seed.

A grid run with ``data.folds: K`` has K runs per configuration and seed, ``data.fold`` 0..K-1,
whose test splits partition the data (:func:`gva.data.curate.assign_folds`). :func:`pool_folds`
joins them into one run: the predictions concatenated and ordered by image id, so every image of
the pool is one paired outcome scored by models that never trained on it, and the metrics the
report reads recomputed from those predictions (top-1, top-3 and macro-F1 per model; per
comparison with the 3-D model the interval and p of the crossed model with the folds as its model
level, and the discordant counts). A ``fold`` column records which fold's model scored each
image, so the comparisons (:mod:`gva.report.compare`) keep a seed x fold model level instead of
treating the pooled images as one model's outcomes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from gva.errors import ReportError
from gva.report.collect import PREDICTIONS_FILE, Run
from gva.report.stats import IGNORED_KEYS, format_value
from gva.stats import crossed
from gva.stats.bootstrap import model_metric

FOLDS_KEY = "data.folds"
FOLD_KEY = "data.fold"


def is_fold_run(run: Run) -> bool:
    """Whether ``run`` is one fold of a cross-fitted grid (``data.folds`` set)."""
    return run.params.get(FOLDS_KEY) is not None


def pooled_name(runs: Sequence[Run]) -> str:
    """``motion-all-s0`` for runs named ``motion-all-s0-f0`` .. ``-f2`` (grid.sh's names), else
    the names joined with ``+``."""
    stems = {re.sub(r"-f\d+$", "", r.name) for r in runs}
    if len(stems) == 1 and all(re.search(r"-f\d+$", r.name) for r in runs):
        return stems.pop()
    return "+".join(sorted(r.name for r in runs))


def _predictions(run: Run) -> dict:
    """A finished run's prediction columns (the runs pooled have them)."""
    assert run.predictions is not None, run.name
    return run.predictions


def pool_predictions(runs: Sequence[Run]) -> dict[str, np.ndarray]:
    """The runs' prediction columns concatenated and ordered by image id; an image scored by two
    runs, or a column not every run has, is a :class:`ReportError`."""
    columns = set.intersection(*(set(_predictions(r)) for r in runs)) - {"fold"}
    pooled = {c: np.concatenate([_predictions(r)[c] for r in runs]) for c in sorted(columns)}
    # which fold's model scored each image: the comparisons' model level (gva.stats.crossed)
    pooled["fold"] = np.concatenate([np.full(_predictions(r)["id"].size, int(r.params.get(FOLD_KEY, 0)))
                                     for r in runs])
    ids, counts = np.unique(pooled["id"], return_counts=True)
    if (counts > 1).any():
        twice = int(ids[counts > 1][0])
        owners = [r.name for r in runs if twice in set(_predictions(r)["id"].tolist())]
        raise ReportError(f"runs {', '.join(owners)} both scored test image id {twice}: they are not folds "
                          f"of one partition ({FOLD_KEY} of the same {FOLDS_KEY} and data.seed)")
    order = np.argsort(pooled["id"], kind="stable")
    return {c: v[order] for c, v in pooled.items()}


def _model(labels: np.ndarray, pred: dict[str, np.ndarray], tag: str) -> dict[str, float]:
    out = {"top1": model_metric(labels, pred[f"pred_{tag}"], "top1"),
           "f1_macro": model_metric(labels, pred[f"pred_{tag}"], "f1_macro")}
    if f"top3_{tag}" in pred:
        out["top3"] = model_metric(labels, pred[f"top3_{tag}"], "top3")
    return out


def pooled_metrics(pred: dict[str, np.ndarray]) -> dict[str, Any]:
    """What ``gva evaluate`` writes to metrics.json and the report reads, from predictions:
    ``n_test``; ``model<tag>`` (top1, top3, f1_macro) per ``pred_<tag>`` column; and for every
    2-D protocol the 3-D model's difference, ``delta`` (images) or ``delta_<protocol>``.

    The pooled images were scored by K different fold models, so this seed's interval and p are
    not one model's paired bootstrap and McNemar test: they come from the crossed model with the
    fold models as its model level (:func:`gva.stats.crossed.fit`, one seed; Student t with
    Satterthwaite's degrees of freedom), recorded as ``top1_ci95_*`` and ``mcnemar_p`` (the key
    the report reads; ``p_method`` says which test it is)."""
    labels = pred["label"]
    tags = [c[len("pred_"):] for c in pred if c.startswith("pred_")]
    if "2d" not in tags or "3d" not in tags:
        raise ReportError(f"pooled predictions lack pred_2d/pred_3d (have {', '.join(sorted(pred))})")
    models = {tag: _model(labels, pred, tag) for tag in tags}
    metrics: dict[str, Any] = {"n_test": int(labels.size), **{f"model{t}": m for t, m in models.items()}}
    correct_3d = pred["pred_3d"] == labels
    for tag in tags:
        if not tag.startswith("2d"):
            continue
        correct = pred[f"pred_{tag}"] == labels
        d = correct_3d.astype(np.float64) - correct
        result = crossed.fit(d[None, :], pred["fold"][None, :])
        low, high = result.interval()
        metrics["delta" if tag == "2d" else f"delta{tag[2:]}"] = {
            "top1": result.estimate, "top1_ci95_low": low, "top1_ci95_high": high,
            "mcnemar_p": result.p_value(), "p_method": f"crossed t over {result.n_models} fold models",
            "only_2d_correct": int((correct & ~correct_3d).sum()),
            "only_3d_correct": int((correct_3d & ~correct).sum()),
            **{k: models["3d"][k] - models[tag][k] for k in ("top3", "f1_macro") if k in models[tag]}}
    return metrics


def _pool(runs: list[Run]) -> Run:
    first = runs[0]
    pred = pool_predictions(runs)
    metrics = pooled_metrics(pred)
    warnings = sorted({r.metrics["protocol_warning"] for r in runs if r.metrics.get("protocol_warning")})
    if warnings:
        metrics["protocol_warning"] = "; ".join(warnings)
    params = {k: v for k, v in first.params.items() if k != FOLD_KEY}
    return Run(name=pooled_name(runs), params=params, metrics=metrics, rev="", predictions=pred)


def pool_folds(runs: Sequence[Run]) -> tuple[list[Run], list[str]]:
    """Runs with every fold run replaced by one run per (configuration, seed) pooling its
    ``data.fold`` 0..K-1 (:func:`pooled_metrics`), and notes on fold groups left out: an
    incomplete set of folds, or fold runs without ``metrics/predictions.csv``. Runs that differ
    only in ``data.fold`` (and machine settings, :data:`IGNORED_KEYS`) are one group."""
    out = [r for r in runs if not is_fold_run(r)]
    groups: dict[tuple, list[Run]] = {}
    skip = {FOLD_KEY, *IGNORED_KEYS}
    for run in runs:
        if is_fold_run(run):
            key = tuple(sorted((k, format_value(v)) for k, v in run.params.items() if k not in skip))
            groups.setdefault(key, []).append(run)
    notes = []
    for members in groups.values():
        members.sort(key=lambda r: (int(r.params.get(FOLD_KEY, 0)), r.name))
        name = pooled_name(members)
        k = int(members[0].params[FOLDS_KEY])
        folds = [int(r.params.get(FOLD_KEY, 0)) for r in members]
        if folds != list(range(k)):
            notes.append(f"{name}: folds {', '.join(map(str, folds))} of {FOLDS_KEY}={k} finished, each of "
                         f"0..{k - 1} is needed once (left out)")
            continue
        lacking = [r.name for r in members if r.predictions is None]
        if lacking:
            notes.append(f"{name}: no {PREDICTIONS_FILE} for {', '.join(lacking)}, needed to pool the folds "
                         "(left out)")
            continue
        out.append(_pool(members))
    return out, notes


__all__ = ["FOLDS_KEY", "FOLD_KEY", "is_fold_run", "pooled_name", "pool_predictions", "pooled_metrics",
           "pool_folds"]
