"""The evaluate library: metrics vs scikit-learn, bootstrap and McNemar on known answers, cost."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

from gva.evaluate import plots
from gva.evaluate.cost import count_macs, count_parameters, make_batch, measure_latency
from gva.evaluate.metrics import classification_report, confusion_matrix, offdiagonal_mass, top_k_accuracy
from gva.stats.paired import holm, mcnemar_exact, paired_bootstrap_diff, per_class_mcnemar

# --- metrics -------------------------------------------------------------------------------------


def _hand_made():
    """12 samples, 4 classes; class 3 is never predicted (its precision is 0/0 -> 0)."""
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    preds = np.array([0, 0, 1, 1, 1, 2, 2, 0, 2, 0, 1, 2])
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(12, 4))
    # Make the argmax the intended prediction with distinct scores (no ties for top-k).
    logits[np.arange(12), preds] = logits.max(axis=1) + 1.0 + np.arange(12) * 0.01
    return logits, labels, preds


def test_metrics_match_sklearn():
    logits, labels, preds = _hand_made()
    rep = classification_report(logits, labels)
    assert rep.top1 == pytest.approx(skm.accuracy_score(labels, preds))
    assert rep.top1 == pytest.approx(6 / 12)
    assert rep.top3 == pytest.approx(skm.top_k_accuracy_score(labels, logits, k=3, labels=range(4)))
    p, r, f, s = skm.precision_recall_fscore_support(labels, preds, labels=range(4), zero_division=0)
    np.testing.assert_allclose(rep.precision, p)
    np.testing.assert_allclose(rep.recall, r)
    np.testing.assert_allclose(rep.f1, f)
    np.testing.assert_array_equal(rep.support, s)
    for avg_name, attr in (("precision", "precision_macro"), ("recall", "recall_macro"),
                           ("f1", "f1_macro")):
        fn = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[avg_name]
        assert getattr(rep, attr) == pytest.approx(
            fn(labels, preds, labels=range(4), average="macro", zero_division=0))
    np.testing.assert_array_equal(rep.confusion, skm.confusion_matrix(labels, preds, labels=range(4)))
    assert rep.balanced_error == pytest.approx(1 - skm.balanced_accuracy_score(labels, preds))


def test_top_k_accuracy_known_values():
    logits = np.array([[3.0, 2.0, 1.0, 0.0],    # label 2 is 3rd
                       [0.0, 1.0, 2.0, 3.0],    # label 0 is 4th
                       [1.0, 5.0, 2.0, 0.0]])   # label 1 is 1st
    labels = np.array([2, 0, 1])
    assert top_k_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(logits, labels, 3) == pytest.approx(2 / 3)
    assert top_k_accuracy(logits, labels, 10) == 1.0  # k capped at C


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError):
        confusion_matrix(np.array([0, 4]), np.array([0, 1]), 4)
    with pytest.raises(ValueError):
        top_k_accuracy(np.zeros((3, 4)), np.array([0, 1]), 1)


def test_offdiagonal_mass_imbalanced():
    # Class 0: 8 samples, all right; class 1: 2 samples, both wrong.
    cm = np.array([[8, 0], [2, 0]])
    assert offdiagonal_mass(cm, "all") == pytest.approx(0.2)
    assert offdiagonal_mass(cm, "true") == pytest.approx(0.5)


# --- stats ---------------------------------------------------------------------------------------


def test_mcnemar_known_answers():
    a = np.array([1] * 5 + [0] * 5, bool)
    assert mcnemar_exact(a, a).p_value == 1.0                      # no discordant pairs
    # b = 1 (only a right), c = 6 (only b right): p = 2 * P(X <= 1 | n=7) = 2 * 8/128.
    a = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1], bool)
    b = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1], bool)
    res = mcnemar_exact(a, b)
    assert (res.only_a, res.only_b) == (1, 6)
    assert res.p_value == pytest.approx(0.125)
    # 10 discordant pairs all one way: p = 2 * 0.5**10.
    res = mcnemar_exact(np.zeros(10, bool), np.ones(10, bool))
    assert res.p_value == pytest.approx(2 * 0.5**10)
    # Symmetric in which model is "a".
    assert mcnemar_exact(b, a).p_value == pytest.approx(0.125)
    # Balanced discordance: no evidence.
    assert mcnemar_exact(np.array([1, 0], bool), np.array([0, 1], bool)).p_value == 1.0


def test_bootstrap_degenerate_cases():
    same = np.array([1, 0, 1, 1, 0] * 20, bool)
    iv = paired_bootstrap_diff(same, same, resamples=500, seed=0)
    assert (iv.delta, iv.low, iv.high) == (0.0, 0.0, 0.0)
    iv = paired_bootstrap_diff(np.zeros(50, bool), np.ones(50, bool), resamples=500, seed=0)
    assert (iv.delta, iv.low, iv.high) == (1.0, 1.0, 1.0)


def test_bootstrap_matches_normal_theory_and_is_seeded():
    rng = np.random.default_rng(123)
    n = 400
    a = rng.random(n) < 0.6
    b = a.copy()
    flip = rng.random(n) < 0.25          # discordant pairs, mostly in favour of b
    b[flip] = rng.random(flip.sum()) < 0.75
    iv = paired_bootstrap_diff(a, b, resamples=4000, seed=7)
    d = b.astype(float) - a.astype(float)
    assert iv.delta == pytest.approx(d.mean())
    se = d.std() / math.sqrt(n)
    # Percentile bootstrap of a mean ~ normal interval; generous tolerance for Monte-Carlo error.
    assert iv.low == pytest.approx(d.mean() - 1.96 * se, abs=0.25 * se + 1e-9)
    assert iv.high == pytest.approx(d.mean() + 1.96 * se, abs=0.25 * se + 1e-9)
    assert iv.low < iv.delta < iv.high
    # Same seed, same interval; chunking does not change the draw sequence's result.
    again = paired_bootstrap_diff(a, b, resamples=4000, seed=7)
    assert (again.low, again.high) == (iv.low, iv.high)
    other = paired_bootstrap_diff(a, b, resamples=4000, seed=8)
    assert (other.low, other.high) != (iv.low, iv.high)


def test_bootstrap_paired_interval_narrower_than_unpaired():
    # Two highly correlated models: pairing must give a much narrower interval than the
    # unpaired (independent-samples) standard error would.
    rng = np.random.default_rng(0)
    a = rng.random(300) < 0.5
    b = a.copy()
    b[:6] = True
    iv = paired_bootstrap_diff(a, b, resamples=2000, seed=0)
    unpaired_se = math.sqrt(a.mean() * (1 - a.mean()) / 300 + b.mean() * (1 - b.mean()) / 300)
    assert iv.high - iv.low < 2 * 1.96 * unpaired_se / 2


def test_stats_reject_unpaired():
    with pytest.raises(ValueError):
        mcnemar_exact(np.ones(3, bool), np.ones(4, bool))
    with pytest.raises(ValueError):
        paired_bootstrap_diff(np.ones(0, bool), np.ones(0, bool))


# --- cost ----------------------------------------------------------------------------------------


def test_params_and_macs_of_known_layers():
    lin = nn.Linear(10, 5)
    assert count_parameters(lin) == 55
    assert count_macs(lin, torch.zeros(4, 10)) == 50                   # per sample: 10*5
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # 8 out channels * 16*16 positions * 3*3*3 taps.
    assert count_macs(conv, torch.zeros(2, 3, 16, 16)) == 8 * 16 * 16 * 27
    conv3 = nn.Conv3d(3, 4, kernel_size=(3, 3, 3), padding=1, bias=False)
    assert count_macs(conv3, torch.zeros(1, 3, 5, 8, 8)) == 4 * 5 * 8 * 8 * 81


def test_latency_reports_per_sample_order_statistics():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3)).eval()
    samples = torch.zeros(5, 3, 2, 2)
    assert make_batch(samples, 7).shape == (7, 3, 2, 2)
    lat = measure_latency(model, samples, batch_size=4, warmup=1, repeats=5, device="cpu")
    assert lat.batch_size == 4 and lat.repeats == 5
    assert 0 < lat.median_ms <= lat.p90_ms
    assert set(lat.summary()) == {"median", "p90"}


def test_latency_divides_by_batch_size(monkeypatch):
    # A fake clock advancing 8 ms per forward: per-sample latency at batch 4 must be 2 ms.
    import gva.evaluate.cost as cost
    clock = {"t": 0.0}

    class Slow(nn.Module):
        def forward(self, x):
            clock["t"] += 0.008
            return x

    monkeypatch.setattr(cost.time, "perf_counter", lambda: clock["t"])
    lat = cost.measure_latency(Slow(), torch.zeros(2, 1), 4, warmup=2, repeats=3, device="cpu")
    assert lat.median_ms == pytest.approx(2.0) and lat.p90_ms == pytest.approx(2.0)


# --- plots ---------------------------------------------------------------------------------------


def test_plot_records_and_pngs(tmp_path):
    logits, labels, preds = _hand_made()
    names = ["a", "b", "c", "d"]
    recs = plots.confusion_records(labels, preds, names)
    assert recs[2] == {"actual": "a", "predicted": "b"} and len(recs) == 12
    rep = classification_report(logits, labels)
    other = classification_report(np.eye(4)[labels], labels)       # a perfect model
    per = plots.per_class_records(names, ["w0", "w1", "w2", "w3"], {"A": rep, "B": other})
    assert len(per) == 4 * 2 * 3
    row = next(r for r in per if (r["class"], r["model"], r["metric"]) == ("b", "A", "recall"))
    assert row["value"] == pytest.approx(2 / 3) and row["support"] == 3 and row["wnid"] == "w1"
    assert all(r["value"] == 1.0 for r in per if r["model"] == "B")
    table = plots.per_class_table(names, ["w0", "w1", "w2", "w3"], {"A": rep, "B": other})
    assert table["d"]["A"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert table["a"]["support"] == 3 and table["a"]["B"]["f1"] == 1.0
    json.dumps(per), json.dumps(table)  # plain JSON types only
    plots.plot_confusion(rep.confusion, names, "t", tmp_path / "cm.png")
    plots.plot_per_class(names, {"A": rep, "B": other}, tmp_path / "pc.png")
    for f in ("cm.png", "pc.png"):
        assert (tmp_path / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_budget_cuts_repeats_but_not_below_minimum(monkeypatch):
    import gva.evaluate.cost as cost
    clock = {"t": 0.0}

    class Slow(nn.Module):
        def forward(self, x):
            clock["t"] += 10.0     # 10 s per call
            return x

    monkeypatch.setattr(cost.time, "perf_counter", lambda: clock["t"])
    lat = cost.measure_latency(Slow(), torch.zeros(1, 1), 1, warmup=5, repeats=20, device="cpu",
                               budget_s=45.0)
    # Warm-up stops once half the budget (22.5 s) is spent: 3 calls (0 -> 10 -> 20 -> 30 s).
    # Timing stops once the whole budget is spent, but never below MIN_TIMED calls.
    assert lat.warmup == 3 and lat.repeats == cost.MIN_TIMED
    assert lat.median_ms == pytest.approx(10_000.0)
    unbounded = cost.measure_latency(Slow(), torch.zeros(1, 1), 1, warmup=2, repeats=7,
                                     device="cpu", budget_s=None)
    assert (unbounded.warmup, unbounded.repeats) == (2, 7)


@pytest.mark.parametrize("bad", [{"latency_batch_sizes": [0]}, {"latency_batch_sizes": [1, 1]},
                                 {"latency_batch_sizes": []},
                                 {"bootstrap": 0}, {"latency_repeats": 0}, {"latency_budget_s": 0},
                                 {"device": "tpu"}, {"extra_protocols": ["frame1"]},
                                 {"extra_protocols": ["frame0", "frame0"]}])
def test_evaluate_params_are_validated(bad):
    from gva.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="evaluate"):
        config_from_dict({"evaluate": bad})
    ok = config_from_dict({"evaluate": {"latency_batch_sizes": [2], "latency_budget_s": None,
                                        "device": "cuda:1", "extra_protocols": ["frames_mean"]}})
    assert ok.evaluate.latency_budget_s is None


def test_per_class_mcnemar_by_hand():
    # class 0: 12 images, a wrong / b right on 9, a right / b wrong on 1, both right on 2;
    # class 1: 4 images, both right; class 2: no images.
    labels = np.array([0] * 12 + [1] * 4)
    pred_a = np.array([1] * 9 + [0] * 3 + [1] * 4)
    pred_b = np.array([0] * 9 + [1] + [0, 0] + [1] * 4)
    rows = per_class_mcnemar(labels, pred_a == labels, pred_b == labels, n_classes=3)
    assert [(r["n"], r["only_a"], r["only_b"]) for r in rows] == [(12, 1, 9), (4, 0, 0), (0, 0, 0)]
    assert [r["p"] for r in rows] == pytest.approx([22 / 1024, 1.0, 1.0])
    # Holm over the two classes that have images; the empty class is not a test
    assert [r["p_holm"] for r in rows] == pytest.approx([2 * 22 / 1024, 1.0, 1.0])
    assert holm([r["p"] for r in rows[:2]]) == [r["p_holm"] for r in rows[:2]]
