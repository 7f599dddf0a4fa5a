"""Protocol audit grids: runs -> one row per (generator, protocol variant), with each knob's share.

A run's *protocol variant* is the set of reference-protocol knobs it has on
(:func:`gva.protocol.knobs_on`). A run scored with ``evaluate.extra_protocols: [frame0]`` gives
two observations from the same models: with the ``frame0`` knob (2-D top-1 and Δ from
``model2d_frame0`` / ``delta_frame0``: the 2-D model scored on generated frame 0, as the
reference code did) and without it (``model2d`` / ``delta``: on the original image). So the
leave-one-out row for ``frame0`` needs no run of its own.

Rows are grouped by every varying param that is not a protocol param or the seed (typically
``svd.generator``), then by variant. Per row: 2-D and 3-D top-1 and the paired Δ (3-D minus 2-D)
over seeds with a t-interval, each seed's bootstrap interval (from ``gva evaluate``), and, for a
variant that has a reference-protocol row in its group, Δ(reference) minus Δ(variant) paired by
seed: how much of the reference protocol's Δ that variant's missing knobs carried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gva.protocol import KNOBS, PROTOCOL_KEYS, applicable_knobs, knobs_on, variant_name
from gva.report.collect import Run
from gva.report.stats import (
    POOLED_NOTE,
    SEED_KEY,
    Summary,
    format_value,
    metric_value,
    pooled_mark,
    sort_key,
    varying_keys,
)


@dataclass(frozen=True)
class Observation:
    """One run read under one scoring: the knobs on, 2-D / 3-D top-1 and the paired Δ."""

    run: Run
    on: tuple[str, ...]
    top1_2d: float
    top1_3d: float
    delta: float
    ci: tuple[float, float]
    mcnemar_p: float
    discordant: tuple[int, int]


@dataclass
class AuditRow:
    group: str                     # the non-protocol settings that differ (e.g. svd.generator=repeat)
    variant: str                   # "reference protocol", "reference, gva's geometry", ...
    on: tuple[str, ...]
    seeds: list[Any]
    observations: list[Observation]
    top1_2d: Summary
    top1_3d: Summary
    delta: Summary
    share: Summary | None          # Δ(reference) - Δ(this variant), paired by seed


def is_audit(runs: Sequence[Run]) -> bool:
    """Whether any run has a reference-protocol knob on (then the report has an audit section)."""
    return any(knobs_on(r.params) for r in runs)


def observations(run: Run) -> list[Observation]:
    """The run as scored on the original image and, when it has them, on generated frame 0."""
    on = knobs_on(run.params)
    out = []
    for scoring, model2d, delta in (("image", "model2d", "delta"), ("frame0", "model2d_frame0", "delta_frame0")):
        if scoring == "frame0" and not isinstance(run.metrics.get(delta), dict):
            continue
        knobs = tuple(n for n in on if n != "frame0" or scoring == "frame0")
        d = run.metrics.get(delta, {})
        out.append(Observation(
            run=run, on=knobs, top1_2d=metric_value(run, f"{model2d}.top1"),
            top1_3d=metric_value(run, "model3d.top1"), delta=metric_value(run, f"{delta}.top1"),
            ci=(metric_value(run, f"{delta}.top1_ci95_low"), metric_value(run, f"{delta}.top1_ci95_high")),
            mcnemar_p=metric_value(run, f"{delta}.mcnemar_p"),
            discordant=(int(d.get("only_2d_correct", 0)), int(d.get("only_3d_correct", 0)))))
    return out


def _group_keys(runs: Sequence[Run], seed_key: str) -> list[str]:
    return [k for k in varying_keys(runs, seed_key) if k not in PROTOCOL_KEYS]


def audit_rows(runs: Sequence[Run], seed_key: str = SEED_KEY) -> list[AuditRow]:
    """Rows of the audit table, grouped and sorted (groups by their settings; within a group the
    reference protocol first, then by how many knobs are back at gva's, gva's protocol last)."""
    keys = _group_keys(runs, seed_key)
    applicable = applicable_knobs(r.params for r in runs)
    cells: dict[tuple[str, tuple[str, ...]], list[Observation]] = {}
    group_order: dict[str, tuple] = {}
    for run in runs:
        group = ", ".join(f"{k}={format_value(run.params.get(k))}" for k in keys) or "all runs"
        group_order[group] = tuple(sort_key(run.params.get(k)) for k in keys)
        for ob in observations(run):
            cells.setdefault((group, ob.on), []).append(ob)

    def seed_of(o: Observation) -> str:
        return format_value(o.run.params.get(seed_key))

    rows = []
    for (group, on), obs in cells.items():
        obs = sorted(obs, key=lambda o: (sort_key(o.run.params.get(seed_key)), o.run.name))
        ref = {seed_of(o): o.delta for o in cells.get((group, applicable), [])}
        share = None
        if ref and on != applicable:
            diffs = [ref[s] - o.delta for o in obs if (s := seed_of(o)) in ref]
            share = Summary(diffs) if diffs else None
        rows.append(AuditRow(
            group=group, variant=variant_name(on, applicable), on=on,
            seeds=[o.run.params.get(seed_key) for o in obs], observations=obs,
            top1_2d=Summary([o.top1_2d for o in obs]), top1_3d=Summary([o.top1_3d for o in obs]),
            delta=Summary([o.delta for o in obs]), share=share))
    rows.sort(key=lambda r: (group_order[r.group], -len(r.on), r.variant))
    return rows


def render_audit(rows: Sequence[AuditRow]) -> list[str]:
    """The audit section as Markdown lines."""
    present = [k for k in KNOBS if any(k.name in r.on for r in rows)]
    lines = ["## Protocol audit: where a 2-D → 3-D gap comes from", "",
             "Rows are protocol variants: gva's protocol, the reference code's, and the reference with "
             "knobs set back to gva's. Knobs (`gva protocol --help`): "
             + "; ".join(f"**{k.name}**: {k.what}" for k in present) + ". "
             "2-D top-1 is on generated frame 0 when the variant has **frame0**, else on the original "
             "test image; 3-D top-1 is on the clips. Δ = 3-D minus 2-D on the same test images: "
             "mean ± sd over seeds, 95 % t-interval over seeds, and per seed the paired bootstrap "
             "95 % interval. *Share* = Δ(reference) − Δ(variant), paired by seed (t-interval): the part "
             "of the reference protocol's Δ that the knobs set back to gva's carried.", "",
             "| group | protocol variant | seeds | 2-D top-1 | 3-D top-1 | Δ top-1 | 95 % t (seeds) | "
             "per seed Δ [bootstrap 95 %] | share of the reference Δ | 95 % t (seeds) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    pooled = False
    for r in rows:
        marks = [pooled_mark(o.run, "delta_frame0" if "frame0" in o.on else "delta") for o in r.observations]
        pooled = pooled or any(marks)
        per_seed = "; ".join(f"s{format_value(s)}: {o.delta:+.3f} [{o.ci[0]:+.3f}, {o.ci[1]:+.3f}]{m}"
                             for s, o, m in zip(r.seeds, r.observations, marks))
        share = ("–", "–") if r.share is None else (r.share.pm(signed=True), r.share.interval_text())
        lines.append(f"| {r.group} | {r.variant} | {len(r.seeds)} | {r.top1_2d.pm()} | {r.top1_3d.pm()} | "
                     f"{r.delta.pm(signed=True)} | {r.delta.interval_text()} | {per_seed} | {share[0]} | {share[1]} |")
    if pooled:
        lines += ["", POOLED_NOTE]
    return lines


def _json(s: Summary | None) -> dict | None:
    return None if s is None else s.to_json()


def audit_json(rows: Sequence[AuditRow]) -> list[dict[str, Any]]:
    """The audit rows as plain data."""
    return [{"group": r.group, "variant": r.variant, "knobs_on": list(r.on), "seeds": r.seeds,
             "runs": [o.run.name for o in r.observations],
             "top1_2d": _json(r.top1_2d), "top1_3d": _json(r.top1_3d), "delta_top1": _json(r.delta),
             "bootstrap95": [list(o.ci) for o in r.observations],
             "mcnemar_p": [o.mcnemar_p for o in r.observations],
             "discordant_2d_only_3d_only": [list(o.discordant) for o in r.observations],
             "share_of_reference_delta": _json(r.share)} for r in rows]


# ---------------------------------------------------------------- 3-D gain vs 2-D domain shift

@dataclass
class ShiftRow:
    """One configuration whose runs scored the 2-D model on generated frames too.

    ``reported`` = 3-D − 2-D(frame 0), what the reference code reports, splits exactly into
    ``gain`` = 3-D − 2-D(original image) and ``shift`` = 2-D(image) − 2-D(frame 0): the 2-D
    model's loss from being scored on a generated frame instead of the image it was trained on.
    ``shift_mean`` is the same for 2-D averaged over all frames (``frames_mean``), when present.
    """

    label: str
    seeds: list[Any]
    reported: Summary
    gain: Summary
    shift: Summary
    shift_mean: Summary | None


def shift_rows(results: Sequence[Any]) -> list[ShiftRow]:
    """Rows for every configuration (:class:`gva.report.stats.ConfigResult`) whose runs all have
    ``model2d_frame0``; paired within each run, so the three columns are computed seed by seed."""
    rows = []
    for c in results:
        if not c.runs or not all(isinstance(r.metrics.get("model2d_frame0"), dict) for r in c.runs):
            continue
        has_mean = all(isinstance(r.metrics.get("model2d_frames_mean"), dict) for r in c.runs)
        rows.append(ShiftRow(
            label=c.label, seeds=c.seeds,
            reported=Summary([metric_value(r, "delta_frame0.top1") for r in c.runs]),
            gain=Summary([metric_value(r, "delta.top1") for r in c.runs]),
            shift=Summary([metric_value(r, "model2d.top1") - metric_value(r, "model2d_frame0.top1")
                           for r in c.runs]),
            shift_mean=Summary([metric_value(r, "model2d.top1") - metric_value(r, "model2d_frames_mean.top1")
                                for r in c.runs]) if has_mean else None))
    return rows


def render_shift(rows: Sequence[ShiftRow]) -> list[str]:
    """The decomposition table as Markdown lines (mean ± sd and 95 % t-interval over seeds)."""
    def cell(s: Summary | None) -> str:
        return "–" if s is None else f"{s.pm(signed=True)} {s.interval_text()}"
    return ["## 3-D gain vs 2-D domain shift", "",
            "Where the 2-D model was also scored on generated frames: the reference code's Δ "
            "(3-D on the clip minus 2-D on generated frame 0) = **3-D gain** (3-D minus 2-D on the "
            "original test image) + **2-D domain shift** (2-D on the image minus 2-D on frame 0). "
            "Each is computed per seed on the same test images; mean ± sd and 95 % t-interval over seeds.", "",
            "| configuration | seeds | reported Δ (3-D − 2-D frame 0) | 3-D gain (3-D − 2-D image) | "
            "2-D shift (image − frame 0) | 2-D shift (image − all frames averaged) |",
            "| --- | --- | --- | --- | --- | --- |"] + [
        f"| {r.label} | {len(r.seeds)} | {cell(r.reported)} | {cell(r.gain)} | {cell(r.shift)} | "
        f"{cell(r.shift_mean)} |" for r in rows]


def shift_json(rows: Sequence[ShiftRow]) -> list[dict[str, Any]]:
    return [{"configuration": r.label, "seeds": r.seeds, "reported_delta_top1": _json(r.reported),
             "gain_3d_top1": _json(r.gain), "shift_2d_frame0_top1": _json(r.shift),
             "shift_2d_frames_mean_top1": _json(r.shift_mean)} for r in rows]


__all__ = ["Observation", "AuditRow", "is_audit", "observations", "audit_rows", "render_audit", "audit_json",
           "ShiftRow", "shift_rows", "render_shift", "shift_json"]
