"""``metrics/predictions.csv`` -> arrays, and two runs' predictions paired image by image.

:func:`read_predictions` / :func:`parse_predictions` read a run's file (errors name it);
:func:`paired_seed` pairs two models of one seed by image id (a
:class:`~gva.stats.bootstrap.PairedSeed`, with each image's fold model when folds were pooled);
:func:`align_seeds` puts every seed's images in one order, so a resample draws the same images
for every seed.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from gva.errors import ReportError
from gva.stats.bootstrap import PairedSeed


def read_predictions(path: str | Path) -> dict[str, np.ndarray]:
    """``metrics/predictions.csv`` (``id,label,class_name,pred_2d,pred_3d[,...][,top3_2d,...]``) ->
    int arrays ``"id"``, ``"label"``, one (n,) per ``pred_*`` column and one (n, 3) per ``top3_*``
    column (three labels, best first, separated by spaces). Raises :class:`ReportError` naming
    the file when it is missing or unreadable, lacks ``id``/``label``, or holds a non-integer."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read predictions ({exc.strerror or exc})") from None
    return parse_predictions(text, str(path))


def parse_predictions(text: str, path: str) -> dict[str, np.ndarray]:
    """:func:`read_predictions` of the file's text; errors name ``path``."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise ReportError(f"{path}: empty file, expected a header with id,label,pred_* columns")
    header = [h.strip() for h in rows[0]]
    missing = [c for c in ("id", "label") if c not in header]
    if missing:
        raise ReportError(f"{path}: no {'/'.join(missing)} column (header: {','.join(header)})")
    wanted = [c for c in header if c in ("id", "label") or c.startswith("pred_")]
    cols = [header.index(c) for c in wanted]
    body = [r for r in rows[1:] if r]
    ranked = [c for c in header if c.startswith("top3_")]
    top3 = {c: np.empty((len(body), 3), dtype=np.int64) for c in ranked}
    values = np.empty((len(body), len(cols)), dtype=np.int64)
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise ReportError(f"{path}, line {i + 2}: {len(row)} fields, header has {len(header)}")
        try:
            values[i] = [int(row[j]) for j in cols]
        except ValueError:
            raise ReportError(f"{path}, line {i + 2}: non-integer value in "
                              f"{','.join(wanted)}") from None
        for c in ranked:
            try:
                top3[c][i] = [int(v) for v in row[header.index(c)].split()]
            except ValueError:
                raise ReportError(f"{path}, line {i + 2}: {c} must be three integer labels separated "
                                  f"by spaces, got {row[header.index(c)]!r}") from None
    return {**{c: values[:, k].copy() for k, c in enumerate(wanted)}, **top3}


def _id_difference(a: np.ndarray, b: np.ndarray) -> str:
    """How two id lists differ, for messages (``a``/``b`` hold distinct ids)."""
    if np.array_equal(np.sort(a), np.sort(b)):
        return "the same ids"
    shared = np.intersect1d(a, b).size
    return f"{b.size - shared} of its {b.size} image ids are not among the other's {a.size}"


def _by_id(pred: Mapping[str, np.ndarray], order: np.ndarray) -> dict[str, np.ndarray]:
    """``pred``'s rows reordered to the image ids ``order`` (the same set of ids)."""
    pos = np.argsort(pred["id"], kind="stable")
    take = pos[np.searchsorted(pred["id"], order, sorter=pos)]
    return {k: v[take] for k, v in pred.items()}


def paired_seed(a: Mapping[str, np.ndarray], col_a: str = "pred_2d",
                b: Mapping[str, np.ndarray] | None = None, col_b: str = "pred_3d") -> PairedSeed:
    """A :class:`PairedSeed` from :func:`read_predictions` output: ``a[col_a]`` vs
    ``(b or a)[col_b]``, e.g. 2-D vs 3-D of one run, or 2-D of run A vs 2-D of run B
    (``b``, same seed), paired by image id (``b``'s rows are put in ``a``'s id order).
    Raises :class:`ReportError` (a ``ValueError``) when an id is listed twice or the two files
    do not hold the same images (other ids, or the same ids with other labels)."""
    other = a if b is None else b
    for key, src in ((col_a, a), (col_b, other)):
        if key not in src:
            raise ReportError(f"no column {key!r} (have {sorted(src)})")
    for src in (a, other):
        if np.unique(src["id"]).size != src["id"].size:
            raise ReportError("a prediction file lists an image id twice")
    if b is not None and not np.array_equal(a["id"], b["id"]):
        if not np.array_equal(np.sort(a["id"]), np.sort(b["id"])):
            raise ReportError(f"the two prediction files do not hold the same test images "
                              f"({_id_difference(a['id'], b['id'])})")
        other = _by_id(b, a["id"])
    if b is not None and not np.array_equal(a["label"], other["label"]):
        raise ReportError("the two prediction files give the same image ids different labels: they are "
                          "not the same test images")
    groups = _groups(a, other)
    return PairedSeed(a["label"], a[col_a], other[col_b], ids=a["id"], groups=groups)


def _groups(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """Which model scored each image in a pair of prediction sets of one seed: the pooled folds'
    ``fold`` column, one group per (fold of a, fold of b) when both were cross-fitted."""
    fa, fb = a.get("fold"), b.get("fold")
    if fa is None and fb is None:
        return None
    if fa is None or fb is None:
        return np.asarray(fa if fb is None else fb)
    return np.unique(np.stack([fa, fb]), axis=1, return_inverse=True)[1].ravel()


def align_seeds(seeds: Sequence[PairedSeed], names: Sequence[str]) -> list[PairedSeed]:
    """``seeds`` with every seed's images in the first seed's id order, so the image resampling of
    :func:`hierarchical_bootstrap` draws the same images for every seed. Raises
    :class:`ReportError` naming the two seeds (``names``) when a seed scored other images (other
    ids, or the same ids with other labels): they cannot be paired."""
    first = seeds[0]
    out = [first]
    for s, name in zip(seeds[1:], names[1:]):
        if first.ids is None or s.ids is None or np.array_equal(s.ids, first.ids):
            aligned = s
        elif not np.array_equal(np.sort(s.ids), np.sort(first.ids)):
            raise ReportError(f"{names[0]} and {name} scored different test images "
                              f"({name}: {_id_difference(first.ids, s.ids)})")
        else:
            cols = {"id": s.ids, "label": s.labels, "a": s.pred_a, "b": s.pred_b}
            if s.groups is not None:
                cols["groups"] = s.groups
            cols = _by_id(cols, first.ids)
            aligned = PairedSeed(cols["label"], cols["a"], cols["b"], ids=cols["id"], groups=cols.get("groups"))
        if not np.array_equal(aligned.labels, first.labels):
            raise ReportError(f"{names[0]} and {name} scored different test images (the same ids with "
                              "other labels)")
        out.append(aligned)
    return out


__all__ = ["read_predictions", "parse_predictions", "paired_seed", "align_seeds"]
