"""The verdict rule: the wording a comparison is allowed, from its interval, Holm p, MDE and TOST.

* :func:`verdict` -- "a difference" / "equivalent within ±m" / "no detectable difference (MDE ±x)",
  so prose cannot claim more than the numbers (the numbers: :mod:`gva.stats.crossed`);
* :func:`tost` -- two one-sided tests of equivalence within a margin (normal or Student t);
* :func:`holm` -- :func:`gva.stats.paired.holm`, re-exported for the report.

The resampling that gives the report's cross-check intervals lives in :mod:`gva.stats.bootstrap`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from gva.stats.paired import holm

# --------------------------------------------------------------------------------------------
# Equivalence, multiplicity, the verdict


def tost(estimate: float, se: float, margin: float, df: float | None = None) -> float:
    """Two one-sided tests of H0: |true difference| >= ``margin`` against |diff| < margin.

    p = max(p_lower, p_upper), with p_lower testing diff <= -margin and p_upper diff >= margin;
    normal reference when ``df`` is None, Student t with ``df`` degrees of freedom otherwise.
    Small p: the difference is within ±margin."""
    if not (se > 0 and math.isfinite(se)):
        raise ValueError(f"se must be positive and finite, got {se}")
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if df is not None and not df > 0:
        raise ValueError(f"df must be > 0, got {df}")
    dist = stats.norm if df is None else stats.t(df)
    p_lower = float(dist.sf((estimate + margin) / se))
    p_upper = float(dist.cdf((estimate - margin) / se))
    return max(p_lower, p_upper)


@dataclass(frozen=True)
class Verdict:
    """``kind``: "difference" | "equivalent" | "inconclusive"; ``text``: the one-line phrase."""

    kind: str
    text: str


def verdict(estimate: float, low: float, high: float, p_adjusted: float, mde: float | None,
            margin: float | None = None, p_tost: float | None = None, alpha: float = 0.05,
            label: str = "3-D − 2-D") -> Verdict:
    """The wording a comparison is allowed, so that prose cannot claim more than the numbers.

    * "difference": the interval [low, high] excludes 0 AND the multiplicity-adjusted (Holm)
      p-value is < alpha — both, since an interval alone ignores the other comparisons made;
    * otherwise "equivalent" within ±margin when the TOST p-value is < alpha;
    * otherwise "inconclusive": no detectable difference, with the MDE that could be missed.
    """
    head = f"{label} = {estimate:+.3f} [{low:+.3f}, {high:+.3f}]"
    excludes_zero = low > 0 or high < 0
    if excludes_zero and p_adjusted < alpha:
        return Verdict("difference", f"{head}: a difference (Holm p {_p_text(p_adjusted)})")
    if margin is not None and p_tost is not None and p_tost < alpha:
        return Verdict("equivalent",
                       f"{head}: equivalent within ±{margin:.3f} (TOST p {_p_text(p_tost)})")
    tail = f" (MDE {mde_text(mde)})" if mde is not None else ""
    return Verdict("inconclusive", f"{head}: no detectable difference{tail}")


def mde_text(mde: float) -> str:
    """``±0.061``; at 1 or more (a top-1 difference cannot exceed 1: with a few seeds the t reference
    can have about one degree of freedom), ``≥ 1: none detectable``."""
    return f"±{mde:.3f}" if mde < 1 else "≥ 1: none detectable"


def _p_text(p: float) -> str:
    """``= 0.012`` or ``< 0.001``."""
    return f"= {p:.3f}" if p >= 0.001 else "< 0.001"


__all__ = ["tost", "holm", "Verdict", "verdict", "mde_text"]
