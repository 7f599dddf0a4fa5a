"""The report's comparisons with both sources of variance, their power, and wording by rule.

Every comparison pairs two models' predictions on the same test images, seed by seed:

* per configuration, the 3-D model against its own 2-D model (and, when the runs scored the 2-D
  model on generated frame 0, against that too: the reference code's Δ);
* per ``train2d.frames=all`` control, its 2-D model against the baseline's 2-D model (same seed);
* per configuration whose only difference from another is ``svd.generator``, against the twin
  with the reference generator (default ``repeat``: frames that are copies of the image): the 3-D
  models, and with ``train2d.frames=all`` the 2-D models too, so "new views" is told apart from
  "more steps on the same views".

For each, Δ top-1 from the crossed random-effects model of seeds (or seed x fold models) and
test images (:mod:`gva.stats.crossed`): its Student-t interval and p, Holm-adjusted within its
family (:func:`decide`; duplicates counted once), the MDE of the same model and decision rule,
TOST against the declared equivalence margin, and the verdict whose wording follows from those
numbers (:func:`gva.report.inference.verdict`). The two-level bootstrap over seeds and test
images (:mod:`gva.stats.bootstrap`) gives Δ top-3 (with the ranked ``top3_*`` columns), Δ
macro-F1 and a cross-check of Δ top-1. One comparison may be declared primary (``gva report
--primary NAME``); a design file declares families of them (:mod:`gva.report.design`).

Needs each run's ``metrics/predictions.csv`` (:func:`gva.report.collect.attach_predictions`);
configurations without them are left out, and said so.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gva.errors import ReportError
from gva.report.inference import Verdict, holm, mde_text, verdict
from gva.report.predictions import align_seeds, paired_seed
from gva.report.stats import SEED_KEY, ConfigResult, by_seed, control_pairs, twins
from gva.stats import crossed
from gva.stats.bootstrap import BootstrapResult, PairedSeed, hierarchical_bootstrap
from gva.stats.crossed import Crossed

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
    fit: Crossed              # Δ top-1 with seeds (or seed x fold models) and images as crossed
                              # random effects: the interval, p, TOST and MDE the verdict uses
    top1: BootstrapResult     # the two-level bootstrap of Δ top-1: a cross-check column
    top3: BootstrapResult | None      # None when predictions.csv has no top3_* columns
    f1: BootstrapResult
    per_seed: list[float]     # Δ top-1 of each seed
    discordance: float        # mean over seeds of the fraction of images the two models disagree on
    margin: float
    family: str = "all"       # its Holm family
    holm: bool = True         # whether the family is Holm-adjusted
    duplicate_of: str | None = None   # the same per-image differences as that comparison
    n_tests: int = 1          # comparisons in its Holm family (duplicates counted once)
    p_holm: float = math.nan
    mde: float = math.nan     # smallest |Δ top-1| detected with 80 % power by the verdict's rule
    verdict: Verdict | None = None
    primary: bool = False
    paper: float | None = None   # the published value of this Δ, when the design names one
    data_key: bytes = b""     # hash of the per-image differences and their model labels (duplicates)

    @property
    def low(self) -> float:
        return self.fit.interval()[0]

    @property
    def high(self) -> float:
        return self.fit.interval()[1]

    @property
    def p(self) -> float:
        """Two-sided p of Δ top-1 = 0 (crossed model, Student t)."""
        return self.fit.p_value()

    @property
    def p_tost(self) -> float:
        return self.fit.p_tost(self.margin)


def _differences(pairs: Sequence[PairedSeed]) -> tuple[np.ndarray, np.ndarray | None]:
    """(seeds, images) per-image Δ top-1 and, when some seed was cross-fitted, which of the seed's
    fold models scored each image (None: one model per seed)."""
    d = np.stack([(_top1(p.pred_b) == p.labels).astype(np.float64) - (_top1(p.pred_a) == p.labels)
                  for p in pairs])
    if all(p.groups is None for p in pairs):
        return d, None
    return d, np.stack([p.groups if p.groups is not None else np.zeros(p.n_images, np.int64) for p in pairs])


def _top1(pred: np.ndarray) -> np.ndarray:
    return pred if pred.ndim == 1 else pred[:, 0]


def compare(name: str, short: str, pairs: Sequence[PairedSeed], seeds: list[Any], margin: float,
            n_boot: int, seed: int = 0) -> Comparison:
    """One comparison (``b`` minus ``a`` in every pair) over its seeds; Holm, MDE and the verdict
    come with its family (:func:`decide`)."""
    d, models = _differences(pairs)
    result = crossed.fit(d, models)
    top1 = hierarchical_bootstrap(pairs, "top1", n_boot, seed)
    ranked = all(p.pred_a.ndim == 2 and p.pred_b.ndim == 2 and p.pred_a.shape[1] >= 3 for p in pairs)
    top3 = hierarchical_bootstrap(pairs, "top3", n_boot, seed) if ranked else None
    f1 = hierarchical_bootstrap(pairs, "f1_macro", n_boot, seed)
    key = hashlib.sha256(repr((seeds, d.shape)).encode() + d.tobytes()
                         + (b"" if models is None else np.ascontiguousarray(models, np.int64).tobytes()))
    return Comparison(name=name, short=short, seeds=seeds, n_images=pairs[0].n_images, fit=result,
                      top1=top1, top3=top3, f1=f1, per_seed=[float(x) for x in d.mean(axis=1)],
                      discordance=float(np.mean(d != 0)), margin=margin, data_key=key.digest())


def decide(rows: Sequence[Comparison], alpha: float = 0.05, power: float = 0.8,
           missing: Mapping[str, int] | None = None) -> None:
    """Holm within each family, MDE and verdict of every row (in place).

    A row whose per-image differences equal an earlier row's of the same family (e.g. two
    configurations whose predictions are identical) is marked ``duplicate_of`` it and not counted
    again in the family: Holm adjusts over distinct tests. ``missing``: per family, declared tests
    that could not be computed yet; they count in the family as p = 1, so an interim report is
    never adjusted less than the declared design will be. The MDE is for the Holm level that
    holds whatever the order of the p-values, alpha / (tests in the family)."""
    missing = missing or {}
    families: dict[str, list[Comparison]] = {}
    for c in rows:
        families.setdefault(c.family, []).append(c)
    for members in families.values():
        seen: dict[bytes, Comparison] = {}
        distinct = []
        for c in sorted(members, key=lambda c: not c.primary):   # a primary row represents its duplicates
            key = _fingerprint(c)
            if key in seen:
                c.duplicate_of = seen[key].name
            else:
                seen[key] = c
                distinct.append(c)
        n_tests = len(distinct) + missing.get(members[0].family, 0)
        adjust = members[0].holm and n_tests > 1
        p_adj = (holm([c.p for c in distinct] + [1.0] * (n_tests - len(distinct)))[:len(distinct)] if adjust
                 else [c.p for c in distinct])
        by_name = {c.name: p for c, p in zip(distinct, p_adj)}
        for c in members:
            c.n_tests = n_tests if adjust else 1
            c.p_holm = by_name[c.duplicate_of or c.name]
            c.mde = c.fit.mde(alpha, power, c.n_tests)
            c.verdict = verdict(c.fit.estimate, c.low, c.high, c.p_holm, c.mde, c.margin, c.p_tost,
                                alpha=alpha, label=c.short)


def _fingerprint(c: Comparison) -> bytes:
    """Identity of a comparison's data: the per-image differences of every seed and which model
    scored each image (:func:`compare` hashes them); equal counts on other images differ."""
    if not c.data_key:
        raise ValueError(f"{c.name}: no data_key (made outside compare())")
    return c.data_key


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
    pairs = []
    for a, b in zip(runs, other or runs):
        try:
            pairs.append(paired_seed(a.predictions, col_a, None if other is None else b.predictions, col_b))
        except ReportError as exc:
            raise ReportError(f"{a.name}: {exc}" if other is None else f"{a.name} vs {b.name}: {exc}") from None
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
        pairs = paired(name, lambda c=c: _pairs(c.runs, "pred_2d", "pred_3d"))
        if pairs is None:
            continue
        out.append(compare(name, "3-D − 2-D", pairs, c.seeds, margin, n_boot))
        name = f"{c.label}: 3-D − 2-D on frame 0"
        frame0 = paired(name, lambda c=c: _pairs(c.runs, "pred_2d_frame0", "pred_3d"))
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
        for comp in out:
            comp.primary = comp.name == primary
    decide(out)
    return out, notes


def _ci(b: BootstrapResult | None) -> str:
    return "–" if b is None else f"{b.estimate:+.3f} [{b.low:+.3f}, {b.high:+.3f}]"


def _p(p: float) -> str:
    return "1" if p >= 0.9995 else f"{p:.3f}" if p >= 0.001 else "<0.001"


METHOD = ("Each row pairs two models on the same {n} test images, seed by seed. Δ top-1 and its 95 % "
          "interval come from a crossed random-effects model of the per-image differences (a model effect "
          "per seed, or per seed × fold for cross-fitted runs; an image effect shared by the seeds; a "
          "residual), fitted by the method of moments, with Student's t on Satterthwaite's degrees of "
          "freedom (df): few seeds with a large seed effect give few df and a wide interval "
          "(`gva.stats.crossed`; its coverage is checked by simulation in tests/test_crossed.py). p: the "
          "same t test of Δ top-1 = 0; Holm p: adjusted within the comparison's family, a duplicate "
          "(identical per-image differences) counted once. MDE: the smallest |Δ top-1| the verdict's rule "
          "detects with 80 % power (same variance model and df, at α 0.05 divided by the family's number "
          "of tests: the Holm level that holds whatever the order). TOST: equivalence within ±{margin:.3f}, "
          "same t reference. The verdict is chosen by rule from these numbers: *a difference* needs the "
          "interval to exclude 0 and Holm p < 0.05; *equivalent* needs TOST p < 0.05; otherwise *no "
          "detectable difference*. The two-level bootstrap (resample seeds, then one set of images shared "
          "by the drawn seeds; {boot} replicates) is shown as a cross-check and for Δ top-3 and Δ macro-F1 "
          "(not per-image sums); the verdict does not use it.")


def render_comparisons(rows: Sequence[Comparison], notes: Sequence[str] = ()) -> list[str]:
    """The comparisons section as Markdown lines."""
    if not rows:
        return ["## Comparisons: intervals over seeds and test images", "",
                "No comparison could be made. Left out: " + "; ".join(notes) + "."] if notes else []
    m = rows[0]
    lines = ["## Comparisons: intervals over seeds and test images", "",
             METHOD.format(n=m.n_images, margin=m.margin, boot=m.top1.n_boot), "",
             *comparison_table(rows)]
    if not any(c.primary for c in rows):
        lines += ["", "No comparison was declared primary (`gva report --primary NAME`)."]
    if notes:
        lines += ["", "Left out: " + "; ".join(notes) + "."]
    return lines


def comparison_table(rows: Sequence[Comparison]) -> list[str]:
    """One Markdown table row per comparison, with its header."""
    lines = ["| comparison | seeds | Δ top-1 [95 %] | df | bootstrap Δ top-1 [95 %] | Δ top-3 [95 %, bootstrap] | "
             "Δ macro-F1 [95 %, bootstrap] | p | Holm p | MDE | TOST p | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in rows:
        assert c.verdict is not None  # decide() gave every comparison one
        star = "**primary:** " if c.primary else ""
        dup = f" (= {c.duplicate_of})" if c.duplicate_of else ""
        lines.append(
            f"| {star}{c.name}{dup} | {len(c.seeds)}{' (images only)' if len(c.seeds) < 2 else ''} | "
            f"{c.fit.estimate:+.3f} [{c.low:+.3f}, {c.high:+.3f}] | "
            f"{c.fit.df:.1f} | {_ci(c.top1)} | {_ci(c.top3)} | {_ci(c.f1)} | "
            f"{_p(c.p)} | {_p(c.p_holm)} | {mde_text(c.mde)} | {_p(c.p_tost)} | {c.verdict.text} |")
    return lines


def comparisons_json(rows: Sequence[Comparison]) -> list[dict[str, Any]]:
    def boot(b: BootstrapResult) -> dict:
        return {"estimate": b.estimate, "low": b.low, "high": b.high, "se": b.se,
                "replicates": b.n_boot, "confidence": b.confidence}
    return [{"comparison": c.name, "family": c.family, "seeds": c.seeds, "n_images": c.n_images,
             "primary": c.primary, "duplicate_of": c.duplicate_of, "paper": c.paper,
             "delta_top1": {"estimate": c.fit.estimate, "low": c.low, "high": c.high, "se": c.fit.se,
                            "df": c.fit.df, "var_model": c.fit.var_model, "var_image": c.fit.var_image,
                            "var_resid": c.fit.var_resid, "n_models": c.fit.n_models,
                            "method": "crossed random effects (model, image), Satterthwaite t"},
             "delta_top1_per_seed": c.per_seed,
             "delta_top1_bootstrap": boot(c.top1), "delta_top3": boot(c.top3) if c.top3 else None,
             "delta_f1_macro": boot(c.f1), "p": c.p, "p_holm": c.p_holm, "holm_tests": c.n_tests,
             "discordance": c.discordance, "mde_top1": c.mde,
             "equivalence_margin": c.margin, "p_tost": c.p_tost,
             "verdict": c.verdict.kind if c.verdict else None,
             "verdict_text": c.verdict.text if c.verdict else None} for c in rows]


__all__ = ["DEFAULT_MARGIN", "DEFAULT_BOOTSTRAP", "REFERENCE_GENERATOR", "Comparison", "compare", "decide", "comparisons", "comparison_table",
           "render_comparisons", "comparisons_json"]
