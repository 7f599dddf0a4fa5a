"""gva report on a cross-fitted grid (data.folds): fold runs pooled into one replicate per seed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gva.errors import ReportError
from gva.evaluate.metrics import classification_report
from gva.report import Run, aggregate, write_report
from gva.report.compare import comparisons
from gva.report.folds import pool_folds, pooled_metrics
from gva.stats import crossed

POOL = 240   # images in the pool, 10 classes
K = 3


def _fold_ids(seed: int) -> list[np.ndarray]:
    """The pool's ids dealt into K folds, differently per seed (as data.seed does with --vary-all)."""
    perm = np.random.default_rng(1000 + seed).permutation(POOL)
    return [np.sort(part) for part in np.array_split(perm, K)]


def _fold_preds(ids: np.ndarray, acc2: float, acc3: float, rng: np.random.Generator) -> dict:
    labels = ids % 10

    def ranked(acc):
        right = rng.random(ids.size) < acc
        top1 = np.where(right, labels, (labels + 1 + rng.integers(0, 9, ids.size)) % 10)
        return np.stack([top1, (top1 + 1) % 10, (top1 + 2) % 10], axis=1)

    r2, r3, r0 = ranked(acc2), ranked(acc3), ranked(acc2)
    return {"id": ids, "label": labels, "pred_2d": r2[:, 0], "pred_3d": r3[:, 0], "pred_2d_frame0": r0[:, 0],
            "top3_2d": r2, "top3_3d": r3, "top3_2d_frame0": r0}


def _runs(gen: str, acc2: float, acc3: float, seeds=(0, 1, 2), offset: int = 0) -> list[Run]:
    rng = np.random.default_rng(offset)
    out = []
    for s in seeds:
        for k, ids in enumerate(_fold_ids(s)):
            p = _fold_preds(ids, acc2, acc3, rng)
            params = {"svd.generator": gen, "train.seed": s, "data.seed": s, "svd.seed": s, "data.folds": K,
                      "data.fold": k, "evaluate.bootstrap": 500, "train.device": "cpu" if k else "cuda"}
            # per-fold metrics as evaluate writes them; pooling must not average these
            out.append(Run(f"{gen}-s{s}-f{k}", params, {"n_test": int(ids.size), "model2d": {"top1": -1.0}},
                           predictions=p))
    return out


def test_pooled_metrics_are_evaluate_statistics_on_every_image():
    runs = _runs("motion", 0.4, 0.5)
    pooled, notes = pool_folds(runs)
    assert not notes and [r.name for r in pooled] == ["motion-s0", "motion-s1", "motion-s2"]
    run = pooled[0]
    assert "data.fold" not in run.params and run.params["data.folds"] == K
    pred = run.predictions
    assert np.array_equal(pred["id"], np.arange(POOL))  # every image once, in id order
    m = run.metrics
    assert m["n_test"] == POOL
    # the same numbers as evaluate's own functions on the pooled predictions
    onehot = lambda p: np.eye(10)[p]
    for tag in ("2d", "3d", "2d_frame0"):
        rep = classification_report(onehot(pred[f"pred_{tag}"]), pred["label"])
        assert m[f"model{tag}"]["top1"] == pytest.approx(rep.top1)
        assert m[f"model{tag}"]["f1_macro"] == pytest.approx(rep.f1_macro)
        assert m[f"model{tag}"]["top3"] == pytest.approx(np.mean((pred[f"top3_{tag}"] == pred["label"][:, None]).any(1)))
    c2, c3 = pred["pred_2d"] == pred["label"], pred["pred_3d"] == pred["label"]
    # the pooled images were scored by K fold models: the interval and p are the crossed model's
    # with the folds as its model level, not one model's bootstrap and McNemar test
    assert np.array_equal(np.sort(np.unique(pred["fold"])), np.arange(K))
    fit = crossed.fit((c3.astype(float) - c2)[None], pred["fold"][None])
    assert fit.n_models == K
    assert (m["delta"]["top1"], m["delta"]["top1_ci95_low"], m["delta"]["top1_ci95_high"]) == \
        (pytest.approx(c3.mean() - c2.mean()), *fit.interval())
    assert m["delta"]["mcnemar_p"] == fit.p_value() and m["delta"]["p_method"] == f"crossed t over {K} fold models"
    assert (m["delta"]["only_2d_correct"], m["delta"]["only_3d_correct"]) == \
        (int((c2 & ~c3).sum()), int((c3 & ~c2).sum()))
    assert m["delta_frame0"]["top1"] == pytest.approx(m["model3d"]["top1"] - m["model2d_frame0"]["top1"])
    assert m["delta"]["f1_macro"] == pytest.approx(m["model3d"]["f1_macro"] - m["model2d"]["f1_macro"])


def test_comparisons_see_the_whole_pool_per_seed():
    runs = _runs("motion", 0.4, 0.6) + _runs("repeat", 0.4, 0.4, offset=1)
    results = aggregate(pool_folds(runs)[0])
    assert [len(c.runs) for c in results] == [3, 3]
    rows, notes = comparisons(results, n_boot=500)
    assert not notes
    assert all(r.top1.n_images == POOL and r.top1.n_seeds == 3 for r in rows)
    by = {r.name: r for r in rows}
    assert by["svd.generator=motion: 3-D − 2-D"].verdict.kind == "difference"


def test_incomplete_folds_and_missing_predictions_are_left_out_and_said():
    runs = _runs("motion", 0.4, 0.5)
    runs = [r for r in runs if r.name != "motion-s1-f2"]
    runs = [Run(r.name, r.params, r.metrics, predictions=None) if r.name == "motion-s2-f0" else r for r in runs]
    pooled, notes = pool_folds(runs)
    assert [r.name for r in pooled] == ["motion-s0"]
    assert any("motion-s1: folds 0, 1 of data.folds=3 finished" in n for n in notes)
    assert any("motion-s2: no metrics/predictions.csv for motion-s2-f0" in n for n in notes)


def test_overlapping_folds_are_an_error_naming_the_runs():
    runs = _runs("motion", 0.4, 0.5, seeds=(0,))
    clash = runs[1].predictions.copy()
    clash["id"] = clash["id"].copy()
    clash["id"][0] = runs[0].predictions["id"][0]
    runs[1] = Run(runs[1].name, runs[1].params, runs[1].metrics, predictions=clash)
    with pytest.raises(ReportError, match=r"motion-s0-f0, motion-s0-f1 both scored test image id \d+"):
        pool_folds(runs)


def test_plain_runs_pass_through_and_the_report_says_it_pooled(tmp_path):
    runs = _runs("motion", 0.4, 0.5) + _runs("repeat", 0.4, 0.45, offset=1)
    write_report(runs, tmp_path, n_boot=500)
    md = (tmp_path / "results.md").read_text()
    assert "Cross-fitted (`data.folds=3`)" in md and "18 fold runs in all" in md
    assert "6 finished runs in 2 configurations" in md and f"{POOL} paired test images per run" in md
    assert "| svd.generator=motion | 0 | motion-s0 |" in md and "-f0" not in md
    data = json.loads((tmp_path / "results.json").read_text())
    assert {n for c in data["configurations"] for n in c["runs"]} == \
        {f"{g}-s{s}" for g in ("motion", "repeat") for s in range(3)}
    plain = Run("plain", {"train.seed": 0}, pooled_metrics(
        {**_fold_preds(np.arange(30), 0.5, 0.5, np.random.default_rng(0)), "fold": np.arange(30) % K}))
    assert pool_folds([plain]) == ([plain], [])
    with pytest.raises(ReportError, match="no run left to report: motion-s0: folds 0 of"):
        write_report(_runs("motion", 0.4, 0.5, seeds=(0,))[:1], tmp_path / "x", n_boot=500)
