"""gva.stats.crossed: the crossed random-effects model of paired differences.

Checked against the textbook two-way ANOVA where the design is balanced, and by simulation over
the designs gva runs (3-5 seeds, 500-1,500 test images, with and without cross-fitting folds;
seed-dominated, image-dominated and residual-dominated variance): 95 % intervals must cover the
population difference 93-97 % of the time, and the MDE must have the power it claims."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.special import ndtr

from gva.stats import crossed

# (model effect sd, image effect sd) on the probit scale of each model's accuracy
REGIMES = {"seed": (0.25, 0.3), "image": (0.02, 0.8), "residual": (0.03, 0.15)}


def simulate(rng, seeds: int, images: int, folds: int | None, tau_model: float, tau_image: float,
             delta: float = 0.3, base: float = 0.5):
    """One experiment: models A and B scored on the same images, seed by seed (one model per seed,
    or per seed x fold). correct ~ Bernoulli(Phi(base + u_i + w_model)) for A and
    Phi(base + delta + u_i + v_i + w'_model) for B: image difficulty u shared by A and B, an image
    effect v on B alone, independent model effects. Returns (d, models or None, the population
    difference E[B] - E[A], which is exact for this Gaussian mixture)."""
    u = rng.normal(size=images)
    v = rng.normal(scale=tau_image, size=images)
    k = folds or 1
    wa = rng.normal(scale=tau_model, size=(seeds, k))
    wb = rng.normal(scale=tau_model, size=(seeds, k))
    fold = (np.stack([rng.permutation(np.arange(images) % k) for _ in range(seeds)]) if folds
            else np.zeros((seeds, images), dtype=np.int64))
    row = np.arange(seeds)[:, None]
    pa = ndtr(base + u[None] + wa[row, fold])
    pb = ndtr(base + delta + u[None] + v[None] + wb[row, fold])
    d = (rng.random(pb.shape) < pb).astype(np.float64) - (rng.random(pa.shape) < pa)
    mu = (ndtr((base + delta) / math.sqrt(2 + tau_image ** 2 + tau_model ** 2))
          - ndtr(base / math.sqrt(2 + tau_model ** 2)))
    return d, (fold if folds else None), mu


def coverage(seeds, images, folds, regime, reps, seed, interval=None):
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        d, models, mu = simulate(rng, seeds, images, folds, *REGIMES[regime])
        lo, hi = interval(d) if interval else crossed.fit(d, models).interval()
        hits += lo <= mu <= hi
    return hits / reps


DESIGNS = [(s, n, k, r) for s in (3, 5) for n in (500, 1500) for k in (None, 3) for r in REGIMES]


@pytest.mark.parametrize("seeds,images,folds,regime", DESIGNS,
                         ids=[f"s{s}-n{n}-{'f' + str(k) if k else 'nofold'}-{r}" for s, n, k, r in DESIGNS])
def test_intervals_cover_95_percent(seeds, images, folds, regime):
    reps = 600
    cov = coverage(seeds, images, folds, regime, reps, seed=seeds * 7 + images + (folds or 0))
    assert 0.93 <= cov <= 0.97, f"coverage {cov:.3f} over {reps} simulated experiments"


def test_the_coverage_check_can_fail():
    """Intervals that ignore the image effect (a t interval over the per-seed means, what the
    report's seed-only column gives) under-cover when images dominate: the check above tells."""
    def seeds_only(d):
        means = d.mean(axis=1)
        half = stats.t.ppf(0.975, d.shape[0] - 1) * means.std(ddof=1) / math.sqrt(d.shape[0])
        return means.mean() - half, means.mean() + half
    assert coverage(5, 500, None, "image", 400, seed=1, interval=seeds_only) < 0.91


def test_balanced_design_is_the_two_way_anova():
    rng = np.random.default_rng(3)
    d, _, _ = simulate(rng, 4, 300, None, 0.2, 0.5)
    s, n = d.shape
    grand = d.mean()
    ms_seed = n * ((d.mean(axis=1) - grand) ** 2).sum() / (s - 1)
    ms_image = s * ((d.mean(axis=0) - grand) ** 2).sum() / (n - 1)
    resid = d - d.mean(axis=1, keepdims=True) - d.mean(axis=0, keepdims=True) + grand
    ms_resid = (resid ** 2).sum() / ((s - 1) * (n - 1))
    fit = crossed.fit(d)
    assert fit.estimate == pytest.approx(grand)
    var = (ms_seed + ms_image - ms_resid) / (s * n)
    assert fit.se == pytest.approx(math.sqrt(var))
    terms = [(ms_seed / (s * n), s - 1), (ms_image / (s * n), n - 1), (-ms_resid / (s * n), (s - 1) * (n - 1))]
    assert fit.df == pytest.approx(var ** 2 / sum(t * t / k for t, k in terms))
    assert fit.var_model == pytest.approx((ms_seed - ms_resid) / n)
    assert fit.var_image == pytest.approx((ms_image - ms_resid) / s)
    assert fit.var_resid == pytest.approx(ms_resid)
    assert fit.n_models == s and fit.n_seeds == s and fit.n_images == n


def test_one_seed_is_the_paired_t_interval():
    d = np.array([[1, 0, 0, -1, 1, 1, 0, 0, 1, 0]], dtype=float)
    fit = crossed.fit(d)
    se = d.std(ddof=1) / math.sqrt(d.size)
    assert fit.se == pytest.approx(se) and fit.df == d.size - 1
    assert fit.p_value() == pytest.approx(stats.ttest_1samp(d[0], 0.0).pvalue)


def test_folds_make_a_model_level():
    """With folds, the seed's K models are K levels: a large fold effect widens the interval
    compared with ignoring it."""
    rng = np.random.default_rng(5)
    d, models, _ = simulate(rng, 3, 900, 3, 0.3, 0.2)
    with_folds = crossed.fit(d, models)
    assert with_folds.n_models == 9 and with_folds.n_seeds == 3
    assert with_folds.var_model > 0
    with pytest.raises(ValueError, match="shape"):
        crossed.fit(d, models[:, :10])


def test_identical_models_have_no_variance():
    fit = crossed.fit(np.zeros((3, 50)))
    assert fit.se == 0.0 and fit.p_value() == 1.0 and fit.interval() == (0.0, 0.0)
    assert fit.p_tost(0.02) == 0.0 and fit.mde() == 0.0


def test_mde_has_its_power():
    """At a true difference equal to the design's MDE, the verdict's test (t at alpha / n_tests)
    rejects about 80 % of the time; at half of it, far less. One fit's MDE estimates it."""
    rng = np.random.default_rng(11)
    s, n = 5, 500
    sd_model, sd_image, sd_resid = 0.02, 0.15, 0.5

    def draw(mu):
        return (mu + rng.normal(scale=sd_model, size=(s, 1)) + rng.normal(scale=sd_image, size=(1, n))
                + rng.normal(scale=sd_resid, size=(s, n)))

    design = crossed.planned(sd_model ** 2, sd_image ** 2, sd_resid ** 2, s, n)
    mde = design.mde(n_tests=3)

    def power(mu, reps=500):
        return np.mean([crossed.fit(draw(mu)).p_value() < 0.05 / 3 for _ in range(reps)])
    assert power(mde) == pytest.approx(0.8, abs=0.06)
    assert power(mde / 2) < 0.4
    fitted = [crossed.fit(draw(0.0)).mde(n_tests=3) for _ in range(100)]
    assert np.mean(fitted) == pytest.approx(mde, rel=0.15)
    assert design.mde(n_tests=3) > design.mde(n_tests=1)


def test_planning_more_seeds_or_images():
    rng = np.random.default_rng(2)
    d, _, _ = simulate(rng, 5, 500, None, *REGIMES["seed"])
    fit = crossed.fit(d)
    assert fit.se_for() == pytest.approx(fit.se, rel=0.35)
    # the model part shrinks only with seeds, the image part only with images
    assert fit.se_for(n_seeds=20) < fit.se_for()
    assert fit.se_for(n_images=100_000) > math.sqrt(fit.var_model / 5) * 0.999
