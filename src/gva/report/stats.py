"""Aggregation over seeds: runs -> configurations, each with its means, stds and intervals.

Runs are grouped into *configurations* by every param that differs between runs, except the
seed (``train.seed`` by default) and machine/execution settings (:data:`IGNORED_KEYS`). Per
configuration and model: a :class:`Summary` (mean ± sample std, Student-t interval over seeds)
of each metric; per configuration the paired 3-D minus 2-D top-1 difference with each seed's
bootstrap interval and McNemar p-value (as ``gva evaluate`` computed them); and
:func:`control_pairs` compares a ``train2d.frames=all`` control with its baseline seed by seed.
Everything is sorted, so the same runs in any order give the same result.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gva.errors import ReportError
from gva.report.collect import METRICS_FILE, Run
from gva.stats import METRICS

SEED_KEY = "train.seed"
METRIC_KEYS = METRICS   # the statistics floor's list
MODELS = ("model2d", "model3d")
# Params that never name a configuration (machine/execution settings, not the experiment).
IGNORED_KEYS = ("train.device", "train.processes", "evaluate.device", "evaluate.batch_size",
                "svd.device", "svd.processes", "svd.batch_size", "svd.chunk_size",
                "svd.preview_fps", "svd.previews_per_class", "evaluate.latency_repeats",
                "evaluate.latency_warmup", "evaluate.latency_batch_sizes",
                "evaluate.latency_budget_s")


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

    def pm(self, signed: bool = False) -> str:
        """``mean ± std`` as the report prints it (the mean alone for one value; – for nan)."""
        mean = f"{self.mean:+.3f}" if signed else _f(self.mean)
        return f"{mean} ± {_f(self.std)}" if len(self.values) > 1 else mean

    def interval_text(self) -> str:
        """``[low, high]`` of the 95 % t-interval over seeds, signed; – with fewer than 2 values."""
        lo, hi = self.t_interval()
        return "–" if math.isnan(lo) else f"[{lo:+.3f}, {hi:+.3f}]"

    def to_json(self) -> dict:
        """Mean, std (None for one value), values and the 95 % t-interval (None when undefined)."""
        lo, hi = self.t_interval()
        return {"mean": self.mean, "std": None if math.isnan(self.std) else self.std, "values": self.values,
                "t95_low": None if math.isnan(lo) else lo, "t95_high": None if math.isnan(hi) else hi}

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


def _f(x: float, digits: int = 3) -> str:
    return "–" if math.isnan(x) else f"{x:.{digits}f}"


def format_value(value: Any) -> str:
    """A param value as the report writes it (and compares it): JSON for booleans, null,
    lists and mappings, ``str`` otherwise."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def sort_key(value: Any) -> tuple:
    """Numbers in numeric order before everything else in string order."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, format_value(value))


#: The other sources of randomness. Varied in lockstep with the seed (``scripts/grid.sh --vary-all``:
#: each run sets them to its ``train.seed``) they belong to the replicate, not to the configuration.
COMPANION_SEEDS = ("svd.seed", "data.seed")


def lockstep_seeds(runs: Sequence[Run], seed_key: str = SEED_KEY) -> list[str]:
    """The :data:`COMPANION_SEEDS` that vary and equal ``seed_key``'s value in every run."""
    return [k for k in COMPANION_SEEDS
            if len({format_value(r.params.get(k)) for r in runs}) > 1
            and all(format_value(r.params.get(k)) == format_value(r.params.get(seed_key)) for r in runs)]


def varying_keys(runs: Sequence[Run], seed_key: str = SEED_KEY) -> list[str]:
    """Params whose value is not the same in every run (seed, seeds varied with it, and machine
    settings excluded)."""
    keys = sorted({k for r in runs for k in r.params})
    skip = {seed_key, *IGNORED_KEYS, *lockstep_seeds(runs, seed_key)}
    out = []
    for key in keys:
        if key in skip:
            continue
        if len({format_value(r.params.get(key)) for r in runs}) > 1:
            out.append(key)
    return out


def metric_value(run: Run, dotted: str) -> float:
    """The number at ``dotted`` (``"delta.top1"``) in the run's metrics; a missing or
    non-numeric value is a :class:`ReportError` naming the run and the key."""
    value: Any = run.metrics
    try:
        for part in dotted.split("."):
            value = value[part]
        return float(value)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReportError(f"run {run.name}: {METRICS_FILE} has no number at {dotted!r}") from exc


POOLED_NOTE = ("†: cross-fitted runs (folds pooled per seed): the per-seed interval and p are the crossed "
               "model's over that seed's fold models (Student t, `gva.report.folds`), not a bootstrap or McNemar.")


def pooled_mark(run: Run, delta: str = "delta") -> str:
    """"†" when the run's per-seed interval and p of ``delta`` come from pooled folds' crossed model
    (``p_method`` in its metrics), else ""."""
    d = run.metrics.get(delta)
    return "†" if isinstance(d, dict) and "p_method" in d else ""


def _count(run: Run, key: str) -> int:
    """``delta.<key>`` as an int, 0 when absent (older metrics files)."""
    delta = run.metrics.get("delta")
    if not isinstance(delta, dict) or key not in delta:
        return 0
    return int(metric_value(run, f"delta.{key}"))


def _label(settings: dict[str, Any], run: Run, runs: Sequence[Run]) -> str:
    """``k=v, ...`` of the varying params; reference-protocol params (many, and always together)
    are named by the protocol variant instead (:func:`gva.protocol.variant_name`)."""
    from gva.protocol import PROTOCOL_KEYS, applicable_knobs, knobs_on, variant_name

    parts = [f"{k}={format_value(v)}" for k, v in settings.items() if k not in PROTOCOL_KEYS]
    if any(k in PROTOCOL_KEYS for k in settings):
        applicable = applicable_knobs(r.params for r in runs)
        parts.append(f"protocol: {variant_name(knobs_on(run.params), applicable)}")
    return ", ".join(parts) or "all runs"


def aggregate(runs: Sequence[Run], seed_key: str = SEED_KEY) -> list[ConfigResult]:
    """Group ``runs`` by their varying params and summarise each group over seeds."""
    if not runs:
        raise ReportError("no finished runs with metrics/metrics.json")
    keys = varying_keys(runs, seed_key)
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(format_value(run.params.get(k)) for k in keys), []).append(run)
    results = []
    for members in groups.values():
        members = sorted(members, key=lambda r: (sort_key(r.params.get(seed_key)), r.name, r.rev))
        settings = {k: members[0].params.get(k) for k in keys}
        label = _label(settings, members[0], runs)
        seeds = [r.params.get(seed_key) for r in members]
        metrics = {m: {k: Summary([metric_value(r, f"{m}.{k}") for r in members])
                       for k in METRIC_KEYS} for m in MODELS}
        results.append(ConfigResult(
            label=label, settings=settings, runs=members, seeds=seeds, metrics=metrics,
            delta_top1=Summary([metric_value(r, "delta.top1") for r in members]),
            delta_ci=[(metric_value(r, "delta.top1_ci95_low"),
                       metric_value(r, "delta.top1_ci95_high")) for r in members],
            mcnemar_p=[metric_value(r, "delta.mcnemar_p") for r in members],
            discordant=[(_count(r, "only_2d_correct"), _count(r, "only_3d_correct"))
                        for r in members],
        ))
    results.sort(key=lambda c: tuple(sort_key(c.settings[k]) for k in keys))
    return results


def twins(results: Sequence[ConfigResult], key: str,
          value: Any) -> list[tuple[ConfigResult, ConfigResult]]:
    """(twin, configuration) for every configuration whose varying ``key`` is not ``value`` and
    whose twin with ``key=value`` (all other settings equal) exists."""
    out = []
    for c in results:
        if key not in c.settings or format_value(c.settings[key]) == format_value(value):
            continue
        twin = {**c.settings, key: value}
        base = next((b for b in results if b.settings == twin), None)
        if base is not None:
            out.append((base, c))
    return out


def by_seed(base: ConfigResult, other: ConfigResult,
            seed_key: str = SEED_KEY) -> list[tuple[Run, Run]]:
    """(run of ``base``, run of ``other``) for every seed both have, in ``other``'s seed order."""
    runs = {format_value(r.params.get(seed_key)): r for r in base.runs}
    return [(runs[s], r) for r in other.runs if (s := format_value(r.params.get(seed_key))) in runs]


def control_pairs(results: Sequence[ConfigResult],
                  seed_key: str = SEED_KEY) -> list[tuple[ConfigResult, ConfigResult, Summary]]:
    """(baseline, control, per-seed 2-D top-1 control minus baseline) for every configuration
    with ``train2d.frames=all`` whose twin with ``train2d.frames=first`` (all other settings
    equal) exists; only seeds present in both count."""
    out = []
    for base, ctrl in twins(results, "train2d.frames", "first"):
        if ctrl.settings["train2d.frames"] != "all":
            continue
        diffs = [metric_value(r, "model2d.top1") - metric_value(b, "model2d.top1")
                 for b, r in by_seed(base, ctrl, seed_key)]
        if diffs:
            out.append((base, ctrl, Summary(diffs)))
    return out


__all__ = ["SEED_KEY", "COMPANION_SEEDS", "lockstep_seeds", "METRIC_KEYS", "MODELS", "IGNORED_KEYS", "Summary", "ConfigResult",
           "format_value", "sort_key", "varying_keys", "metric_value", "aggregate", "twins", "by_seed", "control_pairs"]
