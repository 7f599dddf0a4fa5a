"""gva.report.inference: hierarchical bootstrap (checked against exact enumeration), TOST and Holm (checked against statsmodels), the verdict rule,
McNemar and predictions.csv."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import f1_score
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import ttost_paired

from gva.errors import GvaError, ReportError
from gva.report.inference import holm, tost, verdict
from gva.report.predictions import paired_seed, read_predictions
from gva.stats.bootstrap import PairedSeed, _Prepared, hierarchical_bootstrap, model_metric

# ------------------------------------------------------------------------------------------------
# A tiny crossed design: 2 seeds x 4 images. Both seeds' per-image differences (b - a) are
# strongly correlated, so sharing the image resample across seeds (crossed) and resampling
# images independently per seed give clearly different variances.

LABELS = np.array([0, 1, 2, 0])


def _preds(correct) -> np.ndarray:
    """Top-1 predictions that are right exactly where ``correct`` is 1 (wrong: next class)."""
    correct = np.asarray(correct, dtype=bool)
    return np.where(correct, LABELS, (LABELS + 1) % 3)


TOY_CORRECT = {  # seed -> (correct_a, correct_b); d0 = [1, 1, 0, -1], d1 = [1, 1, 1, -1]
    0: ([0, 0, 1, 1], [1, 1, 1, 0]),
    1: ([0, 0, 0, 1], [1, 1, 1, 0]),
}
TOY = [PairedSeed(LABELS, _preds(a), _preds(b)) for a, b in TOY_CORRECT.values()]
# Richer predictions for macro-F1 (some classes predicted that are absent from a resample).
TOY_F1 = [PairedSeed(LABELS, np.array([0, 2, 2, 1]), np.array([0, 1, 2, 2])),
          PairedSeed(LABELS, np.array([1, 1, 0, 0]), np.array([0, 1, 1, 0]))]

N_IMG, N_SEEDS = LABELS.size, len(TOY)
# Every ordered image resample (4**4 = 256) and seed resample (2**2 = 4), all equally likely.
IMAGE_DRAWS = np.array(list(itertools.product(range(N_IMG), repeat=N_IMG)))
SEED_DRAWS = np.array(list(itertools.product(range(N_SEEDS), repeat=N_SEEDS)))


def _per_seed_diff(seeds, metric: str) -> np.ndarray:
    """(S, 256): metric(b) - metric(a) of each seed on each image resample, computed directly
    (fancy indexing; sklearn for F1), independently of the module's count-based algebra."""
    out = np.empty((len(seeds), len(IMAGE_DRAWS)))
    classes = np.unique(LABELS)
    for s, seed in enumerate(seeds):
        if metric == "top1":
            ca = (seed.pred_a == seed.labels).astype(float)
            cb = (seed.pred_b == seed.labels).astype(float)
            out[s] = cb[IMAGE_DRAWS].mean(axis=1) - ca[IMAGE_DRAWS].mean(axis=1)
        else:
            for r, idx in enumerate(IMAGE_DRAWS):
                f = [f1_score(seed.labels[idx], p[idx], labels=classes, average="macro",
                              zero_division=0) for p in (seed.pred_a, seed.pred_b)]
                out[s, r] = f[1] - f[0]
    return out


@functools.cache
def _toy_diff(metric: str) -> np.ndarray:
    """_per_seed_diff of the toy case for ``metric`` (TOY for top1, TOY_F1 for f1_macro), once."""
    return _per_seed_diff(TOY if metric == "top1" else TOY_F1, metric)


def _crossed_exact(vals: np.ndarray) -> np.ndarray:
    """Exact distribution (all values, equally likely) of the crossed scheme: one image resample
    shared by the drawn seeds."""
    return vals[SEED_DRAWS].mean(axis=1).ravel()          # (4 seed draws, 256) -> 1024


def _independent_exact(vals: np.ndarray) -> np.ndarray:
    """Exact distribution when every drawn seed gets its own image resample (the wrong scheme)."""
    out = [(vals[j1][:, None] + vals[j2][None, :]).ravel() / 2 for j1, j2 in SEED_DRAWS]
    return np.concatenate(out)                             # 4 * 256 * 256 values


def _moments(x: np.ndarray) -> tuple[float, float, float]:
    mu = x.mean()
    return float(mu), float(((x - mu) ** 2).mean()), float(((x - mu) ** 4).mean())


def _matches(reps: np.ndarray, exact: np.ndarray, k: float = 5.0) -> bool:
    """Replicate mean and variance within k Monte-Carlo standard errors of the exact ones (the
    variance's standard error from the exact 4th central moment)."""
    mu, var, mu4 = _moments(exact)
    b = reps.size
    return (abs(reps.mean() - mu) <= k * math.sqrt(var / b)
            and abs(reps.var() - var) <= k * math.sqrt((mu4 - var ** 2) / b))


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    return np.stack([np.bincount(d, minlength=size) for d in draws])


@pytest.mark.parametrize("metric, seeds", [("top1", TOY), ("f1_macro", TOY_F1)])
def test_statistic_equals_direct_computation_on_every_resample(metric, seeds):
    # The vectorised count algebra must reproduce the direct value on all 1024 combinations.
    vals = _toy_diff(metric)
    prep = _Prepared(seeds, metric)
    seed_c = np.repeat(_counts(SEED_DRAWS, N_SEEDS), len(IMAGE_DRAWS), axis=0)
    image_c = np.tile(_counts(IMAGE_DRAWS, N_IMG), (len(SEED_DRAWS), 1))
    np.testing.assert_allclose(prep.statistic(seed_c, image_c), _crossed_exact(vals), atol=1e-12)


def test_bootstrap_matches_exact_crossed_distribution_and_discriminates():
    vals = _toy_diff("top1")
    crossed, independent = _crossed_exact(vals), _independent_exact(vals)
    n_boot = 200_000
    res = hierarchical_bootstrap(TOY, "top1", n_boot=n_boot, seed=1)
    assert res.replicates.shape == (n_boot,)
    assert _matches(res.replicates, crossed)

    # The schemes differ by far more than the Monte-Carlo tolerance on this case ...
    _, var_c, mu4_c = _moments(crossed)
    _, var_i, _ = _moments(independent)
    tol = 5 * math.sqrt((mu4_c - var_c ** 2) / n_boot)
    assert var_c - var_i > 10 * tol
    # ... and wrong bootstraps fail the very check the real one passes.
    rng = np.random.default_rng(2)
    ca = np.stack([(s.pred_a == s.labels) for s in TOY]).astype(float)
    cb = np.stack([(s.pred_b == s.labels) for s in TOY]).astype(float)
    d = cb - ca                                                      # (S, n)
    j = rng.integers(0, N_SEEDS, (n_boot, N_SEEDS))
    own_images = rng.integers(0, N_IMG, (n_boot, N_SEEDS, N_IMG))    # a resample per drawn seed
    per_seed_images = d[j[:, :, None], own_images].mean(axis=2).mean(axis=1)
    assert not _matches(per_seed_images, crossed)
    assert _matches(per_seed_images, independent)
    shared = rng.integers(0, N_IMG, (n_boot, N_IMG))                 # seeds kept fixed
    images_only = d[:, shared].mean(axis=2).mean(axis=0)
    assert not _matches(images_only, crossed)


def test_bootstrap_f1_matches_exact_distribution():
    crossed = _crossed_exact(_toy_diff("f1_macro"))
    res = hierarchical_bootstrap(TOY_F1, "f1_macro", n_boot=100_000, seed=3)
    assert _matches(res.replicates, crossed)


def _random_seeds(n_seeds=3, n=300, k=5, n_classes=10, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)

    def ranked(p_right):
        pred = rng.integers(0, n_classes, (n, k))
        pred[:, 0] = np.where(rng.random(n) < p_right, labels, pred[:, 0])
        return pred
    return [PairedSeed(labels, ranked(0.6), ranked(0.68)) for _ in range(n_seeds)]


def test_bootstrap_estimate_interval_and_determinism():
    seeds = _random_seeds()
    res = hierarchical_bootstrap(seeds, "top1", n_boot=4000, seed=5)
    expected = np.mean([(s.pred_b[:, 0] == s.labels).mean() - (s.pred_a[:, 0] == s.labels).mean()
                        for s in seeds])
    assert res.estimate == pytest.approx(expected)
    assert res.low < res.estimate < res.high
    assert res.low == pytest.approx(np.quantile(res.replicates, 0.025))
    assert res.se == pytest.approx(res.replicates.std(ddof=1))
    assert (res.n_seeds, res.n_images, res.n_boot) == (3, 300, 4000)
    again = hierarchical_bootstrap(seeds, "top1", n_boot=4000, seed=5)
    np.testing.assert_array_equal(res.replicates, again.replicates)
    other = hierarchical_bootstrap(seeds, "top1", n_boot=4000, seed=6)
    assert not np.array_equal(res.replicates, other.replicates)


def test_top3_and_f1_estimates():
    seeds = _random_seeds(n_seeds=2, seed=1)
    top3 = hierarchical_bootstrap(seeds, "top3", n_boot=100)
    hit = lambda s, p: (p[:, :3] == s.labels[:, None]).any(axis=1).mean()  # noqa: E731
    assert top3.estimate == pytest.approx(np.mean([hit(s, s.pred_b) - hit(s, s.pred_a)
                                                   for s in seeds]))
    f1 = hierarchical_bootstrap(seeds, "f1_macro", n_boot=100)
    sk = lambda s, p: f1_score(s.labels, p[:, 0], average="macro")  # noqa: E731
    assert f1.estimate == pytest.approx(np.mean([sk(s, s.pred_b) - sk(s, s.pred_a) for s in seeds]))


def test_f1_macro_matches_sklearn():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 8, 200)
    labels[labels == 3] = 4                      # class 3 absent from the labels ...
    pred = np.where(rng.random(200) < 0.5, labels, rng.integers(0, 10, 200))   # ... but predicted
    assert 3 in pred and 9 in pred
    expected = f1_score(labels, pred, labels=np.unique(labels), average="macro")
    assert model_metric(labels, pred, "f1_macro") == pytest.approx(expected, abs=1e-12)
    in_set = np.where(np.isin(pred, labels), pred, labels)
    assert model_metric(labels, in_set, "f1_macro") == pytest.approx(
        f1_score(labels, in_set, average="macro"), abs=1e-12)
    assert model_metric(labels, pred, "top1") == pytest.approx((pred == labels).mean())


def test_bootstrap_input_checks():
    labels = np.array([0, 1, 2])
    with pytest.raises(ValueError, match="same test images"):
        hierarchical_bootstrap([PairedSeed(labels, labels, labels),
                                PairedSeed(labels[:2], labels[:2], labels[:2])])
    with pytest.raises(ValueError, match="labels differ"):
        hierarchical_bootstrap([PairedSeed(labels, labels, labels),
                                PairedSeed(labels[::-1], labels, labels)])
    with pytest.raises(ValueError, match="n = 3"):
        PairedSeed(labels, labels[:2], labels)
    with pytest.raises(ValueError, match="top3"):
        hierarchical_bootstrap([PairedSeed(labels, labels, labels)], "top3")
    with pytest.raises(ValueError, match="top3"):
        hierarchical_bootstrap([PairedSeed(labels, np.zeros((3, 2), int), np.zeros((3, 2), int))],
                               "top3")
    with pytest.raises(ValueError, match="metric"):
        hierarchical_bootstrap([PairedSeed(labels, labels, labels)], "top5")
    with pytest.raises(ValueError, match="integer"):
        PairedSeed(labels, labels + 0.5, labels)
    with pytest.raises(ValueError, match="no seeds"):
        hierarchical_bootstrap([])


# ------------------------------------------------------------------------------------------------
# TOST and Holm


def test_tost_matches_statsmodels_paired():
    rng = np.random.default_rng(11)
    for n, shift, margin in [(20, 0.0, 0.5), (50, 0.3, 0.5), (12, -0.2, 0.4), (200, 0.6, 0.5)]:
        x2 = rng.normal(size=n)
        x1 = x2 + shift + rng.normal(scale=0.8, size=n)
        diff = x1 - x2
        p_sm = ttost_paired(x1, x2, -margin, margin)[0]
        p = tost(diff.mean(), diff.std(ddof=1) / math.sqrt(n), margin, df=n - 1)
        assert p == pytest.approx(p_sm, rel=1e-9)


def test_tost_normal_by_hand():
    assert tost(0.0, 0.01, 0.02) == pytest.approx(stats.norm.cdf(-2))          # 0.0228
    assert tost(0.01, 0.01, 0.02) == pytest.approx(stats.norm.cdf(-1))         # 0.1587
    assert tost(-0.01, 0.01, 0.02) == pytest.approx(tost(0.01, 0.01, 0.02))
    assert tost(0.03, 0.01, 0.02) == pytest.approx(stats.norm.cdf(1))          # outside margin
    assert tost(0.01, 0.01, 0.02, df=1e7) == pytest.approx(tost(0.01, 0.01, 0.02), rel=1e-5)
    assert tost(0.01, 0.01, 0.02, df=5) > tost(0.01, 0.01, 0.02)               # t: heavier tails
    with pytest.raises(ValueError):
        tost(0.0, 0.0, 0.02)
    with pytest.raises(ValueError):
        tost(0.0, 0.01, 0.0)


def test_holm():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([]) == []
    assert holm([0.3]) == [0.3]
    rng = np.random.default_rng(3)
    for m in (2, 5, 10, 30):
        p = rng.uniform(0, 0.2, m) ** 2
        p[: m // 3] = p[0]                                 # ties
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1].tolist(), abs=1e-15)
        assert max(holm(p)) <= 1.0
    with pytest.raises(ValueError):
        holm([0.1, 1.2])


# ------------------------------------------------------------------------------------------------
# Verdict


def test_verdict_difference():
    v = verdict(0.051, 0.010, 0.090, 0.012, mde=0.047, margin=0.02, p_tost=0.9)
    assert v.kind == "difference"
    assert v.text == "3-D − 2-D = +0.051 [+0.010, +0.090]: a difference (Holm p = 0.012)"
    neg = verdict(-0.05, -0.09, -0.01, 0.001, mde=0.047, label="A − B")
    assert neg.kind == "difference" and neg.text.startswith("A − B = -0.050 [-0.090, -0.010]")
    # A difference wins over equivalence when both hold (tiny but real effect).
    assert verdict(0.004, 0.001, 0.007, 0.01, 0.003, 0.02, 0.001).kind == "difference"


def test_verdict_interval_excluding_zero_is_not_enough():
    v = verdict(0.051, 0.010, 0.090, 0.08, mde=0.047, margin=0.02, p_tost=0.9)
    assert v.kind == "inconclusive"
    assert v.text == "3-D − 2-D = +0.051 [+0.010, +0.090]: no detectable difference (MDE ±0.047)"
    assert verdict(0.051, 0.010, 0.090, 0.05, 0.047).kind == "inconclusive"   # strict < alpha
    # A small p with an interval that covers 0 is not a difference either.
    assert verdict(0.02, -0.01, 0.05, 0.01, 0.047).kind == "inconclusive"


def test_verdict_equivalent_and_inconclusive():
    v = verdict(0.003, -0.015, 0.021, 0.7, mde=0.047, margin=0.02, p_tost=0.01)
    assert v.kind == "equivalent"
    assert v.text == "3-D − 2-D = +0.003 [-0.015, +0.021]: equivalent within ±0.020 (TOST p = 0.010)"
    v = verdict(0.01, -0.02, 0.04, 0.5, mde=0.047, margin=0.02, p_tost=0.16)
    assert v.kind == "inconclusive" and v.text.endswith("no detectable difference (MDE ±0.047)")
    assert verdict(0.003, -0.015, 0.021, 0.7, mde=0.047, p_tost=0.01).kind == "inconclusive"
    assert verdict(0.0, -0.01, 0.01, 1.0, mde=None).text.endswith("no detectable difference")


# ------------------------------------------------------------------------------------------------
# McNemar


# ------------------------------------------------------------------------------------------------
# predictions.csv


def test_read_predictions_and_pairing(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("id,label,class_name,pred_2d,pred_3d,pred_2d_frame0\n"
                    "7,0,goldfish,0,0,1\n8,1,tabby,2,1,1\n9,2,bee,2,0,2\n")
    pred = read_predictions(path)
    assert sorted(pred) == ["id", "label", "pred_2d", "pred_2d_frame0", "pred_3d"]
    ranked = tmp_path / "ranked.csv"
    ranked.write_text("id,label,class_name,pred_2d,pred_3d,top3_2d,top3_3d\n7,0,a,0,1,0 2 1,1 0 2\n")
    r = read_predictions(ranked)
    assert r["top3_2d"].tolist() == [[0, 2, 1]] and r["top3_3d"].shape == (1, 3)
    ranked.write_text("id,label,class_name,pred_2d,top3_2d\n7,0,a,0,0 x 1\n")
    with pytest.raises(ReportError, match="top3_2d must be three integer labels"):
        read_predictions(ranked)
    np.testing.assert_array_equal(pred["id"], [7, 8, 9])
    np.testing.assert_array_equal(pred["pred_3d"], [0, 1, 0])
    assert all(v.dtype.kind == "i" for v in pred.values())
    seed = paired_seed(pred)                                       # 2-D vs 3-D of one run
    assert hierarchical_bootstrap([seed], n_boot=10).estimate == pytest.approx(0.0)
    other = dict(pred, pred_2d=np.array([0, 1, 2]))
    assert hierarchical_bootstrap([paired_seed(pred, "pred_2d", other, "pred_2d")],
                                  n_boot=10).estimate == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="same test images"):
        paired_seed(pred, "pred_2d", dict(other, id=np.array([7, 9, 8])), "pred_2d")


def test_read_predictions_errors(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ReportError, match="nope.csv"):
        read_predictions(missing)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,class_name,pred_2d\n1,x,0\n")
    with pytest.raises(ReportError, match=r"bad\.csv.*label"):
        read_predictions(bad)
    junk = tmp_path / "junk.csv"
    junk.write_text("id,label,pred_2d\n1,0,zero\n")
    with pytest.raises(ReportError, match=r"junk\.csv, line 2"):
        read_predictions(junk)
    assert issubclass(ReportError, GvaError)
