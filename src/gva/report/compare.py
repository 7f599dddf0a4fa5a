"""The report's comparisons with both sources of variance, their power, and wording by rule.

Every comparison pairs two models' predictions on the same test images, seed by seed:

* per configuration, the 3-D model against its own 2-D model (and, when the runs scored the 2-D
  model on generated frame 0, against that too: the reference code's Δ);
* per ``train2d.frames=all`` control, its 2-D model against the baseline's 2-D model (same seed);
* per configuration whose only difference from another is ``svd.generator``, against the twin
  with the reference generator (default ``repeat``: frames that are copies of the image): the 3-D
  models, and with ``train2d.frames=all`` the 2-D models too, so "new views" is told apart from
  "more steps on the same views".

For each: the hierarchical bootstrap over seeds and test images (:mod:`gva.report.inference`)
of Δ top-1, Δ top-3 (when predictions.csv has the ranked ``top3_*`` columns) and Δ macro-F1
(the primary intervals), a two-sided bootstrap p-value of Δ top-1, Holm-adjusted
over all comparisons in the report, the minimal detectable Δ top-1 of the design (80 % power,
α 0.05: test images, discordance, seeds), TOST against the declared equivalence margin, and the
verdict whose wording follows from those numbers (:func:`gva.report.inference.verdict`). One
comparison may be declared primary (``gva report --primary NAME``).

Needs each run's ``metrics/predictions.csv`` (:func:`gva.report.collect.attach_predictions`);
configurations without them are left out, and said so.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from gva.errors import ReportError
from gva.report.inference import (BootstrapResult, PairedSeed, Verdict, align_seeds, hierarchical_bootstrap,
                                  holm, mde_paired, paired_seed, tost, verdict)
from gva.report.stats import SEED_KEY, ConfigResult, by_seed, control_pairs, twins

log = logging.getLogger(__name__)

DEFAULT_MARGIN = 0.02
DEFAULT_BOOTSTRAP = 10000
#: The generator the others are compared with: its clips repeat the image, so a model trained on
#: them differs from one trained on another generator's clips only in what the frames show.
REFERENCE_GENERATOR = "repeat"


@dataclass
class Comparison:
    name: str                 # "<configuration>: 3-D − 2-D" ...
    short: str                # "3-D − 2-D", the sign convention in words
    seeds: list[Any]
    n_images: int
    top1: BootstrapResult
    top3: BootstrapResult | None      # None when predictions.csv has no top3_* columns
    f1: BootstrapResult
    p: float                  # two-sided bootstrap p-value of Δ top-1
    discordance: float        # mean over seeds of the fraction of images the two models disagree on
    seed_sd: float            # sd over seeds of the per-seed Δ top-1 (nan for one seed)
    mde: float                # minimal detectable Δ top-1 (80 % power, α 0.05)
    margin: float
    p_tost: float
    p_holm: float = math.nan
    verdict: Verdict | None = None
    primary: bool = False


def _bootstrap_p(replicates: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p-value of "Δ = 0" (at least 1 / replicates)."""
    n = replicates.size
    tail = min(np.count_nonzero(replicates <= 0), np.count_nonzero(replicates >= 0))
    return float(min(1.0, max(2 * tail, 1) / n))


def compare(name: str, short: str, pairs: Sequence[PairedSeed], seeds: list[Any], margin: float,
            n_boot: int, seed: int = 0) -> Comparison:
    """One comparison (``b`` minus ``a`` in every pair) over its seeds."""
    top1 = hierarchical_bootstrap(pairs, "top1", n_boot, seed)
    ranked = all(p.pred_a.ndim == 2 and p.pred_b.ndim == 2 and p.pred_a.shape[1] >= 3 for p in pairs)
    top3 = hierarchical_bootstrap(pairs, "top3", n_boot, seed) if ranked else None
    f1 = hierarchical_bootstrap(pairs, "f1_macro", n_boot, seed)
    n = pairs[0].n_images
    a1 = [p.pred_a if p.pred_a.ndim == 1 else p.pred_a[:, 0] for p in pairs]
    b1 = [p.pred_b if p.pred_b.ndim == 1 else p.pred_b[:, 0] for p in pairs]
    disc = float(np.mean([np.mean((a == p.labels) != (b == p.labels)) for a, b, p in zip(a1, b1, pairs)]))
    per_seed = [np.mean(b == p.labels) - np.mean(a == p.labels) for a, b, p in zip(a1, b1, pairs)]
    # Every seed scores the same images, so the spread of the per-seed Δ over seeds is training
    # variance alone; the image part is discordance / n and does not shrink with more seeds.
    seed_sd = float(np.std(per_seed, ddof=1)) if len(pairs) > 1 else math.nan
    mde = mde_paired(n, max(disc, 1.0 / n), len(pairs), 0.0 if math.isnan(seed_sd) else seed_sd)
    return Comparison(name=name, short=short, seeds=seeds, n_images=n, top1=top1, top3=top3, f1=f1,
                      p=_bootstrap_p(top1.replicates), discordance=disc, seed_sd=seed_sd, mde=mde,
                      margin=margin, p_tost=_tost(top1, margin))


def _tost(top1: BootstrapResult, margin: float) -> float:
    """TOST p with the bootstrap standard error; a zero spread (identical predictions) decides by
    the estimate alone."""
    if top1.se > 0:
        return tost(top1.estimate, top1.se, margin)
    return 0.0 if abs(top1.estimate) < margin else 1.0


def _pairs(runs, col_a: str, col_b: str, other=None) -> list[PairedSeed] | None:
    """Per run (seed), ``col_a`` of the run vs ``col_b`` of the same run (or of ``other``'s run of
    that seed), paired by image id; the ranked ``top3_*`` columns replace ``pred_*`` when every
    file has them. None when a file or column is missing; a :class:`ReportError` naming the runs
    when two of them scored different test images (they cannot be paired)."""
    both = list(runs) + list(other or [])
    ranked = (col_a.replace("pred_", "top3_", 1), col_b.replace("pred_", "top3_", 1))
    if all(r.predictions is not None and all(c in r.predictions for c in ranked) for r in both):
        col_a, col_b = ranked
    if any(r.predictions is None or col_a not in r.predictions for r in runs):
        return None
    if any(r.predictions is None or col_b not in r.predictions for r in (other or runs)):
        return None
    if other is None:
        pairs = [paired_seed(r.predictions, col_a, None, col_b) for r in runs]
    else:
        pairs = []
        for a, b in zip(runs, other):
            try:
                pairs.append(paired_seed(a.predictions, col_a, b.predictions, col_b))
            except ReportError as exc:
                raise ReportError(f"{a.name} vs {b.name}: {exc}") from None
    return align_seeds(pairs, [r.name for r in runs])


def comparisons(results: Sequence[ConfigResult], margin: float = DEFAULT_MARGIN,
                n_boot: int = DEFAULT_BOOTSTRAP, primary: str | None = None,
                seed_key: str = SEED_KEY,
                reference_generator: str | None = REFERENCE_GENERATOR) -> tuple[list[Comparison], list[str]]:
    """Every comparison the runs' predictions allow, Holm-adjusted together, with verdicts; and
    notes on what was left out. ``primary`` must name one of them (else :class:`ReportError`);
    ``reference_generator`` (None: none) is the ``svd.generator`` the others are compared with."""
    out: list[Comparison] = []
    notes: list[str] = []

    def paired(name: str, make) -> list[PairedSeed] | None:
        """``make()``'s pairs; a comparison whose runs scored different test images is left out
        and said so (here, in the report's notes and on stderr): its Δ would pair unrelated images."""
        try:
            return make()
        except ReportError as exc:
            note = (f"{name}: left out, {exc}: the comparison pairs images by id, seed by seed, and the "
                    "two-level bootstrap needs every seed to score the same test images")
            log.warning("%s", note)
            notes.append(note)
            return None

    def between(base: ConfigResult, other: ConfigResult, col: str, name: str, short: str) -> None:
        by = by_seed(base, other, seed_key)
        a_runs, b_runs = [a for a, _ in by], [b for _, b in by]
        pairs = paired(name, lambda: _pairs(a_runs, col, col, other=b_runs)) if by else None
        if pairs is not None:
            out.append(compare(name, short, pairs, [b.params.get(seed_key) for b in b_runs], margin, n_boot))

    for c in results:
        if any(r.predictions is None for r in c.runs):
            notes.append(f"{c.label}: no predictions.csv for every run, left out of the comparisons")
            continue
        name = f"{c.label}: 3-D − 2-D"
        pairs = paired(name, lambda: _pairs(c.runs, "pred_2d", "pred_3d"))
        if pairs is None:
            continue
        out.append(compare(name, "3-D − 2-D", pairs, c.seeds, margin, n_boot))
        name = f"{c.label}: 3-D − 2-D on frame 0"
        frame0 = paired(name, lambda: _pairs(c.runs, "pred_2d_frame0", "pred_3d"))
        if frame0 is not None:
            out.append(compare(name, "3-D − 2-D(frame 0)", frame0, c.seeds, margin, n_boot))
    for base, ctrl, _ in control_pairs(results, seed_key):
        between(base, ctrl, "pred_2d", f"{ctrl.label}: 2-D on frames − 2-D", "2-D(frames) − 2-D")
    if reference_generator is not None:
        ref = reference_generator
        for base, c in twins(results, "svd.generator", ref):
            gen = c.settings["svd.generator"]
            between(base, c, "pred_3d", f"{c.label}: 3-D − 3-D on {ref} clips", f"3-D({gen}) − 3-D({ref})")
            # With train2d.frames=first both 2-D models saw the same images: nothing to compare.
            if c.runs[0].params.get("train2d.frames") == "all":
                between(base, c, "pred_2d", f"{c.label}: 2-D on frames − 2-D on {ref} frames",
                        f"2-D({gen} frames) − 2-D({ref} frames)")
    if primary is not None:
        names = [c.name for c in out]
        if primary not in names:
            raise ReportError(f"--primary {primary!r} names no comparison; they are: {'; '.join(names)}")
        for c in out:
            c.primary = c.name == primary
    for c, p_adj in zip(out, holm([c.p for c in out]) if out else []):
        c.p_holm = p_adj
        c.verdict = verdict(c.top1.estimate, c.top1.low, c.top1.high, p_adj, c.mde, c.margin, c.p_tost,
                            label=c.short)
    return out, notes


def _ci(b: BootstrapResult | None) -> str:
    return "–" if b is None else f"{b.estimate:+.3f} [{b.low:+.3f}, {b.high:+.3f}]"


def _p(p: float) -> str:
    return "1" if p >= 0.9995 else f"{p:.3f}" if p >= 0.001 else "<0.001"


def render_comparisons(rows: Sequence[Comparison], notes: Sequence[str] = ()) -> list[str]:
    """The comparisons section as Markdown lines."""
    if not rows:
        return ["## Comparisons: intervals over seeds and test images", "",
                "No comparison could be made. Left out: " + "; ".join(notes) + "."] if notes else []
    m = rows[0]
    lines = ["## Comparisons: intervals over seeds and test images", "",
             f"Each row pairs two models on the same {m.n_images} test images, seed by seed. Δ is the "
             "mean over seeds; its 95 % interval is a two-level bootstrap (resample the seeds, then one "
             f"set of test images shared by the drawn seeds; {m.top1.n_boot} replicates), so it covers "
             "training *and* test-image variance. p: two-sided bootstrap p of Δ top-1 = 0, Holm-adjusted "
             f"over the {len(rows)} comparisons of this report. MDE: the smallest Δ top-1 this design "
             "detects with 80 % power at α 0.05 (discordant pairs / n for the images, the sd of the "
             f"per-seed Δ over seeds for training). TOST: equivalence within ±{m.margin:.3f}. The verdict "
             "is chosen by rule from these numbers: *a difference* needs the interval to exclude 0 and "
             "Holm p < 0.05; *equivalent* needs TOST p < 0.05; otherwise *no detectable difference*.", "",
             "| comparison | seeds | Δ top-1 [95 %] | Δ top-3 [95 %] | Δ macro-F1 [95 %] | p | Holm p | MDE | "
             "TOST p | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in rows:
        star = "**primary:** " if c.primary else ""
        lines.append(
            f"| {star}{c.name} | {len(c.seeds)} | {_ci(c.top1)} | {_ci(c.top3)} | {_ci(c.f1)} | "
            f"{_p(c.p)} | {_p(c.p_holm)} | "
            f"±{c.mde:.3f}{' (1 seed: images only)' if len(c.seeds) < 2 else ''} | {_p(c.p_tost)} | "
            f"{c.verdict.text} |")
    if not any(c.primary for c in rows):
        lines += ["", "No comparison was declared primary (`gva report --primary NAME`)."]
    if notes:
        lines += ["", "Left out: " + "; ".join(notes) + "."]
    return lines


def comparisons_json(rows: Sequence[Comparison]) -> list[dict[str, Any]]:
    def boot(b: BootstrapResult) -> dict:
        return {"estimate": b.estimate, "low": b.low, "high": b.high, "se": b.se,
                "replicates": b.n_boot, "confidence": b.confidence}
    return [{"comparison": c.name, "seeds": c.seeds, "n_images": c.n_images, "primary": c.primary,
             "delta_top1": boot(c.top1), "delta_top3": boot(c.top3) if c.top3 else None,
             "delta_f1_macro": boot(c.f1), "p_bootstrap": c.p,
             "p_holm": c.p_holm, "discordance": c.discordance,
             "seed_sd": None if math.isnan(c.seed_sd) else c.seed_sd, "mde_top1": c.mde,
             "equivalence_margin": c.margin, "p_tost": c.p_tost,
             "verdict": c.verdict.kind if c.verdict else None,
             "verdict_text": c.verdict.text if c.verdict else None} for c in rows]


__all__ = ["DEFAULT_MARGIN", "DEFAULT_BOOTSTRAP", "REFERENCE_GENERATOR", "Comparison", "compare", "comparisons",
           "render_comparisons", "comparisons_json"]
