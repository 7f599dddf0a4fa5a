"""gva report's comparisons: two-level intervals, Holm, MDE, TOST and verdicts from predictions."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from gva.errors import ReportError
from gva.report import Run, aggregate, write_report
from gva.report.collect import attach_predictions
from gva.report.compare import comparisons

N = 300


def _preds(seed: int, acc2: float, acc3: float, rng_seed: int) -> dict:
    rng = np.random.default_rng(rng_seed)
    labels = np.arange(N) % 10
    def model(acc):
        right = rng.random(N) < acc
        return np.where(right, labels, (labels + 1 + rng.integers(0, 9, N)) % 10)
    return {"id": np.arange(N), "label": labels, "pred_2d": model(acc2), "pred_3d": model(acc3)}


def _metrics(p: dict) -> dict:
    t2, t3 = np.mean(p["pred_2d"] == p["label"]), np.mean(p["pred_3d"] == p["label"])
    return {"n_test": N, "model2d": {"top1": t2, "top3": 0.9, "f1_macro": t2},
            "model3d": {"top1": t3, "top3": 0.9, "f1_macro": t3},
            "delta": {"top1": t3 - t2, "top1_ci95_low": -1, "top1_ci95_high": 1, "mcnemar_p": 0.5,
                      "top3": 0.0, "f1_macro": t3 - t2}}


def _runs(gen: str, acc2: float, acc3: float, offset: int = 0, seeds: int = 3) -> list[Run]:
    out = []
    for s in range(seeds):
        p = _preds(s, acc2, acc3, 100 * offset + s)
        if acc2 == acc3 and gen == "same":
            p["pred_3d"] = p["pred_2d"].copy()
        out.append(Run(f"{gen}-s{s}", {"svd.generator": gen, "train.seed": s}, _metrics(p), predictions=p))
    return out


def test_verdicts_follow_the_numbers():
    # five seeds: with three, a seed effect the data cannot rule out leaves ~2 df (gva.stats.crossed)
    runs = [r for g, a2, a3, o in (("better", 0.40, 0.70, 1), ("same", 0.5, 0.5, 2), ("noisy", 0.50, 0.52, 3))
            for r in _runs(g, a2, a3, o, seeds=5)]
    rows, notes = comparisons(aggregate(runs), margin=0.02, n_boot=2000)
    by = {r.name.split(":")[0]: r for r in rows}
    assert not notes and len(rows) == 3
    assert by["svd.generator=better"].verdict.kind == "difference"
    assert by["svd.generator=better"].low > 0.2 and by["svd.generator=better"].top1.low > 0.2
    assert by["svd.generator=same"].verdict.kind == "equivalent"
    noisy = by["svd.generator=noisy"]
    assert noisy.verdict.kind == "inconclusive" and f"MDE ±{noisy.mde:.3f}" in noisy.verdict.text
    # Holm: adjusted p never below the raw one; the interval covers both variance sources, so it
    # is at least as wide as the image-only spread of one seed
    assert all(r.p_holm >= r.p for r in rows)
    assert noisy.mde > 0.05


def test_primary_must_name_a_comparison_and_is_marked(tmp_path):
    runs = _runs("better", 0.40, 0.70, 1)
    with pytest.raises(ReportError, match="names no comparison"):
        comparisons(aggregate(runs), primary="nope", n_boot=200)
    write_report(runs, tmp_path, n_boot=200, primary="all runs: 3-D − 2-D")
    md = (tmp_path / "results.md").read_text()
    assert "| **primary:** all runs: 3-D − 2-D | 3 |" in md
    assert "there is no comparisons section" not in md


def _grid(acc: dict[tuple[str, str], tuple[float, float]], seeds=range(3)) -> list[Run]:
    """Runs of a generator × train2d.frames grid; ``acc[(gen, frames)]`` = (2-D, 3-D) accuracy.
    The 2-D model of ``frames=first`` is the same for every generator, as in the pipeline."""
    runs = []
    for s in seeds:
        first2d = _preds(s, acc[("repeat", "first")][0], 0.5, 700 + s)["pred_2d"]
        for k, ((gen, frames), (a2, a3)) in enumerate(sorted(acc.items())):
            p = _preds(s, a2, a3, 10 * k + s)
            if frames == "first":
                p["pred_2d"] = first2d.copy()
            params = {"svd.generator": gen, "train2d.frames": frames, "train.seed": s}
            runs.append(Run(f"{gen}-{frames}-s{s}", params, _metrics(p), predictions=p))
    return runs


def test_generators_are_compared_with_the_reference_generator():
    """Each generator against its twin with the reference generator, paired by seed: the 3-D
    models always, the 2-D models only with train2d.frames=all (with frames=first they are the
    same model); --reference-generator none (None) leaves these comparisons out."""
    acc = {("repeat", "first"): (0.4, 0.4), ("repeat", "all"): (0.5, 0.5),
           ("motion", "first"): (0.4, 0.4), ("motion", "all"): (0.8, 0.5)}
    runs = _grid(acc, seeds=range(5))
    rows, notes = comparisons(aggregate(runs), n_boot=1000)
    by = {r.name: r for r in rows}
    views = by["svd.generator=motion, train2d.frames=all: 2-D on frames − 2-D on repeat frames"]
    assert views.verdict.kind == "difference" and views.top1.low > 0.2
    assert views.verdict.text.startswith("2-D(motion frames) − 2-D(repeat frames) = +")
    runs_of = {r.name: r for r in runs}
    expected = np.mean([np.mean(runs_of[f"motion-all-s{s}"].predictions["pred_2d"] == runs_of[f"motion-all-s{s}"].predictions["label"])
                        - np.mean(runs_of[f"repeat-all-s{s}"].predictions["pred_2d"] == runs_of[f"repeat-all-s{s}"].predictions["label"])
                        for s in range(5)])
    assert views.top1.estimate == pytest.approx(expected)
    for frames in ("first", "all"):
        assert f"svd.generator=motion, train2d.frames={frames}: 3-D − 3-D on repeat clips" in by
    assert "svd.generator=motion, train2d.frames=first: 2-D on frames − 2-D on repeat frames" not in by
    assert not any("3-D on motion" in n or n.startswith("svd.generator=repeat") and "repeat clips" in n
                   for n in by)
    assert len(rows) == 4 + 2 + 3 and not notes
    assert all(r.p_holm >= r.p for r in rows)            # Holm over all nine
    plain, _ = comparisons(aggregate(runs), n_boot=200, reference_generator=None)
    assert len(plain) == 6 and not any("repeat clips" in r.name or "repeat frames" in r.name for r in plain)
    # only seeds both configurations have are paired
    missing = [r for r in runs if r.name != "repeat-all-s2"]
    rows, _ = comparisons(aggregate(missing), n_boot=200)
    assert {r.name: r for r in rows}[views.name].seeds == [0, 1, 3, 4]


def test_runs_without_predictions_are_left_out_and_said(tmp_path):
    runs = _runs("better", 0.40, 0.70, 1) + [Run(f"old-s{s}", {"svd.generator": "old", "train.seed": s},
                                                  _metrics(_preds(s, 0.5, 0.5, 9))) for s in range(3)]
    rows, notes = comparisons(aggregate(runs), n_boot=200)
    assert [r.name for r in rows] == ["svd.generator=better: 3-D − 2-D"]
    assert notes and "svd.generator=old" in notes[0]


def test_predictions_come_from_git_and_are_stored(tmp_path):
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)
    csv = "id,label,class_name,pred_2d,pred_3d\n1,0,a,0,1\n2,1,b,1,1\n"
    (repo / "metrics" / "predictions.csv").write_text(csv)
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    subprocess.run(git + ["add", "-A"], cwd=repo, check=True)
    subprocess.run(git + ["commit", "-qm", "x"], cwd=repo, check=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    store = tmp_path / "store"
    e1 = {"n_test": 2, "model2d": {"top1": 1.0}, "model3d": {"top1": 0.5}}   # what the file gives
    runs, notes = attach_predictions([Run("e1", {}, e1, rev), Run("e2", {}, {}, "0" * 40)], repo, store)
    assert runs[0].predictions["pred_3d"].tolist() == [1, 1] and runs[1].predictions is None
    assert notes == ["e2: no metrics/predictions.csv"]
    assert (store / "e1.csv").read_text() == csv
    again, _ = attach_predictions([Run("e1", {}, e1, "")], tmp_path / "elsewhere", store)  # no git needed now
    assert again[0].predictions["pred_2d"].tolist() == [0, 1]


def test_ranked_predictions_give_delta_top3():
    runs = []
    for s in range(3):
        p = _preds(s, 0.4, 0.6, 40 + s)
        rng = np.random.default_rng(s)
        for m in ("2d", "3d"):  # top-1 first, then two other classes
            others = (p[f"pred_{m}"][:, None] + 1 + rng.permutation(9)[:2][None, :]) % 10
            p[f"top3_{m}"] = np.column_stack([p[f"pred_{m}"], others])
        runs.append(Run(f"r-s{s}", {"train.seed": s}, _metrics(p), predictions=p))
    (row,), _ = comparisons(aggregate(runs), n_boot=500)
    assert row.top3 is not None and row.top1.estimate == pytest.approx(
        np.mean([np.mean(r.predictions["pred_3d"] == r.predictions["label"])
                 - np.mean(r.predictions["pred_2d"] == r.predictions["label"]) for r in runs]))
    hit = lambda t, y: np.mean([yy in tt for tt, yy in zip(t, y)])  # noqa: E731
    assert row.top3.estimate == pytest.approx(np.mean([hit(r.predictions["top3_3d"], r.predictions["label"])
                                                       - hit(r.predictions["top3_2d"], r.predictions["label"])
                                                       for r in runs]))


def test_predictions_in_dvc_cache_are_read_through_dvc(tmp_path):
    """predictions.csv as a DVC output (not in git): read at its revision through dvc.lock and the
    cache; a revision whose data is in no cache and on no remote is a note, not an error."""
    import os
    import shutil
    import sys
    from pathlib import Path

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    repo = tmp_path / "repo"
    (repo / "metrics").mkdir(parents=True)

    def sh(*cmd: str) -> str:
        return subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, text=True).stdout

    sh("git", "init", "-q")
    sh("dvc", "init", "-q")
    revs = []
    for i, csv in enumerate(("id,label,class_name,pred_2d,pred_3d\n1,0,a,0,1\n2,1,b,1,1\n",
                             "id,label,class_name,pred_2d,pred_3d\n1,0,a,0,0\n2,1,b,0,1\n")):
        (repo / "metrics" / "predictions.csv").write_text(csv)
        sh("dvc", "add", "-q", "metrics/predictions.csv")
        sh(*git, "add", "-A")
        sh(*git, "commit", "-qm", f"run {i}")
        assert "metrics/predictions.csv\n" not in sh("git", "ls-files", "metrics")  # only its .dvc file
        revs.append(sh("git", "rev-parse", "HEAD").strip())
    store = tmp_path / "store"
    e1 = {"n_test": 2, "model2d": {"top1": 1.0}, "model3d": {"top1": 0.5}}   # what each file gives
    e2 = {"n_test": 2, "model2d": {"top1": 0.5}, "model3d": {"top1": 1.0}}
    runs, notes = attach_predictions([Run("e1", {}, e1, revs[0]), Run("e2", {}, e2, revs[1])], repo, store)
    assert notes == []
    assert runs[0].predictions["pred_3d"].tolist() == [1, 1]
    assert runs[1].predictions["pred_3d"].tolist() == [0, 1]     # each at its own revision
    assert (store / "e1.csv").read_text().endswith("2,1,b,1,1\n")
    shutil.rmtree(repo / ".dvc" / "cache")                        # data gone, no remote
    runs, notes = attach_predictions([Run("e1", {}, e1, revs[0])], repo)
    assert runs[0].predictions is None and notes == ["e1: no metrics/predictions.csv"]


# --- pairing is by image id ----------------------------------------------------------------------

def _shifted(run: Run, by: int) -> Run:
    p = {k: v.copy() for k, v in run.predictions.items()}
    p["id"] = p["id"] + by   # other images, same labels
    return Run(run.name, run.params, run.metrics, run.rev, predictions=p)


def test_seeds_that_scored_other_images_are_not_paired_and_the_report_says_so(tmp_path):
    """Issue 26: every id of one seed's predictions shifted by 77 (labels unchanged) was paired with
    the other seeds' images, and the report said "the same images in every run"."""
    runs = _runs("better", 0.40, 0.70, 1)
    runs[1] = _shifted(runs[1], 77)
    rows, notes = comparisons(aggregate(runs), n_boot=200)
    assert rows == []
    assert len(notes) == 1 and "better-s0 and better-s1 scored different test images" in notes[0]
    write_report(runs, tmp_path, n_boot=200)
    md = (tmp_path / "results.md").read_text()
    assert "(the same images in every run)" not in md
    assert "NOT the same images in every run (2 different test sets" in md
    assert "better-s0 and better-s1 scored different test images" in md


def test_seeds_listing_the_same_images_in_another_order_are_paired_by_id():
    runs = _runs("better", 0.40, 0.70, 1)
    (ref,), _ = comparisons(aggregate(runs), n_boot=300)
    order = np.random.default_rng(0).permutation(N)
    p = {k: v[order] for k, v in runs[2].predictions.items()}
    runs[2] = Run(runs[2].name, runs[2].params, runs[2].metrics, predictions=p)
    (row,), notes = comparisons(aggregate(runs), n_boot=300)
    assert not notes
    assert (row.top1.estimate, row.top1.low, row.top1.high, row.mde) == \
        (ref.top1.estimate, ref.top1.low, ref.top1.high, ref.mde)


def test_twins_that_scored_other_images_are_left_out_not_a_traceback(tmp_path, caplog):
    """A generator twin whose predictions hold other images (the 2-D − 2-D pairing across runs)
    raised a bare ValueError out of `gva report`."""
    import json

    import yaml

    from gva import report

    dirs = []
    acc = {("repeat", "first"): (0.4, 0.4), ("repeat", "all"): (0.5, 0.5), ("motion", "all"): (0.8, 0.5)}
    for run in [r for r in _grid(acc, seeds=[0]) if r.params["train2d.frames"] == "all"]:
        d = tmp_path / run.name
        (d / "metrics").mkdir(parents=True)
        (d / "params.yaml").write_text(yaml.safe_dump(
            {"svd": {"generator": run.params["svd.generator"]}, "train2d": {"frames": "all"}, "train": {"seed": 0}}))
        (d / "metrics" / "metrics.json").write_text(json.dumps(run.metrics, default=float))
        p = run.predictions
        ids = p["id"] + (77 if run.params["svd.generator"] == "motion" else 0)
        (d / "metrics" / "predictions.csv").write_text("id,label,class_name,pred_2d,pred_3d\n" + "".join(
            f"{i},{y},c{y},{a},{b}\n" for i, y, a, b in zip(ids, p["label"], p["pred_2d"], p["pred_3d"])))
        dirs.append(str(d))
    assert report.main(["--runs", *dirs, "--out", str(tmp_path / "out"), "--bootstrap", "200"]) == 0
    assert "repeat-all-s0 vs motion-all-s0: the two prediction files do not hold the same test images" in caplog.text
    md = (tmp_path / "out" / "results.md").read_text()
    assert "3-D − 3-D on repeat clips" not in md.split("Left out:")[0]


# --- a stored predictions file must be the run's own -------------------------------------------

CSV = "id,label,class_name,pred_2d,pred_3d\n1,0,a,0,1\n2,1,b,1,1\n3,1,b,0,1\n"   # 2-D 2/3, 3-D 2/3


def _run_metrics(top1_2d: float, top1_3d: float, n: int = 3) -> dict:
    return {"n_test": n, "model2d": {"top1": top1_2d}, "model3d": {"top1": top1_3d}, "delta": {}}


def test_a_stored_predictions_file_must_reproduce_its_runs_metrics(tmp_path):
    """Issue 26: store/<run>.csv was trusted by name alone: a stale or edited file changed the
    comparisons silently. It must reproduce the run's own top-1 of every model and its n_test."""
    store = tmp_path / "store"
    store.mkdir()
    run = Run("e1", {}, _run_metrics(2 / 3, 2 / 3), "")
    (store / "e1.csv").write_text(CSV)
    (ok,), _ = attach_predictions([run], tmp_path, store)
    assert ok.predictions["pred_3d"].tolist() == [1, 1, 1]

    (store / "e1.csv").write_text(CSV.replace("3,1,b,0,1", "3,1,b,0,0"))   # one 3-D prediction edited
    with pytest.raises(ReportError, match=r"e1.csv: does not reproduce run e1's metrics: model3d top-1 "
                                          r"recomputed from it is 0.3333 \(1/3\), the run's metrics.json has "
                                          r"0.6667"):
        attach_predictions([run], tmp_path, store)
    (store / "e1.csv").write_text(CSV.rsplit("3,1,b", 1)[0])                 # a row gone
    with pytest.raises(ReportError, match=r"e1.csv: does not reproduce run e1's metrics: it holds 2 test "
                                          r"images, the run's n_test is 3"):
        attach_predictions([run], tmp_path, store)
    (store / "e1.csv").write_text(CSV)
    with pytest.raises(ReportError, match="cannot be tied to run e1: its metrics.json gives no top-1"):
        attach_predictions([Run("e1", {}, {"delta": {}}, "")], tmp_path, store)


def test_a_stale_store_file_is_one_line_exit_2_and_a_store_that_is_a_file_too(tmp_path, capsys):
    import json

    from gva import report

    exp = [{"rev": "abc", "data": {"params": {"params.yaml": {"data": {"train": {"seed": 0}}}},
                                   "metrics": {"metrics/metrics.json": {"data": {
                                       **_run_metrics(2 / 3, 1 / 3), "model2d": {"top1": 2 / 3, "top3": 1, "f1_macro": 0.5},
                                       "model3d": {"top1": 1 / 3, "top3": 1, "f1_macro": 0.5},
                                       "delta": {"top1": -1 / 3, "top1_ci95_low": -1, "top1_ci95_high": 1,
                                                 "mcnemar_p": 1, "top3": 0, "f1_macro": 0}}}}},
            "name": "e1", "experiments": []}]
    (tmp_path / "exps.json").write_text(json.dumps(exp))
    store = tmp_path / "store"
    store.mkdir()
    (store / "e1.csv").write_text(CSV)   # 3-D 2/3, but the run's 3-D top-1 is 1/3
    args = ["--exp-json", str(tmp_path / "exps.json"), "--out", str(tmp_path / "out"), "--repo-root", str(tmp_path)]
    assert report.main([*args, "--predictions", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "e1.csv: does not reproduce run e1's metrics" in err
    (tmp_path / "file").write_text("")
    assert report.main([*args, "--predictions", str(tmp_path / "file")]) == 2
    err = capsys.readouterr().err
    assert err == f"gva report: error: --predictions {tmp_path / 'file'}: not a directory\n"
