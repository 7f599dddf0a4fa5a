"""Declared comparisons: a design file names, before any run, the comparisons an experiment is
judged by and their Holm families; ``gva report --design FILE`` computes exactly those.

A design file (YAML; ``reports/paper/design.yaml`` is one)::

    seed_key: train.seed        # runs of two configurations are paired by this param
    alpha: 0.05
    margin: 0.02                # equivalence margin (top-1)
    families:
      - name: P1
        title: "P1: the paper's number and its parts"
        primary: true           # shown as primary
        holm: false             # adjust within the family (default true)
        comparisons:
          - name: "R4: 3-D − 2-D on SVD frame 0"
            a: r4-ref:pred_2d_frame0   # <run stem>:<predictions.csv column>
            b: r4-ref:pred_3d          # Δ = b − a, paired by image and seed
            paper: 0.216               # optional: the published value, printed beside

A run stem is an experiment name without its ``-s<seed>`` suffix (``scripts/paper.sh``'s and
``scripts/grid.sh``'s names; cross-fitted runs are pooled first). Every comparison is computed by
:func:`gva.report.compare.compare` (crossed random effects, bootstrap cross-check) and decided by
:func:`gva.report.compare.decide` within its family.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from gva.errors import ReportError
from gva.report.collect import Run
from gva.report.compare import Comparison, _pairs, compare, comparison_table, decide
from gva.report.papertable import TableData, TableSpec, parse_table, render_table
from gva.report.perclass import PerClassData, PerClassSpec, compute, parse_spec, render_per_class

_STEM = re.compile(r"^(?P<stem>.+)-s(?P<seed>\d+)$")


@dataclass(frozen=True)
class Side:
    stem: str
    column: str


@dataclass(frozen=True)
class Declared:
    name: str
    a: Side
    b: Side
    paper: float | None = None


@dataclass(frozen=True)
class Family:
    name: str
    title: str
    primary: bool
    holm: bool
    comparisons: tuple[Declared, ...]


@dataclass(frozen=True)
class Design:
    path: str
    seed_key: str
    alpha: float
    margin: float
    families: tuple[Family, ...] = field(default_factory=tuple)
    per_class: PerClassSpec | None = None     # descriptive per-class block (gva.report.perclass)
    table: TableSpec | None = None            # descriptive paper's-table block (gva.report.papertable)


def _side(value: Any, where: str) -> Side:
    if not isinstance(value, str) or value.count(":") != 1 or not all(value.split(":")):
        raise ReportError(f"{where}: expected '<run stem>:<predictions column>', got {value!r}")
    stem, column = value.split(":")
    if not column.startswith("pred_"):
        raise ReportError(f"{where}: the column must be a pred_* column of predictions.csv, got {column!r}")
    return Side(stem, column)


def load_design(path: str | Path) -> Design:
    """Read and check a design file; a malformed one is a :class:`ReportError` naming the file and
    the entry."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the design ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        raise ReportError(f"{path}: not YAML ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("families"), list) or not data["families"]:
        raise ReportError(f"{path}: expected a mapping with a non-empty 'families' list")
    alpha, margin = data.get("alpha", 0.05), data.get("margin", 0.02)
    if alpha != 0.05 or not (isinstance(margin, (int, float)) and margin > 0):
        # the intervals, the bootstrap columns and the wording are 95 %: another level would be half-applied
        raise ReportError(f"{path}: alpha must be 0.05 (gva report's intervals are 95 %) and margin > 0, "
                          f"got {alpha!r} and {margin!r}")
    families, names = [], set()
    for i, fam in enumerate(data["families"]):
        where = f"{path}: families[{i}]"
        if not isinstance(fam, dict) or not isinstance(fam.get("name"), str) or not isinstance(
                fam.get("comparisons"), list) or not fam["comparisons"]:
            raise ReportError(f"{where}: expected a mapping with 'name' and a non-empty 'comparisons' list")
        comps = []
        for j, c in enumerate(fam["comparisons"]):
            cw = f"{where}.comparisons[{j}]"
            if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                raise ReportError(f"{cw}: expected a mapping with a 'name'")
            if c["name"] in names:
                raise ReportError(f"{cw}: the name {c['name']!r} is declared twice")
            names.add(c["name"])
            paper = c.get("paper")
            if paper is not None and not isinstance(paper, (int, float)):
                raise ReportError(f"{cw}: paper must be a number, got {paper!r}")
            comps.append(Declared(c["name"], _side(c.get("a"), f"{cw}.a"), _side(c.get("b"), f"{cw}.b"),
                                  None if paper is None else float(paper)))
        families.append(Family(fam["name"], str(fam.get("title", fam["name"])), bool(fam.get("primary", False)),
                               bool(fam.get("holm", True)), tuple(comps)))
    per_class = parse_spec(data["per_class"], str(path)) if data.get("per_class") is not None else None
    table = parse_table(data["table"], str(path)) if data.get("table") is not None else None
    return Design(str(path), str(data.get("seed_key", "train.seed")), float(alpha), float(margin),
                  tuple(families), per_class, table)


def _by_stem(runs: Sequence[Run], seed_key: str) -> dict[str, dict[Any, Run]]:
    out: dict[str, dict[Any, Run]] = {}
    for run in runs:
        m = _STEM.match(run.name)
        if m is None:
            continue
        out.setdefault(m["stem"], {})[run.params.get(seed_key, int(m["seed"]))] = run
    return out


def declared_comparisons(design: Design, runs: Sequence[Run], n_boot: int) -> tuple[list[Comparison], list[str]]:
    """Every declared comparison the finished runs allow (seeds both sides have, with predictions),
    decided within its family; and notes on what is missing (a seed, a stem, a column)."""
    stems = _by_stem(runs, design.seed_key)
    out, notes = [], []
    missing: dict[str, int] = {}
    for fam in design.families:
        for c in fam.comparisons:
            missing[fam.name] = missing.get(fam.name, 0) + 1   # until computed below
            a_runs, b_runs = stems.get(c.a.stem, {}), stems.get(c.b.stem, {})
            seeds = sorted(set(a_runs) & set(b_runs), key=lambda s: (str(type(s)), s))
            no_pred = [str(s) for s in seeds if a_runs[s].predictions is None or b_runs[s].predictions is None]
            seeds = [s for s in seeds if a_runs[s].predictions is not None and b_runs[s].predictions is not None]
            lacking = sorted({str(s) for s in set(a_runs) ^ set(b_runs)})
            if lacking:
                notes.append(f"{c.name}: seeds {', '.join(lacking)} finished on one side only (left out)")
            if no_pred:
                notes.append(f"{c.name}: seeds {', '.join(no_pred)} have no predictions.csv (left out)")
            if not seeds:
                sides = c.a.stem if c.a.stem == c.b.stem else f"both {c.a.stem} and {c.b.stem}"
                notes.append(f"{c.name}: no finished seed with predictions for {sides}")
                continue
            a_list, b_list = [a_runs[s] for s in seeds], [b_runs[s] for s in seeds]
            same = c.a.stem == c.b.stem
            try:
                pairs = _pairs(a_list, c.a.column, c.b.column, other=None if same else b_list)
            except ReportError as exc:   # runs that cannot be paired: this comparison only
                notes.append(f"{c.name}: {exc}")
                continue
            if pairs is None:
                notes.append(f"{c.name}: a run lacks column {c.a.column} or {c.b.column}")
                continue
            row = compare(c.name, c.name.split(": ", 1)[-1], pairs, seeds, design.margin, n_boot)
            row.family, row.holm, row.primary, row.paper = fam.name, fam.holm, fam.primary, c.paper
            out.append(row)
            missing[fam.name] -= 1
    decide(out, design.alpha, missing=missing)
    return out, notes


def per_class_data(design: Design, runs: Sequence[Run], reference: str | Path | None) -> PerClassData | None:
    """The design's per-class block computed from the finished runs of its stem (None: no block, or
    no finished run of the stem yet)."""
    if design.per_class is None:
        return None
    found = {s: r for s, r in _by_stem(runs, design.seed_key).get(design.per_class.stem, {}).items()
             if r.predictions is not None}
    if not found:
        return None
    first = next(iter(found.values()))
    assert first.predictions is not None  # kept above
    classes = first.params.get("data.classes")
    n = int(first.predictions["label"].max()) + 1
    names = [str(c) for c in classes] if isinstance(classes, list) and len(classes) >= n else [""] * n
    return compute(design.per_class, found, reference, names)


def table_data(design: Design, runs: Sequence[Run], reference: str | Path | None) -> TableData | None:
    """The design's paper's-table block from the finished runs of its stems (None: no block, or no
    finished run of any row yet)."""
    if design.table is None:
        return None
    from gva.report.papertable import compute as compute_table

    return compute_table(design.table, _by_stem(runs, design.seed_key), reference)


def render_design(design: Design, rows: Sequence[Comparison], notes: Sequence[str],
                  per_class: Any = None, table: Any = None) -> list[str]:
    """The declared comparisons as Markdown: the design's paper's table
    (:class:`gva.report.papertable.TableData`) first, then one table per family, every
    comparison's Δ seed by seed, and the design's per-class block
    (:class:`gva.report.perclass.PerClassData`)."""
    lines = [*render_table(table), ""] if table is not None else []
    lines += ["## Declared comparisons", "",
             f"Declared in `{Path(design.path).as_posix()}` before any run (its git history dates it). "
             f"α {design.alpha}, equivalence margin ±{design.margin:.3f} top-1. The method is the "
             "comparisons section's (below): crossed random effects of models and images, Student t on "
             "Satterthwaite's df, Holm within a family where the design asks for it."]
    by_family: dict[str, list[Comparison]] = {}
    for r in rows:
        by_family.setdefault(r.family, []).append(r)
    for fam in design.families:
        members = by_family.get(fam.name, [])
        lines += ["", f"### {fam.title}{' (primary)' if fam.primary else ''}", ""]
        if not members:
            lines.append("Not computed yet: none of its runs has finished.")
            continue
        k = members[0].n_tests
        lines.append(f"Holm within the family ({k} test{'s' if k != 1 else ''})." if fam.holm
                     else "Not adjusted for multiplicity: each row is a declared primary estimate at α.")
        lines += [""] + comparison_table(members)
        papers = [r for r in members if r.paper is not None]
        for r in papers:
            assert r.paper is not None  # kept above
            inside = r.low <= r.paper <= r.high
            lines += ["", f"{r.name}: the paper reports {r.paper:+.3f}; gva's 95 % interval "
                          f"[{r.low:+.3f}, {r.high:+.3f}] {'contains' if inside else 'excludes'} it."]
    if rows:
        seeds = sorted({s for r in rows for s in r.seeds}, key=lambda s: (str(type(s)), s))
        lines += ["", "### Δ top-1 seed by seed", "",
                  "| comparison | " + " | ".join(f"seed {s}" for s in seeds) + " |",
                  "| --- | " + " | ".join("---" for _ in seeds) + " |"]
        for r in rows:
            per = dict(zip(r.seeds, r.per_seed))
            lines.append(f"| {r.name} | " + " | ".join(f"{per[s]:+.3f}" if s in per else "–" for s in seeds) + " |")
    if notes:
        lines += ["", "Not (yet) computable: " + "; ".join(notes) + "."]
    if per_class is not None:
        lines += [""] + render_per_class(per_class)
    return lines


def plot_forest(rows: Sequence[Comparison], path: str | Path) -> None:
    """Forest plot of the declared comparisons: Δ top-1 with its 95 % interval, the equivalence
    margin shaded, the paper's value as a cross where declared."""
    from matplotlib.figure import Figure

    from gva.io import save_png

    n = max(len(rows), 1)
    fig = Figure(figsize=(11, 0.45 * n + 1.2))
    ax = fig.subplots()
    ys = np.arange(len(rows))[::-1]
    if rows:
        margin = rows[0].margin
        ax.axvspan(-margin, margin, color="0.9", zorder=0)
    ax.axvline(0.0, color="0.4", lw=0.8)
    for y, r in zip(ys, rows):
        color = {"difference": "C3", "equivalent": "C2"}.get(r.verdict.kind if r.verdict else "", "C0")
        ax.errorbar(r.fit.estimate, y, xerr=[[r.fit.estimate - r.low], [r.high - r.fit.estimate]], fmt="o",
                    color=color, capsize=3)
        if r.paper is not None:
            ax.plot(r.paper, y, "x", color="k", ms=8)
    ax.set_yticks(ys)
    ax.set_yticklabels([r.name for r in rows], fontsize=7)
    ax.set_xlabel("Δ top-1 (95 % interval; x: the paper's value; grey: ±margin)")
    fig.tight_layout()
    fig.subplots_adjust(left=max(fig.subplotpars.left, 0.38))   # long declared names
    save_png(fig, path, dpi=110)


def design_json(design: Design, rows: Sequence[Comparison]) -> dict[str, Any]:
    from gva.report.compare import comparisons_json

    return {"design": Path(design.path).as_posix(), "alpha": design.alpha, "margin": design.margin,
            "families": [{"name": f.name, "title": f.title, "primary": f.primary, "holm": f.holm}
                         for f in design.families],
            "comparisons": comparisons_json(rows)}


__all__ = ["Design", "Family", "Declared", "Side", "load_design", "declared_comparisons", "per_class_data",
           "table_data", "render_design",
           "plot_forest", "design_json"]
