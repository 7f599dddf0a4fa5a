"""``gva report``: experiments over seeds -> one results table (Markdown) and PNG plots.

Input is either the output of ``dvc exp show --json`` (a file, or run here with ``--from-dvc``)
or pipeline run directories / ``metrics.json`` files (each with its ``params.yaml`` in the run
root). Every finished run contributes one :class:`Run`: its flattened params and the evaluate
stage's ``metrics/metrics.json`` (``model2d.*``, ``model3d.*``, ``delta.*``).

Runs are grouped into *configurations*: all params that differ between runs, except the seed
(``train.seed`` by default), name a configuration. Per configuration and model the report gives
mean ± sample standard deviation over seeds of top-1, top-3 and macro-F1; per configuration the
paired 3-D minus 2-D top-1 difference as its mean ± std over seeds with a t-interval over seeds,
each seed's own paired-bootstrap 95 % interval and its exact McNemar p-value (both computed by
``gva evaluate`` on the same test images). Where a configuration has a ``train2d.frames=all``
twin (the "2-D on generated frames" control), the control's 2-D model is compared with the
baseline's seed by seed.

Output (``--out``, default ``reports/``): ``results.md``, ``results.json`` (the aggregated rows),
``metrics.png`` (top-1/top-3/macro-F1 per configuration and model, seeds as dots) and
``delta_top1.png`` (3-D minus 2-D top-1 per configuration, per-seed intervals). The same inputs
give byte-identical outputs: runs, configurations and keys are sorted, no timestamps, no paths
of the machine that rendered it, PNG metadata stripped.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import yaml

from gva.io import save_png

SEED_KEY = "train.seed"
METRIC_KEYS = ("top1", "top3", "f1_macro")
METRIC_LABELS = {"top1": "top-1", "top3": "top-3", "f1_macro": "macro-F1"}
MODELS = ("model2d", "model3d")
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
# Params that never name a configuration (machine/execution settings, not the experiment).
IGNORED_KEYS = ("train.device", "train.processes", "evaluate.device", "evaluate.batch_size",
                "svd.device", "svd.processes", "svd.batch_size", "svd.chunk_size",
                "svd.preview_fps", "svd.previews_per_class", "evaluate.latency_repeats",
                "evaluate.latency_warmup", "evaluate.latency_batch_sizes",
                "evaluate.latency_budget_s")
METRICS_FILE = "metrics/metrics.json"


class ReportError(ValueError):
    """Input the report cannot use; the message says which."""


@dataclass(frozen=True)
class Run:
    """One finished pipeline run: a name, its flattened params and its metrics.json content."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    rev: str = ""


@dataclass
class Summary:
    """Mean, sample std (ddof 1; nan for one value) and the values, in seed order."""

    values: list[float]
    mean: float = field(init=False)
    std: float = field(init=False)

    def __post_init__(self) -> None:
        arr = np.asarray(self.values, dtype=np.float64)
        self.mean = float(arr.mean()) if arr.size else math.nan
        self.std = float(arr.std(ddof=1)) if arr.size > 1 else math.nan

    def t_interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Two-sided Student-t interval of the mean over seeds; nan with fewer than 2 values."""
        n = len(self.values)
        if n < 2:
            return math.nan, math.nan
        from scipy import stats
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * self.std / math.sqrt(n)
        return self.mean - half, self.mean + half


@dataclass
class ConfigResult:
    """All runs of one configuration, aggregated over seeds."""

    label: str
    settings: dict[str, Any]          # the varying params (seed excluded) that name it
    runs: list[Run]                   # sorted by seed, then name
    seeds: list[Any]
    metrics: dict[str, dict[str, Summary]]   # model -> metric -> summary
    delta_top1: Summary
    delta_ci: list[tuple[float, float]]      # per seed: paired bootstrap 95 % interval
    mcnemar_p: list[float]                   # per seed
    discordant: list[tuple[int, int]]        # per seed: (only 2-D correct, only 3-D correct)


# ---------------------------------------------------------------------------------- collecting

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


def _params_of(data: Mapping[str, Any]) -> dict[str, Any]:
    params = (data.get("params") or {}).get("params.yaml") or {}
    return flatten(params.get("data") or {})


def _metrics_of(data: Mapping[str, Any]) -> dict[str, Any] | None:
    entry = (data.get("metrics") or {}).get(METRICS_FILE) or {}
    metrics = entry.get("data")
    return metrics if isinstance(metrics, dict) and "delta" in metrics else None


def runs_from_exp_show(exp_show: Any, include_workspace: bool = False,
                       include_commits: bool = True) -> tuple[list[Run], list[str]]:
    """Finished runs in ``dvc exp show --json`` output (DVC 3.x) and notes on what was skipped.

    The output is a list of commits (the first is usually ``workspace``); each commit has
    ``data`` (params, metrics) and ``experiments``: a list of ``{"name", "executor", "revs"}``
    groups whose ``revs[0]`` is the experiment. Experiments still queued or running, failed,
    or without ``metrics/metrics.json`` are skipped and listed in the notes.
    """
    if not isinstance(exp_show, list):
        raise ReportError("expected the JSON list printed by `dvc exp show --json`")
    runs: list[Run] = []
    notes: list[str] = []
    for commit in exp_show:
        rev = commit.get("rev", "")
        data = commit.get("data") or {}
        is_ws = rev == "workspace"
        if (include_workspace if is_ws else include_commits):
            metrics = _metrics_of(data)
            if metrics is not None:
                runs.append(Run(commit.get("name") or rev, _params_of(data), metrics, rev))
        for group in commit.get("experiments") or []:
            name = group.get("name") or ""
            state = ((group.get("executor") or {}).get("state")) or "success"
            revs = group.get("revs") or []
            if state != "success" or not revs:
                notes.append(f"{name or '?'}: {state}, skipped")
                continue
            exp = revs[0]
            name = name or exp.get("name") or exp.get("rev", "")
            metrics = _metrics_of(exp.get("data") or {}) if not exp.get("error") else None
            if metrics is None:
                notes.append(f"{name}: no {METRICS_FILE}, skipped")
                continue
            runs.append(Run(name, _params_of(exp["data"]), metrics, exp.get("rev", "")))
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
    params = flatten(_read(root / "params.yaml", "YAML") or {})
    metrics = _read(metrics_path, "JSON")
    if not isinstance(metrics, dict) or "delta" not in metrics:
        raise ReportError(f"{metrics_path}: not a gva evaluate metrics.json (no 'delta')")
    return Run(root.resolve().name, params, metrics)


def _read(path: Path, kind: str) -> Any:
    """Parse ``path`` as ``kind`` ("JSON" or "YAML"); a file that does not parse is a
    :class:`ReportError` naming it."""
    parse = json.loads if kind == "JSON" else yaml.safe_load
    try:
        return parse(path.read_text())
    except (ValueError, yaml.YAMLError) as exc:  # JSONDecodeError is a ValueError
        raise ReportError(f"{path}: not valid {kind}: {exc}") from exc


def dvc_exp_show(repo: str | Path = ".") -> Any:
    """Run ``dvc exp show --json`` in ``repo`` and parse it."""
    out = subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


# --------------------------------------------------------------------------------- aggregating

def _fmt_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _sort_key(value: Any) -> tuple:
    """Numbers in numeric order before everything else in string order."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, _fmt_value(value))


def varying_keys(runs: Sequence[Run], seed_key: str = SEED_KEY) -> list[str]:
    """Params whose value is not the same in every run (seed and machine settings excluded)."""
    keys = sorted({k for r in runs for k in r.params})
    out = []
    for key in keys:
        if key == seed_key or key in IGNORED_KEYS:
            continue
        if len({_fmt_value(r.params.get(key)) for r in runs}) > 1:
            out.append(key)
    return out


def _get(run: Run, dotted: str) -> float:
    value: Any = run.metrics
    try:
        for part in dotted.split("."):
            value = value[part]
        return float(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"run {run.name}: {METRICS_FILE} has no number at {dotted!r}") from exc


def aggregate(runs: Sequence[Run], seed_key: str = SEED_KEY) -> list[ConfigResult]:
    """Group ``runs`` by their varying params and summarise each group over seeds."""
    if not runs:
        raise ReportError("no finished runs with metrics/metrics.json")
    keys = varying_keys(runs, seed_key)
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(_fmt_value(run.params.get(k)) for k in keys), []).append(run)
    results = []
    for members in groups.values():
        members = sorted(members, key=lambda r: (_sort_key(r.params.get(seed_key)), r.name, r.rev))
        settings = {k: members[0].params.get(k) for k in keys}
        label = ", ".join(f"{k}={_fmt_value(v)}" for k, v in settings.items()) or "all runs"
        seeds = [r.params.get(seed_key) for r in members]
        metrics = {m: {k: Summary([_get(r, f"{m}.{k}") for r in members])
                       for k in METRIC_KEYS} for m in MODELS}
        results.append(ConfigResult(
            label=label, settings=settings, runs=members, seeds=seeds, metrics=metrics,
            delta_top1=Summary([_get(r, "delta.top1") for r in members]),
            delta_ci=[(_get(r, "delta.top1_ci95_low"),
                       _get(r, "delta.top1_ci95_high")) for r in members],
            mcnemar_p=[_get(r, "delta.mcnemar_p") for r in members],
            discordant=[(int(r.metrics["delta"].get("only_2d_correct", 0)),
                         int(r.metrics["delta"].get("only_3d_correct", 0))) for r in members],
        ))
    results.sort(key=lambda c: tuple(_sort_key(c.settings[k]) for k in keys))
    return results


def control_pairs(results: Sequence[ConfigResult],
                  seed_key: str = SEED_KEY) -> list[tuple[ConfigResult, ConfigResult, Summary]]:
    """(baseline, control, per-seed 2-D top-1 control minus baseline) for every configuration
    with ``train2d.frames=all`` whose twin with ``train2d.frames=first`` (all other settings
    equal) exists; only seeds present in both count."""
    out = []
    for ctrl in results:
        if ctrl.settings.get("train2d.frames") != "all":
            continue
        twin = {**ctrl.settings, "train2d.frames": "first"}
        base = next((c for c in results if c.settings == twin), None)
        if base is None:
            continue
        base_by_seed = {_fmt_value(r.params.get(seed_key)): r for r in base.runs}
        diffs = [_get(r, "model2d.top1") - _get(base_by_seed[s], "model2d.top1")
                 for r in ctrl.runs if (s := _fmt_value(r.params.get(seed_key))) in base_by_seed]
        if diffs:
            out.append((base, ctrl, Summary(diffs)))
    return out


# ----------------------------------------------------------------------------------- rendering

def _f(x: float, digits: int = 3) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def _pm(s: Summary, signed: bool = False) -> str:
    mean = f"{s.mean:+.3f}" if signed else _f(s.mean)
    return f"{mean} ± {_f(s.std)}" if len(s.values) > 1 else mean


def _p(p: float) -> str:
    return "1" if p >= 0.9995 else f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _seed_list(seeds: Iterable[Any]) -> str:
    return ", ".join(_fmt_value(s) for s in seeds)


def render_markdown(results: Sequence[ConfigResult], runs: Sequence[Run], notes: Sequence[str],
                    seed_key: str = SEED_KEY, title: str = "gva results",
                    plots: Sequence[str] = ()) -> str:
    """The report as Markdown (deterministic: no timestamps, sorted everything)."""
    lines = [f"# {title}", ""]
    n_test = sorted({int(r.metrics.get("n_test", 0)) for r in runs})
    lines += [f"{len(runs)} finished runs in {len(results)} configurations; seeds vary "
              f"`{seed_key}`; {', '.join(map(str, n_test))} paired test images per run "
              "(the same images in every run). Mean ± sample std over seeds.", ""]
    classes = runs[0].params.get("data.classes")
    if isinstance(classes, list) and classes:
        k = len(classes)
        lines += [f"{k} classes: chance is top-1 {1 / k:.3f}, top-3 {min(1.0, 3 / k):.3f}.", ""]
    fixed = {k: runs[0].params[k] for k in FIXED_KEYS
             if k in runs[0].params and len({_fmt_value(r.params.get(k)) for r in runs}) == 1}
    if fixed:
        lines += ["Fixed settings: " + ", ".join(f"`{k}={_fmt_value(v)}`" for k, v in fixed.items()),
                  ""]

    lines += ["## Accuracy per configuration and model", "",
              "| configuration | model | seeds | top-1 | top-3 | macro-F1 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for c in results:
        for m in MODELS:
            s = c.metrics[m]
            lines.append(f"| {c.label} | {MODEL_LABELS[m]} | {len(c.runs)} | {_pm(s['top1'])} | "
                         f"{_pm(s['top3'])} | {_pm(s['f1_macro'])} |")
    lines += ["", "## Paired difference: 3-D minus 2-D (same test images)", "",
              "Δ top-1 over seeds with a 95 % t-interval over seeds; per seed the paired bootstrap "
              "95 % interval and the exact McNemar p-value (discordant pairs: only 2-D correct / "
              "only 3-D correct). Δ top-3 and Δ macro-F1 are means over seeds.", "",
              "| configuration | seeds | Δ top-1 | 95 % t-interval (seeds) | Δ top-3 | Δ macro-F1 | "
              "per seed: Δ top-1 [bootstrap 95 %] | per seed: McNemar p (2-D only / 3-D only) |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in results:
        lo, hi = c.delta_top1.t_interval()
        d3 = Summary([_get(r, "delta.top3") for r in c.runs])
        df1 = Summary([_get(r, "delta.f1_macro") for r in c.runs])
        per_seed = "; ".join(f"s{_fmt_value(s)}: {d:+.3f} [{a:+.3f}, {b:+.3f}]" for s, d, (a, b)
                             in zip(c.seeds, c.delta_top1.values, c.delta_ci))
        mc = "; ".join(f"s{_fmt_value(s)}: {_p(p)} ({x}/{y})" for s, p, (x, y)
                       in zip(c.seeds, c.mcnemar_p, c.discordant))
        interval = f"[{lo:+.3f}, {hi:+.3f}]" if not math.isnan(lo) else "–"
        lines.append(f"| {c.label} | {len(c.runs)} | {_pm(c.delta_top1, signed=True)} | {interval} | "
                     f"{d3.mean:+.3f} | {df1.mean:+.3f} | {per_seed} | {mc} |")
    pairs = control_pairs(results, seed_key)
    if pairs:
        lines += ["", "## Control: 2-D trained with the generated frames as extra images", "",
                  "2-D top-1 on the original test images, `train2d.frames=all` minus "
                  "`train2d.frames=first`, paired by seed (95 % t-interval over seeds).", "",
                  "| control | seeds | Δ 2-D top-1 | 95 % t-interval (seeds) |",
                  "| --- | --- | --- | --- |"]
        for _base, ctrl, diff in pairs:
            lo, hi = diff.t_interval()
            interval = f"[{lo:+.3f}, {hi:+.3f}]" if not math.isnan(lo) else "–"
            lines.append(f"| {ctrl.label} | {len(diff.values)} | {_pm(diff, signed=True)} | "
                         f"{interval} |")
    lines += ["", "## Runs", "", "| configuration | seed | run | 2-D top-1 | 3-D top-1 | Δ top-1 |",
              "| --- | --- | --- | --- | --- | --- |"]
    for c in results:
        for s, r in zip(c.seeds, c.runs):
            lines.append(f"| {c.label} | {_fmt_value(s)} | {r.name} | "
                         f"{_get(r, 'model2d.top1'):.3f} | "
                         f"{_get(r, 'model3d.top1'):.3f} | "
                         f"{_get(r, 'delta.top1'):+.3f} |")
    if notes:
        lines += ["", "Skipped: " + "; ".join(notes) + "."]
    if plots:
        lines += [""] + [f"![{Path(p).stem}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def results_json(results: Sequence[ConfigResult], seed_key: str = SEED_KEY) -> dict:
    """The aggregated rows as plain data (for other tools)."""
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
                           "mcnemar_p": c.mcnemar_p,
                           "discordant_2d_only_3d_only": [list(d) for d in c.discordant]},
        })
    controls = [{"baseline": b.label, "control": c.label, "delta_model2d_top1": summ(d)}
                for b, c, d in control_pairs(results, seed_key)]
    return {"seed_key": seed_key, "configurations": rows, "controls": controls}


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


def write_report(runs: Sequence[Run], out: str | Path, notes: Sequence[str] = (),
                 seed_key: str = SEED_KEY, title: str = "gva results") -> list[ConfigResult]:
    """Aggregate ``runs`` and write results.md, results.json, metrics.png, delta_top1.png."""
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "gva"   # harmless for PNG; keeps any SVG stable
    from gva.io import atomic_path

    out = Path(out)
    results = aggregate(runs, seed_key)
    classes = runs[0].params.get("data.classes")
    plot_metrics(results, out / "metrics.png", len(classes) if isinstance(classes, list) else None)
    plot_delta(results, out / "delta_top1.png")
    md = render_markdown(results, runs, notes, seed_key, title,
                         plots=("metrics.png", "delta_top1.png"))
    with atomic_path(out / "results.md") as tmp:
        tmp.write_text(md)
    with atomic_path(out / "results.json") as tmp:
        tmp.write_text(json.dumps(results_json(results, seed_key), indent=2, sort_keys=True) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    """``gva report [--exp-json FILE | --from-dvc [REPO] | --runs DIR_OR_METRICS...] [--out DIR]``.

    Exit 0 on success, 1 on unusable input (one line on stderr)."""
    parser = argparse.ArgumentParser(prog="gva report", description=__doc__.splitlines()[0])
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--exp-json", metavar="FILE",
                     help="output of `dvc exp show --json` ('-' = stdin)")
    src.add_argument("--from-dvc", metavar="REPO", nargs="?", const=".",
                     help="run `dvc exp show --json` in REPO (default: .)")
    src.add_argument("--runs", metavar="PATH", nargs="+",
                     help="run directories (params.yaml + metrics/metrics.json) or metrics.json files")
    parser.add_argument("--out", default="reports", help="output directory (default: reports)")
    parser.add_argument("--seed-key", default=SEED_KEY, help=f"param that varies over seeds "
                                                              f"(default: {SEED_KEY})")
    parser.add_argument("--include-workspace", action="store_true",
                        help="also count the workspace row of `dvc exp show` (usually a duplicate)")
    parser.add_argument("--title", default="gva results")
    args = parser.parse_args(argv)
    try:
        notes: list[str] = []
        if args.runs:
            runs = [run_from_path(p) for p in args.runs]
        else:
            if args.exp_json == "-":
                data = json.load(sys.stdin)
            elif args.exp_json:
                data = _read(Path(args.exp_json), "JSON")
            else:
                data = dvc_exp_show(args.from_dvc)
            runs, notes = runs_from_exp_show(data, include_workspace=args.include_workspace)
        results = write_report(runs, args.out, notes, args.seed_key, args.title)
    except (ReportError, OSError, json.JSONDecodeError, KeyError,
            subprocess.CalledProcessError) as exc:
        print(f"gva report: error: {exc}", file=sys.stderr)
        return 1
    print(f"gva report: {len(runs)} runs, {len(results)} configurations -> {args.out}/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
