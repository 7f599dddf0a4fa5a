"""gva report: experiments (``dvc exp show --json`` shape, DVC 3.67) or metrics files -> results."""

from __future__ import annotations

import copy
import json
import math

import pytest
import yaml

from gva import report
from gva.errors import GvaError


def _metrics(top1_2d: float, top1_3d: float, p: float = 0.5) -> dict:
    return {
        "n_test": 400,
        "model2d": {"top1": top1_2d, "top3": top1_2d + 0.2, "f1_macro": top1_2d - 0.01,
                    "params": 11181642},
        "model3d": {"top1": top1_3d, "top3": top1_3d + 0.2, "f1_macro": top1_3d - 0.02,
                    "params": 20618826},
        "delta": {"top1": top1_3d - top1_2d, "top1_ci95_low": top1_3d - top1_2d - 0.05,
                  "top1_ci95_high": top1_3d - top1_2d + 0.05, "mcnemar_p": p,
                  "only_2d_correct": 40, "only_3d_correct": 44, "top3": top1_3d - top1_2d,
                  "f1_macro": top1_3d - top1_2d - 0.01, "offdiag_mass": top1_2d - top1_3d},
    }


def _params(generator: str, frames: str, seed: int) -> dict:
    return {"params.yaml": {"data": {
        "data": {"source": "/data/tiny", "limit_per_class": 40, "classes": ["a", "b"]},
        "svd": {"generator": generator, "frames": 3, "motion": {"max_zoom": 0.08}},
        "model": {"arch": "resnet18", "pretrained": False},
        "train": {"seed": seed, "lr": 0.01, "num_workers": 2},
        "train2d": {"epochs": 6, "frames": frames},
        "train3d": {"epochs": 2},
    }}}


def _exp(name: str, generator: str, frames: str, seed: int, metrics: dict | None,
         state: str = "success") -> dict:
    """One experiment group as `dvc exp show --json` (DVC 3.67) prints it."""
    rev = (name.encode().hex() * 8)[:40]
    mfiles = {"dvclive/train2d/metrics.json": {"data": {"best_epoch": 6}}}
    if metrics is not None:
        mfiles["metrics/metrics.json"] = {"data": metrics}
    else:
        mfiles["metrics/metrics.json"] = {"error": {"type": "FileNotFoundError", "msg": "nope"}}
    return {
        "revs": [{"rev": rev, "name": name, "error": None, "experiments": None,
                  "data": {"rev": rev, "timestamp": "2026-11-24T20:44:45",
                           "params": _params(generator, frames, seed), "metrics": mfiles,
                           "deps": {}, "outs": {}, "meta": {}}}],
        "executor": None if state == "success" and seed == 2 else {
            "state": state, "name": "dvc-task",
            "local": {"root": None, "log": f"/tmp/x/{rev}.out", "pid": 1, "returncode": 0,
                      "task_id": rev}},
        "name": name,
    }


TOP1 = {  # (generator, frames) -> per seed (2-D, 3-D)
    ("repeat", "first"): [(0.18, 0.19), (0.20, 0.20), (0.22, 0.19)],
    ("motion", "first"): [(0.18, 0.15), (0.20, 0.17), (0.22, 0.21)],
    ("motion", "all"): [(0.25, 0.16), (0.24, 0.18), (0.26, 0.20)],
}


def exp_show() -> list:
    exps = []
    for (gen, frames), values in TOP1.items():
        for seed, (a, b) in enumerate(values):
            exps.append(_exp(f"{gen}-{frames}-s{seed}", gen, frames, seed,
                             _metrics(a, b, p=0.01 * (seed + 1))))
    exps.append(_exp("motion-all-s3", "motion", "all", 3, None, state="queued"))
    exps.append(_exp("motion-all-s4", "motion", "all", 4, None, state="failed"))
    exps.append(_exp("motion-all-s5", "motion", "all", 5, None))   # succeeded, no metrics
    base = {"rev": "a" * 40, "name": "master",
            "data": {"rev": "a" * 40, "timestamp": "2026-11-24T20:40:05",
                     "params": _params("svd", "first", 0),
                     "metrics": {"metrics/metrics.json": {"error": {"type": "FileNotFoundError",
                                                                   "msg": "x"}}}},
            "error": None, "experiments": exps}
    workspace = {"rev": "workspace", "name": None,
                 "data": {"rev": "workspace", "timestamp": None,
                          "params": _params("svd", "first", 0),
                          "metrics": {"metrics/metrics.json": {"data": _metrics(0.9, 0.9)}}},
                 "error": None, "experiments": None}
    return [workspace, base]


def test_collects_finished_experiments_only():
    runs, notes = report.runs_from_exp_show(exp_show())
    assert sorted(r.name for r in runs) == sorted(
        f"{g}-{f}-s{s}" for (g, f) in TOP1 for s in range(3))
    assert runs[0].params["svd.generator"] == "repeat"
    assert runs[0].params["svd.motion.max_zoom"] == 0.08          # nested params flattened
    assert notes == ["motion-all-s3: queued, skipped", "motion-all-s4: failed, skipped",
                     "motion-all-s5: no metrics/metrics.json, skipped"]
    with_ws, _ = report.runs_from_exp_show(exp_show(), include_workspace=True)
    assert len(with_ws) == len(runs) + 1


def test_aggregate_groups_by_varying_params_and_summarises_over_seeds():
    runs, _ = report.runs_from_exp_show(exp_show())
    results = report.aggregate(runs)
    assert [c.label for c in results] == [
        "svd.generator=motion, train2d.frames=all", "svd.generator=motion, train2d.frames=first",
        "svd.generator=repeat, train2d.frames=first"]
    c = results[1]
    assert c.seeds == [0, 1, 2]
    assert c.metrics["model2d"]["top1"].values == pytest.approx([0.18, 0.20, 0.22])
    assert c.metrics["model2d"]["top1"].mean == pytest.approx(0.20)
    assert c.metrics["model2d"]["top1"].std == pytest.approx(0.02)
    assert c.delta_top1.mean == pytest.approx(-0.0233333, abs=1e-6)
    lo, hi = c.delta_top1.t_interval()
    assert lo < c.delta_top1.mean < hi
    assert c.mcnemar_p == pytest.approx([0.01, 0.02, 0.03])
    assert c.delta_ci[0] == pytest.approx((-0.08, 0.02))

    (base, ctrl, diff), = report.control_pairs(results)
    assert base.label.endswith("frames=first") and ctrl.label.endswith("frames=all")
    assert diff.values == pytest.approx([0.07, 0.04, 0.04])


def _with_seeds(exps: list, svd_seed, data_seed) -> list:
    """exp_show() with svd.seed / data.seed set per experiment (functions of its train.seed)."""
    exps = copy.deepcopy(exps)
    for exp in exps[1]["experiments"]:
        params = exp["revs"][0]["data"]["params"]["params.yaml"]["data"]
        seed = params["train"]["seed"]
        params["svd"]["seed"], params["data"]["seed"] = svd_seed(seed), data_seed(seed)
    return exps


def test_seeds_varied_with_the_train_seed_are_part_of_the_replicate(tmp_path):
    """grid.sh --vary-all: svd.seed = data.seed = train.seed is one replicate, not a configuration;
    a generation seed varied on its own still names configurations."""
    runs, _ = report.runs_from_exp_show(_with_seeds(exp_show(), lambda s: s, lambda s: s))
    assert report.lockstep_seeds(runs) == ["svd.seed", "data.seed"]
    results = report.aggregate(runs)
    assert len(results) == 3 and all(c.seeds == [0, 1, 2] for c in results)
    assert len(report.control_pairs(results)) == 1
    report.write_report(runs, tmp_path)
    assert "seeds vary `train.seed`, `svd.seed`, `data.seed`" in (tmp_path / "results.md").read_text()
    runs, _ = report.runs_from_exp_show(_with_seeds(exp_show(), lambda s: 7 - s, lambda s: 0))
    assert report.lockstep_seeds(runs) == [] and len(report.aggregate(runs)) == 9


def test_single_seed_has_no_std_or_interval():
    s = report.Summary([0.3])
    assert s.mean == 0.3 and math.isnan(s.std) and all(map(math.isnan, s.t_interval()))


def test_markdown_table(tmp_path):
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(exp_show()))
    assert report.main(["--exp-json", str(path), "--out", str(tmp_path / "out")]) == 0
    md = (tmp_path / "out" / "results.md").read_text()
    assert ("| svd.generator=motion, train2d.frames=first | 2-D (original test images) | 3 | "
            "0.200 ± 0.020 | 0.400 ± 0.020 | 0.190 ± 0.020 |") in md
    assert "## Control: 2-D trained with the generated frames as extra images" in md
    assert "s0: 0.010 (40/44)" in md
    assert "`model.arch=resnet18`" in md and "train.num_workers" not in md
    assert "Skipped: motion-all-s3: queued, skipped" in md
    # no predictions anywhere: the report says why it has no comparisons section
    assert "## Comparisons" not in md and "there is no comparisons section" in md
    for name in ("metrics.png", "delta_top1.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(data["configurations"]) == 3 and len(data["controls"]) == 1


def test_same_input_same_bytes_whatever_the_order(tmp_path):
    shuffled = exp_show()
    shuffled[1]["experiments"] = list(reversed(shuffled[1]["experiments"]))
    outputs = []
    for i, data in enumerate((exp_show(), copy.deepcopy(exp_show()), shuffled)):
        path = tmp_path / f"in{i}.json"
        path.write_text(json.dumps(data))
        out = tmp_path / f"out{i}"
        assert report.main(["--exp-json", str(path), "--out", str(out)]) == 0
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert sorted(outputs[0]) == ["delta_top1.png", "metrics.png", "results.json", "results.md"]
    assert outputs[0] == outputs[1] == outputs[2]


def test_runs_from_metrics_files(tmp_path):
    dirs = []
    for seed, (a, b) in enumerate(TOP1[("motion", "first")]):
        run = tmp_path / f"run{seed}"
        (run / "metrics").mkdir(parents=True)
        (run / "params.yaml").write_text(yaml.safe_dump(
            _params("motion", "first", seed)["params.yaml"]["data"]))
        (run / "metrics" / "metrics.json").write_text(json.dumps(_metrics(a, b)))
        dirs.append(run)
    out = tmp_path / "out"
    # a run directory and a metrics.json file are both accepted
    assert report.main(["--runs", str(dirs[0]), str(dirs[1] / "metrics" / "metrics.json"),
                        str(dirs[2]), "--out", str(out)]) == 0
    md = (out / "results.md").read_text()
    assert "| all runs | 2-D (original test images) | 3 | 0.200 ± 0.020 |" in md
    assert "| all runs | 0 | run0 |" in md


def test_bad_input_is_one_line_error(tmp_path, capsys):
    path = tmp_path / "exps.json"
    path.write_text(json.dumps([]))
    assert report.main(["--exp-json", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "no finished runs" in capsys.readouterr().err
    path.write_text(json.dumps({"not": "a list"}))
    assert report.main(["--exp-json", str(path), "--out", str(tmp_path / "o")]) == 2
    assert report.main(["--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2


def test_unparsable_inputs_name_the_file_or_run(tmp_path, capsys):
    bad = tmp_path / "exps.json"
    bad.write_text("{not json")
    assert report.main(["--exp-json", str(bad), "--out", str(tmp_path / "o")]) == 2
    assert f"{bad}: not valid JSON" in capsys.readouterr().err

    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "params.yaml").write_text("train: {seed: [\n")
    (run / "metrics" / "metrics.json").write_text(json.dumps(_metrics(0.5, 0.6)))
    assert report.main(["--runs", str(run), "--out", str(tmp_path / "o")]) == 2
    assert f"{run / 'params.yaml'}: not valid YAML" in capsys.readouterr().err

    (run / "params.yaml").write_text(yaml.safe_dump(_params("motion", "first", 0)))
    broken = _metrics(0.5, 0.6)
    del broken["delta"]["mcnemar_p"]
    (run / "metrics" / "metrics.json").write_text(json.dumps(broken))
    assert report.main(["--runs", str(run), "--out", str(tmp_path / "o")]) == 2
    assert "run run: metrics/metrics.json has no number at 'delta.mcnemar_p'" in capsys.readouterr().err


def test_cli_dispatches_report_after_verbose_and_refuses_params(tmp_path, capsys):
    from gva.cli import main

    missing = tmp_path / "nope.json"
    assert main(["-v", "report", "--exp-json", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert "nope.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["--params", "p.yaml", "report", "--exp-json", str(missing)])
    assert exc.value.code == 2 and "gva report takes no --params" in capsys.readouterr().err


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gva report: error: "), err
    return lines[0]


def test_report_error_is_the_shared_gva_error():
    from gva import errors

    assert report.ReportError is errors.ReportError
    assert issubclass(report.ReportError, GvaError) and issubclass(report.ReportError, ValueError)
    with pytest.raises(GvaError, match="no finished runs"):
        report.aggregate([])


@pytest.mark.parametrize("data, what", [
    ([1, 2, 3], "item 0 is an int, not a commit mapping"),
    ({"a": 1}, "expected the JSON list printed by `dvc exp show --json`, got a mapping"),
    ("just a string", "got a string"),
    ([{"rev": "abc", "experiments": {"a": 1}}], "commit abc: 'experiments' is a mapping, not a list"),
    ([{"rev": "abc", "experiments": ["x"]}], "commit abc: experiment 0 is a string, not a mapping"),
    ([{"rev": "abc", "experiments": [{"name": "e1", "revs": [7]}]}],
     "experiment e1: 'revs' item 0 is an int, not a mapping"),
    ([{"rev": "abc", "experiments": [{"name": "e1", "revs": {"a": 1}}]}],
     "experiment e1: 'revs' is a mapping, not a list"),
    ([{"rev": "abc", "experiments": [{"name": "e1", "executor": "done", "revs": []}]}],
     "experiment e1: 'executor' is a string, not a mapping"),
    ([{"rev": "abc", "data": {"metrics": [1]}}], "commit abc: data: 'metrics' is a list"),
    ([{"rev": "abc", "data": {"params": {"params.yaml": {"data": [1]}},
                              "metrics": {"metrics/metrics.json": {"data": _metrics(0.2, 0.3)}}}}],
     "commit abc: data: params: params.yaml: 'data' is a list, not a mapping"),
])
def test_malformed_exp_show_is_a_report_error_naming_the_file(tmp_path, capsys, data, what):
    path = tmp_path / "f.json"
    path.write_text(json.dumps(data))
    assert report.main(["--exp-json", str(path), "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"gva report: error: {path}: ") and what in line, line
    with pytest.raises(report.ReportError, match="f.json"):
        report.runs_from_exp_show(data, source=str(path))
    assert not (tmp_path / "o").exists()


def test_params_yaml_that_is_not_a_mapping(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "metrics.json").write_text(json.dumps(_metrics(0.5, 0.6)))
    (run / "params.yaml").write_text("- train\n- seed\n")
    assert report.main(["--runs", str(run), "--out", str(tmp_path / "o")]) == 2
    line = _one_error_line(capsys)
    assert f"{run / 'params.yaml'}: expected a mapping of params, got a list" in line


def test_user_errors_exit_2_with_exactly_one_line(tmp_path, capsys, monkeypatch):
    import io

    # a YAML error message spans several lines; the CLI prints it as one
    run = tmp_path / "run"
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "metrics.json").write_text(json.dumps(_metrics(0.5, 0.6)))
    (run / "params.yaml").write_text("train: {seed: [\n")
    assert report.main(["--runs", str(run), "--out", str(tmp_path / "o")]) == 2
    assert "not valid YAML" in _one_error_line(capsys)

    monkeypatch.setattr("sys.stdin", io.StringIO("{not json"))
    assert report.main(["--exp-json", "-", "--out", str(tmp_path / "o")]) == 2
    assert "<stdin>: not valid JSON" in _one_error_line(capsys)

    assert report.main(["--exp-json", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in _one_error_line(capsys)


def test_bugs_keep_their_traceback(tmp_path, monkeypatch):
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(exp_show()))

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    from gva.report import cli
    monkeypatch.setattr(cli, "write_report", broken)
    with pytest.raises(KeyError, match="a bug"):
        report.main(["--exp-json", str(path), "--out", str(tmp_path / "o")])


def _exp_show_with_source(source: str) -> list:
    data = exp_show()
    for group in data[1]["experiments"]:
        group["revs"][0]["data"]["params"]["params.yaml"]["data"]["data"]["source"] = source
    return data


def test_absolute_paths_are_shown_relative_to_the_repo_root(tmp_path):
    outputs = []
    for machine in ("a", "b"):   # the same layout checked out at two places
        root = tmp_path / machine / "main"
        root.mkdir(parents=True)
        path = tmp_path / machine / "exps.json"
        path.write_text(json.dumps(_exp_show_with_source(
            f"{root}/../shared/data/tiny-imagenet-10")))
        out = tmp_path / machine / "out"
        assert report.main(["--exp-json", str(path), "--out", str(out),
                            "--repo-root", str(root)]) == 0
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
        md = (out / "results.md").read_text()
        assert "`data.source=../shared/data/tiny-imagenet-10`" in md
        assert str(tmp_path) not in md
    assert outputs[0] == outputs[1]

    # a relative path stays as written, whatever the repo root
    path = tmp_path / "rel.json"
    path.write_text(json.dumps(_exp_show_with_source("data/tiny-imagenet-200.zip")))
    assert report.main(["--exp-json", str(path), "--out", str(tmp_path / "rel"),
                        "--repo-root", "/somewhere/else"]) == 0
    assert "`data.source=data/tiny-imagenet-200.zip`" in (tmp_path / "rel" / "results.md").read_text()


def test_default_repo_root_is_the_current_directory(tmp_path, monkeypatch):
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(_exp_show_with_source(str(tmp_path / "data" / "tiny"))))
    assert report.main(["--exp-json", str(path), "--out", "out"]) == 0
    assert "`data.source=../data/tiny`" in (tmp_path / "repo" / "out" / "results.md").read_text()


def test_varying_absolute_paths_name_configurations_relative_to_the_root(tmp_path):
    data = exp_show()
    for group in data[1]["experiments"]:
        params = group["revs"][0]["data"]["params"]["params.yaml"]["data"]
        params["data"]["source"] = f"{tmp_path}/data/{params['svd']['generator']}"
    runs, _ = report.runs_from_exp_show(data)
    results = report.write_report(runs, tmp_path / "out", repo_root=tmp_path)
    assert results[0].label.startswith("data.source=data/motion, ")
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["configurations"]
    assert [r["settings"]["data.source"] for r in rows] == ["data/motion", "data/motion",
                                                            "data/repeat"]
    assert str(tmp_path) not in (tmp_path / "out" / "results.md").read_text()


def test_runs_selected_on_the_test_set_are_flagged_at_the_top():
    runs, notes = report.runs_from_exp_show(exp_show())
    flagged = runs[0]
    runs[0] = report.Run(flagged.name, flagged.params, {**flagged.metrics,
                                                       "protocol_warning": "model2d selected on the test set"})
    md = report.render_markdown(report.build_report(runs, notes))
    assert md.splitlines()[2] == (f"**WARNING: 1 run(s) selected their model on the TEST set (train.select_on: "
                                  f"test, the reference code's protocol); their test numbers estimate nothing: "
                                  f"{flagged.name}.**")
    clean = report.render_markdown(report.build_report(runs[1:], notes))
    assert "WARNING" not in clean


def test_ignore_param_joins_runs_that_differ_only_in_it(tmp_path):
    """A param a later commit added (absent from the older runs) splits a configuration unless
    --ignore-param names it; the report then lists its values. A key no run has is an error."""
    data = exp_show()
    runs = [r for b in data for e in (b.get("experiments") or []) for r in e["revs"]]
    for r in runs[::2]:
        r["data"]["params"]["params.yaml"]["data"]["svd"]["prompt"] = "a video"
    path = tmp_path / "exps.json"
    path.write_text(json.dumps(data))
    assert report.main(["--exp-json", str(path), "--out", str(tmp_path / "split")]) == 0
    split = json.loads((tmp_path / "split" / "results.json").read_text())
    assert report.main(["--exp-json", str(path), "--out", str(tmp_path / "joined"),
                        "--ignore-param", "svd.prompt"]) == 0
    joined = json.loads((tmp_path / "joined" / "results.json").read_text())
    assert len(joined["configurations"]) == 3 < len(split["configurations"])
    assert joined["ignored_params"] == {"svd.prompt": ["(absent)", "a video"]}
    md = (tmp_path / "joined" / "results.md").read_text()
    assert "Not told apart (`--ignore-param`" in md and "`svd.prompt`: `(absent)`, `a video`" in md
    assert report.main(["--exp-json", str(path), "--out", str(tmp_path / "typo"),
                        "--ignore-param", "svd.promt"]) == 2
    assert not (tmp_path / "typo").exists()
