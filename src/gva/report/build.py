"""The report as one value: everything ``gva report`` computes, computed once.

:func:`build_report` takes finished runs and does all the work -- paths made relative, ignored
params dropped, cross-fitted folds pooled, configurations aggregated, the audit rows, the
2-D-on-frames controls, the 3-D gain vs 2-D shift split, the comparisons (automatic, or a design
file's declared ones with its per-class block) -- and returns a :class:`Report`. The renderers
(:mod:`gva.report.render`: Markdown, JSON, plots) only format it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gva.errors import ReportError
from gva.report.audit import AuditRow, ShiftRow, audit_rows, is_audit, shift_rows
from gva.report.collect import Run
from gva.report.compare import DEFAULT_BOOTSTRAP, DEFAULT_MARGIN, REFERENCE_GENERATOR, Comparison, comparisons
from gva.report.folds import is_fold_run, pool_folds
from gva.report.stats import SEED_KEY, ConfigResult, Summary, aggregate, control_pairs, format_value


@dataclass
class Report:
    """What one ``gva report`` run found; :mod:`gva.report.render` turns it into files."""

    title: str
    seed_key: str
    runs: list[Run]                          # as reported: paths relative, folds pooled
    results: list[ConfigResult]              # configurations, aggregated over seeds
    notes: list[str]                         # runs left out, and why
    ignored: dict[str, list[str]]            # --ignore-param keys and their values
    fold_runs: int                           # fold runs pooled into ``runs``
    audit: list[AuditRow] | None          # protocol-audit rows, when the runs form an audit
    shifts: list[ShiftRow]                   # 3-D gain vs 2-D domain shift, where frame 0 was scored
    controls: list[tuple[ConfigResult, ConfigResult, Summary]]   # 2-D-on-frames controls
    compared: list[Comparison]               # the comparisons (automatic or declared)
    compare_notes: list[str]                 # comparisons left out, and why
    design: Any = None                       # gva.report.design.Design, when declared
    per_class: Any = None                    # gva.report.perclass.PerClassData of the design
    table: Any = None                        # gva.report.papertable.TableData of the design
    n_classes: int | None = None
    extras: dict[str, Any] = field(default_factory=dict)


def display_path(value: Any, repo_root: str | Path = ".") -> Any:
    """``value`` as the report shows it: a string starting with ``/`` becomes
    ``os.path.relpath(value, repo_root)`` (``/work/shared/data/x`` from ``/work/main`` ->
    ``../shared/data/x``); anything else is returned unchanged."""
    if isinstance(value, str) and value.startswith("/"):
        return os.path.relpath(value, repo_root)
    return value


def display_paths(runs: Sequence[Run], repo_root: str | Path = ".") -> list[Run]:
    """``runs`` with every param value passed through :func:`display_path`."""
    return [dataclasses.replace(r, params={k: display_path(v, repo_root)
                                           for k, v in r.params.items()}) for r in runs]


def ignore_params(runs: Sequence[Run], keys: Sequence[str]) -> tuple[list[Run], dict[str, list[str]]]:
    """``runs`` without the params ``keys`` (so they do not split configurations: e.g. a param a
    later commit added, absent from older runs), and each key's values as found. A key no run
    has is a :class:`ReportError` (a typo would otherwise pass silently)."""
    found = {}
    for key in keys:
        if not any(key in r.params for r in runs):
            raise ReportError(f"--ignore-param {key!r}: no run has this param")
        found[key] = sorted({format_value(r.params[key]) if key in r.params else "(absent)" for r in runs})
    drop = set(keys)
    return [dataclasses.replace(r, params={k: v for k, v in r.params.items() if k not in drop})
            for r in runs], found


def build_report(runs: Sequence[Run], notes: Sequence[str] = (), seed_key: str = SEED_KEY,
                 title: str = "gva results", repo_root: str | Path = ".", margin: float = DEFAULT_MARGIN,
                 n_boot: int = DEFAULT_BOOTSTRAP, primary: str | None = None,
                 reference_generator: str | None = REFERENCE_GENERATOR, ignore: Sequence[str] = (),
                 design: Any = None, reference_results: str | Path | None = None) -> Report:
    """Every number of the report, in order (see the module docstring):

    1. paths shown relative to ``repo_root``; params in ``ignore`` dropped;
    2. fold runs pooled per configuration and seed;
    3. configurations aggregated over seeds, with the audit, control and shift rows;
    4. comparisons: the design's declared ones (its families, per-class block beside
       ``reference_results``), else every automatic one the predictions allow (equivalence
       ``margin``, ``n_boot`` bootstrap replicates, the ``primary`` one, each generator against
       ``reference_generator``).
    """
    # 1. paths and ignored params
    runs, ignored = ignore_params(display_paths(runs, repo_root), ignore)
    # 2. folds
    fold_runs = sum(is_fold_run(r) for r in runs)
    runs, fold_notes = pool_folds(runs)
    if not runs and fold_notes:
        raise ReportError("no run left to report: " + "; ".join(fold_notes))
    # 3. configurations and their rows
    results = aggregate(runs, seed_key)
    classes = runs[0].params.get("data.classes")
    report = Report(title=title, seed_key=seed_key, runs=runs, results=results, notes=[*notes, *fold_notes],
                    ignored=ignored, fold_runs=fold_runs,
                    audit=audit_rows(runs, seed_key) if is_audit(runs) else None,
                    shifts=shift_rows(results), controls=control_pairs(results, seed_key), compared=[],
                    compare_notes=[], design=design,
                    n_classes=len(classes) if isinstance(classes, list) else None)
    # 4. comparisons
    if design is not None:
        from gva.report.design import declared_comparisons, per_class_data, table_data
        report.compared, report.compare_notes = declared_comparisons(design, runs, n_boot)
        report.per_class = per_class_data(design, runs, reference_results)
        report.table = table_data(design, runs, reference_results)
    elif any(r.predictions is not None for r in runs):
        report.compared, report.compare_notes = comparisons(results, margin, n_boot, primary, seed_key,
                                                            reference_generator)
    elif primary is not None:
        raise ReportError("--primary needs the runs' predictions.csv (none was found)")
    return report


__all__ = ["Report", "build_report", "display_path", "display_paths", "ignore_params"]
