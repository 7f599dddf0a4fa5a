"""Is the 3-D vs 2-D difference real? Paired bootstrap interval, McNemar's exact test (overall and
per class, Holm-adjusted over the classes).

Both models are scored on the same test images in the same order, so the comparison is paired:
sample i contributes (correct_a[i], correct_b[i]). The bootstrap resamples *pairs*, which keeps
the correlation between the two models (an unpaired interval would be too wide). McNemar's test
uses only the discordant pairs: under H0 (equal accuracy) each discordant pair is equally likely
to favour either model, so their split is Binomial(b + c, 1/2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binomtest

from gva.stats.bootstrap import PairedSeed, hierarchical_bootstrap


@dataclass(frozen=True)
class BootstrapInterval:
    delta: float        # observed accuracy(b) - accuracy(a)
    low: float
    high: float
    confidence: float
    resamples: int
    seed: int


@dataclass(frozen=True)
class McNemarResult:
    only_a: int         # pairs where a is right and b wrong
    only_b: int         # pairs where b is right and a wrong
    p_value: float      # two-sided exact (binomial) p-value


def _paired(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"paired outcomes must be 1-D and equally long, got {a.shape} and {b.shape}")
    if a.size == 0:
        raise ValueError("no paired outcomes")
    return a, b


def paired_bootstrap_diff(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 10000,
                          seed: int = 0, confidence: float = 0.95) -> BootstrapInterval:
    """Percentile interval of accuracy(b) - accuracy(a) over ``resamples`` paired resamples of the
    images: :func:`gva.stats.bootstrap.hierarchical_bootstrap` with one seed (one resampling code
    for ``evaluate`` and ``report``). Deterministic for a given ``seed``."""
    a, b = _paired(correct_a, correct_b)
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    # correctness as predictions of the label 1: top-1 of a "model" is then its accuracy
    ones = np.ones(a.size, dtype=np.int64)
    drawn = max(resamples, 2)   # a percentile interval needs two resamples; the record says what was drawn
    res = hierarchical_bootstrap([PairedSeed(ones, a.astype(np.int64), b.astype(np.int64))], "top1",
                                 drawn, seed, confidence)
    return BootstrapInterval(delta=res.estimate, low=res.low, high=res.high, confidence=confidence,
                             resamples=drawn, seed=seed)


def mcnemar_exact(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemarResult:
    """McNemar's exact test: two-sided binomial test of the discordant pairs against p = 1/2."""
    a, b = _paired(correct_a, correct_b)
    only_a = int(np.sum(a & ~b))
    only_b = int(np.sum(~a & b))
    discordant = only_a + only_b
    # No discordant pairs: the data carry no evidence of a difference at all.
    p = 1.0 if discordant == 0 else float(binomtest(only_b, discordant, 0.5,
                                                    alternative="two-sided").pvalue)
    return McNemarResult(only_a=only_a, only_b=only_b, p_value=min(1.0, p))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order: the i-th smallest p is multiplied
    by (m - i + 1), then made monotone (running maximum) and capped at 1."""
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"pvalues must be a flat sequence, got shape {p.shape}")
    if p.size == 0:
        return []
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"p-values must lie in [0, 1], got {p.tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    return adjusted.tolist()


def per_class_mcnemar(labels: np.ndarray, correct_a: np.ndarray, correct_b: np.ndarray,
                      n_classes: int) -> list[dict]:
    """Per true class 0..n_classes-1: ``{"n", "only_a", "only_b", "p", "p_holm"}``: McNemar's exact
    test on that class's images, Holm-adjusted over the classes that have images (a class without
    images: p = p_holm = 1, not counted in the family)."""
    labels = np.asarray(labels)
    a, b = _paired(correct_a, correct_b)
    rows = []
    for c in range(n_classes):
        mask = labels == c
        if not mask.any():
            rows.append({"n": 0, "only_a": 0, "only_b": 0, "p": 1.0})
            continue
        res = mcnemar_exact(a[mask], b[mask])
        rows.append({"n": int(mask.sum()), "only_a": res.only_a, "only_b": res.only_b, "p": res.p_value})
    tested = [r for r in rows if r["n"] > 0]
    for row, p_adj in zip(tested, holm([r["p"] for r in tested])):
        row["p_holm"] = p_adj
    for row in rows:
        row.setdefault("p_holm", 1.0)
    return rows
