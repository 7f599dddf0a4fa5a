"""Rendering a :class:`gva.report.build.Report`: ``results.md``, ``results.json`` and the PNG plots.

The renderers only format what :func:`gva.report.build.build_report` computed: Markdown
(:func:`render_markdown`), JSON (:func:`results_json`), ``metrics.png`` (top-1/top-3/macro-F1
per configuration and model, seeds as dots), ``delta_top1.png`` (3-D minus 2-D top-1 per
configuration with per-seed intervals) and, with a design, ``forest.png``. :func:`write_report`
builds and writes. The same inputs give byte-identical outputs: no timestamps, everything sorted,
PNG metadata stripped.

Paths are shown as the user wrote them, relative where they were relative: a param value that is
a string starting with ``/`` (an absolute path, typically ``data.source`` of a queued DVC
experiment) is shown relative to ``repo_root`` (:func:`display_paths`), so the report does not
depend on where the repository was checked out as long as the data sits at the same place
relative to it. Relative paths and every other value are shown unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gva.io import save_png
from gva.report.audit import audit_json, render_audit, render_shift, shift_json
from gva.report.build import Report, build_report
from gva.report.collect import Run
from gva.report.compare import (
    DEFAULT_BOOTSTRAP,
    DEFAULT_MARGIN,
    REFERENCE_GENERATOR,
    comparisons_json,
    render_comparisons,
)
from gva.report.folds import FOLD_KEY, FOLDS_KEY, is_fold_run
from gva.report.stats import (
    METRIC_KEYS,
    MODELS,
    POOLED_NOTE,
    SEED_KEY,
    ConfigResult,
    Summary,
    format_value,
    lockstep_seeds,
    metric_value,
    pooled_mark,
)

METRIC_LABELS = {"top1": "top-1", "top3": "top-3", "f1_macro": "macro-F1"}
MODEL_LABELS = {"model2d": "2-D (original test images)", "model3d": "3-D (generated test clips)"}
# Params shown under "Fixed settings" when they are the same in every run (the rest are noise).
FIXED_KEYS = (
    "data.source", "data.limit_per_class", "data.image_size", "data.val_fraction",
    "svd.generator", "svd.frames", "svd.steps", "model.arch", "model.pretrained",
    "train.image_size", "train.optimizer", "train.lr", "train.step_size", "train.gamma",
    "train.augment", "train2d.epochs", "train2d.batch_size", "train2d.frames", "inflate.source",
    "inflate.last_n", "inflate.time_kernel", "train3d.epochs", "train3d.batch_size", "train3d.lr",
    "evaluate.bootstrap",
)
PLOTS = ("metrics.png", "delta_top1.png")


# ---------------------------------------------------------------------------------- Markdown

def _p(p: float) -> str:
    return "1" if p >= 0.9995 else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _n_test(run: Run) -> int:
    """Test images of the run (0 when the metrics do not say)."""
    return int(metric_value(run, "n_test")) if "n_test" in run.metrics else 0


def render_markdown(report: Report, plots: Sequence[str] = PLOTS) -> str:
    """The report as Markdown (deterministic: no timestamps, sorted everything), in sections:

    1. the title, a test-set-selection warning, what was run (:func:`_overview`);
    2. the design's declared comparisons, when there is a design (:func:`design_lines`);
    3. the protocol audit and the comparisons (:func:`_analysis`);
    4. accuracy per configuration, the paired 3-D − 2-D table, the controls, the shift split
       (:func:`_tables`);
    5. every run, what was skipped, the plots.
    """
    lines = _overview(report)
    declared = design_lines(report)
    if declared:
        lines += [*declared, "", "Everything below describes the runs; comparisons other than the declared "
                  "ones are exploratory.", ""]
    lines += _analysis(report)
    lines += _tables(report)
    lines += _runs_table(report)
    if report.notes:
        lines += ["", "Skipped: " + "; ".join(report.notes) + "."]
    if plots:
        lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _overview(report: Report) -> list[str]:
    """Title, warning, runs and test images, folds, classes, fixed and ignored settings."""
    runs, results, seed_key = report.runs, report.results, report.seed_key
    lines = [f"# {report.title}", ""]
    flagged = sorted(r.name for r in runs if isinstance(r.metrics, dict) and r.metrics.get("protocol_warning"))
    if flagged:
        lines += [f"**WARNING: {len(flagged)} run(s) selected their model on the TEST set (train.select_on: "
                  f"test, the reference code's protocol); their test numbers estimate nothing: "
                  f"{', '.join(flagged)}.**", ""]
    n_test = sorted({_n_test(r) for r in runs})
    companions = "".join(f", `{k}`" for k in lockstep_seeds(runs, seed_key))
    sets = len({tuple(np.sort(r.predictions["id"]).tolist()) for r in runs if r.predictions is not None})
    if sets > 1:
        same = (f", but NOT the same images in every run ({sets} different test sets, by the image ids in "
                "predictions.csv): comparisons between runs that scored different images are left out")
    elif any(r.predictions is None for r in runs):
        same = (" (whether every run scored the same images is not checked: "
                f"{'no run has' if sets == 0 else 'not every run has'} its predictions.csv)")
    else:
        same = " (the same images in every run)"
    lines += [f"{len(runs)} finished runs in {len(results)} configurations; seeds vary "
              f"`{seed_key}`{companions}; {', '.join(map(str, n_test))} paired test images per run"
              f"{same}. Mean ± sample std over seeds.", ""]
    folds = sorted({format_value(r.params[FOLDS_KEY]) for r in runs if is_fold_run(r)})
    if folds:
        lines += [f"Cross-fitted (`{FOLDS_KEY}={', '.join(folds)}`): each run here pools its fold runs "
                  f"(`{FOLD_KEY}` 0..K−1; {report.fold_runs} fold runs in all), whose test splits partition the data, "
                  "so every image is scored once, by models that did not train on it; each model trained on "
                  "(K−1)/K of the pool.", ""]
    classes = runs[0].params.get("data.classes")
    if isinstance(classes, list) and classes:
        k = len(classes)
        lines += [f"{k} classes: chance is top-1 {1 / k:.3f}, top-3 {min(1.0, 3 / k):.3f}.", ""]
    fixed = {k: runs[0].params[k] for k in FIXED_KEYS
             if k in runs[0].params and len({format_value(r.params.get(k)) for r in runs}) == 1}
    if fixed:
        lines += ["Fixed settings: " + ", ".join(f"`{k}={format_value(v)}`"
                                                 for k, v in fixed.items()), ""]
    if report.ignored:
        lines += ["Not told apart (`--ignore-param`; runs that differ only in these count as one "
                  "configuration): " + "; ".join(f"`{k}`: " + ", ".join(f"`{v}`" for v in values)
                                                 for k, values in report.ignored.items()), ""]
    return lines


def _analysis(report: Report) -> list[str]:
    """The protocol audit and, without a design, the automatic comparisons (or why there are none)."""
    lines: list[str] = []
    compared = [] if report.design is not None else report.compared
    compare_notes = [] if report.design is not None else report.compare_notes
    if report.audit is not None:
        lines += render_audit(report.audit) + [""]
    if compared or compare_notes:
        lines += render_comparisons(compared, compare_notes) + [""]
    elif not any(r.predictions is not None for r in report.runs):
        lines += ["No run's `metrics/predictions.csv` was found, so there is no comparisons section: "
                  "the intervals below are over seeds only and leave out test-image variance, and no "
                  "MDE, TOST or rule-chosen verdict is given. (`--predictions DIR`, or the experiments' "
                  "revisions, supply them.)", ""]
    return lines


def _tables(report: Report) -> list[str]:
    """Accuracy per configuration and model, the paired 3-D − 2-D table, controls, the shift split."""
    results = report.results
    lines: list[str] = []
    lines += ["## Accuracy per configuration and model", "",
              "| configuration | model | seeds | top-1 | top-3 | macro-F1 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for c in results:
        for m in MODELS:
            s = c.metrics[m]
            lines.append(f"| {c.label} | {MODEL_LABELS[m]} | {len(c.runs)} | {s['top1'].pm()} | "
                         f"{s['top3'].pm()} | {s['f1_macro'].pm()} |")
    lines += ["", "## Paired difference: 3-D minus 2-D (same test images)", "",
              "Δ top-1 over seeds with a 95 % t-interval over seeds; per seed the paired bootstrap "
              "95 % interval and the exact McNemar p-value (discordant pairs: only 2-D correct / "
              "only 3-D correct). Δ top-3 and Δ macro-F1 are means over seeds.", "",
              "| configuration | seeds | Δ top-1 | 95 % t-interval (seeds) | Δ top-3 | Δ macro-F1 | "
              "per seed: Δ top-1 [bootstrap 95 %] | per seed: McNemar p (2-D only / 3-D only) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    pooled = False
    for c in results:
        d3 = Summary([metric_value(r, "delta.top3") for r in c.runs])
        df1 = Summary([metric_value(r, "delta.f1_macro") for r in c.runs])
        marks = [pooled_mark(r) for r in c.runs]
        pooled = pooled or any(marks)
        per_seed = "; ".join(f"s{format_value(s)}: {d:+.3f} [{a:+.3f}, {b:+.3f}]{m}" for s, d, (a, b), m
                             in zip(c.seeds, c.delta_top1.values, c.delta_ci, marks))
        mc = "; ".join(f"s{format_value(s)}: {_p(p)}{m} ({x}/{y})" for s, p, (x, y), m
                       in zip(c.seeds, c.mcnemar_p, c.discordant, marks))
        lines.append(f"| {c.label} | {len(c.runs)} | {c.delta_top1.pm(signed=True)} | "
                     f"{c.delta_top1.interval_text()} | "
                     f"{d3.mean:+.3f} | {df1.mean:+.3f} | {per_seed} | {mc} |")
    if pooled:
        lines += ["", POOLED_NOTE]
    pairs = report.controls
    if pairs:
        lines += ["", "## Control: 2-D trained with the generated frames as extra images", "",
                  "2-D top-1 on the original test images, `train2d.frames=all` minus "
                  "`train2d.frames=first`, paired by seed (95 % t-interval over seeds).", "",
                  "| control | seeds | Δ 2-D top-1 | 95 % t-interval (seeds) |",
                  "| --- | --- | --- | --- |"]
        for _base, ctrl, diff in pairs:
            lines.append(f"| {ctrl.label} | {len(diff.values)} | {diff.pm(signed=True)} | "
                         f"{diff.interval_text()} |")
    if report.shifts:
        lines += [""] + render_shift(report.shifts)
    return lines


def _runs_table(report: Report) -> list[str]:
    """One row per run: its configuration, seed, name and top-1s."""
    lines = ["", "## Runs", "", "| configuration | seed | run | 2-D top-1 | 3-D top-1 | Δ top-1 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for c in report.results:
        for s, r in zip(c.seeds, c.runs):
            lines.append(f"| {c.label} | {format_value(s)} | {r.name} | "
                         f"{metric_value(r, 'model2d.top1'):.3f} | "
                         f"{metric_value(r, 'model3d.top1'):.3f} | "
                         f"{metric_value(r, 'delta.top1'):+.3f} |")
    return lines


# -------------------------------------------------------------------------------------- JSON

def results_json(report: Report) -> dict[str, Any]:
    """The report as plain data (for other tools): configurations, controls, and the audit, shift,
    comparison and design parts it has."""
    results, seed_key = report.results, report.seed_key
    def summ(s: Summary) -> dict:
        return {"mean": s.mean if s.values else None,
                "std": None if math.isnan(s.std) else s.std, "values": s.values}
    rows = []
    for c in results:
        lo, hi = c.delta_top1.t_interval()
        rows.append({
            "configuration": c.label, "settings": c.settings, "seeds": c.seeds,
            "runs": [r.name for r in c.runs],
            **{m: {k: summ(v) for k, v in c.metrics[m].items()} for m in MODELS},
            "delta_top1": {**summ(c.delta_top1),
                           "t95_low": None if math.isnan(lo) else lo,
                           "t95_high": None if math.isnan(hi) else hi,
                           "bootstrap95": [list(ci) for ci in c.delta_ci],
                           "per_seed_method": ["crossed t over fold models" if pooled_mark(r) else
                                               "paired bootstrap, McNemar" for r in c.runs],
                           "mcnemar_p": c.mcnemar_p,
                           "discordant_2d_only_3d_only": [list(d) for d in c.discordant]},
        })
    controls = [{"baseline": b.label, "control": c.label, "delta_model2d_top1": summ(d)}
                for b, c, d in report.controls]
    out: dict[str, Any] = {"seed_key": seed_key, "configurations": rows, "controls": controls}
    if report.audit is not None:
        out["audit"] = audit_json(report.audit)
    if report.shifts:
        out["shift"] = shift_json(report.shifts)
    if report.design is not None:
        from gva.report.design import design_json
        out["declared"] = design_json(report.design, report.compared)
        if report.per_class is not None:
            from gva.report.perclass import per_class_json
            out["declared"]["per_class"] = per_class_json(report.per_class)
        if report.table is not None:
            from gva.report.papertable import table_json
            out["declared"]["table"] = table_json(report.table)
    elif report.compared:
        out["comparisons"] = comparisons_json(report.compared)
    if report.ignored:
        out["ignored_params"] = report.ignored
    return out


def design_lines(report: Report) -> list[str]:
    """The design's section (its families, Δ seed by seed, per-class block, forest plot); none
    without a design."""
    if report.design is None:
        return []
    from gva.report.design import render_design
    return [*render_design(report.design, report.compared, report.compare_notes, report.per_class, report.table),
            "", "![forest](forest.png)"]


# ------------------------------------------------------------------------------------- plots

def _short(label: str) -> str:
    """Axis label: values only, one per line (``svd.generator=motion`` -> ``motion``)."""
    return "\n".join(part.split("=", 1)[-1] for part in label.split(", "))


def plot_metrics(results: Sequence[ConfigResult], path: str | Path,
                 n_classes: int | None = None) -> None:
    """top-1 / top-3 / macro-F1 per configuration: bars = mean, error bars = std, dots = seeds;
    a dashed line at chance level when ``n_classes`` is known."""
    from matplotlib.figure import Figure
    n = len(results)
    fig = Figure(figsize=(max(6.0, 1.6 * n + 2), 9.0))
    axes = fig.subplots(len(METRIC_KEYS), 1, sharex=True)
    x = np.arange(n)
    width = 0.38
    colours = {"model2d": "#4c72b0", "model3d": "#dd8452"}
    for ax, metric in zip(axes, METRIC_KEYS):
        for j, m in enumerate(MODELS):
            off = (j - 0.5) * width
            summ = [c.metrics[m][metric] for c in results]
            means = [s.mean for s in summ]
            errs = [0.0 if math.isnan(s.std) else s.std for s in summ]
            ax.bar(x + off, means, width, yerr=errs, capsize=3, color=colours[m],
                   alpha=0.8, label=MODEL_LABELS[m])
            for i, s in enumerate(summ):
                ax.scatter(np.full(len(s.values), x[i] + off), s.values, s=12, color="black",
                           zorder=3)
        if n_classes:
            chance = min(1.0, (3 if metric == "top3" else 1) / n_classes)
            ax.axhline(chance, color="grey", ls="--", lw=1,
                       label="chance" if metric == METRIC_KEYS[0] else None)
        ax.set_ylabel(METRIC_LABELS[metric])
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[0].set_title("Test metrics per configuration (mean ± std over seeds; dots: seeds)")
    axes[-1].set_xticks(x, [_short(c.label) for c in results], fontsize=8)
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def plot_delta(results: Sequence[ConfigResult], path: str | Path) -> None:
    """3-D minus 2-D top-1 per configuration: each seed with its bootstrap interval, the mean
    over seeds with its t-interval."""
    from matplotlib.figure import Figure
    n = len(results)
    fig = Figure(figsize=(max(6.0, 1.6 * n + 2), 4.5))
    ax = fig.subplots()
    ax.axhline(0.0, color="grey", lw=1)
    for i, c in enumerate(results):
        k = len(c.runs)
        offs = np.linspace(-0.25, 0.05, k) if k > 1 else np.array([-0.1])
        for j, (off, d, (lo, hi)) in enumerate(zip(offs, c.delta_top1.values, c.delta_ci)):
            ax.errorbar(i + off, d, yerr=[[d - lo], [hi - d]], fmt="o", color="#4c72b0", ms=4,
                        capsize=2, label="seed (paired bootstrap 95 %)" if i == j == 0 else None)
        lo, hi = c.delta_top1.t_interval()
        m = c.delta_top1.mean
        yerr = None if math.isnan(lo) else [[m - lo], [hi - m]]
        ax.errorbar(i + 0.2, m, yerr=yerr, fmt="D", color="#c44e52", ms=6, capsize=4,
                    label="mean over seeds (t 95 %)" if i == 0 else None)
    ax.set_xticks(np.arange(n), [_short(c.label) for c in results], fontsize=8)
    ax.set_ylabel("top-1: 3-D minus 2-D")
    ax.set_title("Paired difference on the same test images")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    save_png(fig, path, dpi=110)


# ------------------------------------------------------------------------------------ report

def write_report(runs: Sequence[Run], out: str | Path, notes: Sequence[str] = (),
                 seed_key: str = SEED_KEY, title: str = "gva results",
                 repo_root: str | Path = ".", margin: float = DEFAULT_MARGIN,
                 n_boot: int = DEFAULT_BOOTSTRAP, primary: str | None = None,
                 reference_generator: str | None = REFERENCE_GENERATOR,
                 ignore: Sequence[str] = (), design: Any = None,
                 reference_results: str | Path | None = None) -> list[ConfigResult]:
    """Build the report (:func:`gva.report.build.build_report`, same arguments) and write
    results.md, results.json, metrics.png, delta_top1.png (and forest.png with a ``design``) to
    ``out``. Returns the aggregated configurations (as shown)."""
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "gva"   # harmless for PNG; keeps any SVG stable
    from gva.io import atomic_path

    out = Path(out)
    report = build_report(runs, notes, seed_key, title, repo_root, margin, n_boot, primary,
                          reference_generator, ignore, design, reference_results)
    plot_metrics(report.results, out / "metrics.png", report.n_classes)
    plot_delta(report.results, out / "delta_top1.png")
    if design is not None:
        from gva.report.design import plot_forest
        plot_forest(report.compared, out / "forest.png")
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(render_markdown(report))
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results_json(report), indent=2, sort_keys=True) + "\n")
    return report.results


__all__ = ["METRIC_LABELS", "MODEL_LABELS", "FIXED_KEYS", "PLOTS", "render_markdown", "results_json", "design_lines",
           "plot_metrics", "plot_delta", "write_report"]
