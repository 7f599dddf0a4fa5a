"""gva.grid: the pure plans (names, order, settings), skip-existing, queueing, `gva grid`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gva import cli, grid, presets
from gva.errors import ConfigError
from gva.generate.cogvideox import COGVIDEOX
from gva.protocol import format_value, overrides

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)   # params.yaml and params/ of the repository


def _sets(e: grid.Experiment) -> dict[str, str]:
    """Its -S key=value pairs, extra args included; later ones win, as in dvc."""
    return dict(o.split("=", 1) for o in e.all_overrides())


def _names(experiments) -> list[str]:
    return [e.name for e in experiments]


# ---------------------------------------------------------------- plan -------------------------

def test_default_grid_is_seed_major_with_the_motion_control():
    runs = grid.plan("/d", base=presets.load("grid-scratch"))
    assert _names(runs) == [f"{n}-s{s}" for s in (0, 1, 2) for n in ("repeat-first", "motion-first", "motion-all")]
    sets = _sets(runs[2])
    assert sets["data.source"] == "/d" and sets["data.limit_per_class"] == "null"
    assert sets["svd.generator"] == "motion" and sets["train2d.frames"] == "all" and sets["train.seed"] == "0"
    assert sets["model.arch"] == "resnet18" and sets["train2d.epochs"] == "10"
    assert "svd.seed" not in sets and "data.seed" not in sets   # only the training seed varies
    assert runs[0].overrides[:2] == ("data.source=/d", "data.limit_per_class=null")


def test_controls_no_first_vary_all_limit_epochs_and_extra_args():
    runs = grid.plan("/d", base=presets.load("grid-scratch"), generators=["repeat", "motion"],
                     control=["repeat", "motion"], first=False, seeds=[3], vary_all=True, limit=100,
                     epochs2d=5, epochs3d=1, extra=["-S", "train.image_size=32", "-S", "train2d.epochs=7"])
    assert _names(runs) == ["repeat-all-s3", "motion-all-s3"]
    assert grid.plan("/d", generators="repeat motion", control="motion", seeds=[0]) == \
        grid.plan("/d", generators=["repeat", "motion"], control=["motion"], seeds=[0])
    sets = _sets(runs[0])
    assert sets["train.seed"] == sets["svd.seed"] == sets["data.seed"] == "3"
    assert sets["data.limit_per_class"] == "100" and sets["train3d.epochs"] == "1"
    assert sets["train.image_size"] == "32" and sets["train2d.epochs"] == "7"   # the user's -S comes last
    # --epochs2d replaces the base's value where it stands: one train2d.epochs among the overrides
    assert [o for o in runs[0].overrides if o.startswith("train2d.epochs=")] == ["train2d.epochs=5"]
    assert runs[0].dvc_args()[-5:] == ["-S", "train.image_size=32", "-S", "train2d.epochs=7", "dvc.yaml"]
    assert runs[0].dvc_args()[:5] == ["exp", "run", "--queue", "-n", "repeat-all-s3"]


def test_folds_queue_each_experiment_once_per_fold():
    runs = grid.plan("/d", generators=["repeat", "motion"], control=["repeat"], seeds=[1], folds=2)
    assert _names(runs) == ["repeat-first-s1-f0", "repeat-first-s1-f1", "repeat-all-s1-f0", "repeat-all-s1-f1",
                            "motion-first-s1-f0", "motion-first-s1-f1"]
    assert _sets(runs[3])["train2d.frames"] == "all" and _sets(runs[3])["data.fold"] == "1"
    assert all(_sets(e)["data.folds"] == "2" for e in runs)


def test_protocol_presets_name_their_runs():
    runs = grid.plan("/d", generators=["motion"], control=[], seeds=[0], preset="shift")
    assert _names(runs) == ["motion-first-shift-s0"]
    assert _sets(runs[0])["evaluate.extra_protocols"] == "[frame0,frames_mean]"
    assert _sets(runs[0])["svd.first_frame"] == "generated"
    ref = grid.plan("/d", generators=["motion"], control=["motion"], seeds=[0], preset="reference")
    assert _names(ref) == ["motion-first-reference-s0", "motion-all-reference-s0"]
    with pytest.raises(ValueError, match="unknown protocol preset"):
        grid.plan("/d", preset="nope")


def test_audit_queues_gva_reference_and_leave_one_out_per_generator_and_seed():
    runs = grid.plan("/d", audit=True, generators=["repeat", "motion"], seeds=[0, 1], loo=["geometry", "bn_drop"])
    assert _names(runs) == [f"{g}-{v}-s{s}" for s in (0, 1) for g in ("repeat", "motion")
                            for v in ("gva", "ref", "ref-no-geometry", "ref-no-bn-drop")]
    by_name = {e.name: _sets(e) for e in runs}
    ref = by_name["motion-ref-s1"]
    for key, value in overrides("reference", pretrained=False).items():
        assert ref[key] == format_value(value), key
    assert ref["inflate.source"] == "train2d"   # from scratch: no ImageNet-only knob
    loo = by_name["repeat-ref-no-geometry-s0"]
    assert loo["svd.geometry"] == "square" and loo["inflate.bn_stats"] == "drop"
    assert by_name["repeat-ref-no-bn-drop-s0"]["inflate.bn_stats"] == "copy"
    assert by_name["repeat-ref-no-bn-drop-s0"]["svd.geometry"] == "reference"
    assert by_name["repeat-gva-s0"]["train.select_on"] == "val"
    pretrained = grid.plan("/d", audit=True, generators=["repeat"], seeds=[0], loo=[], pretrained=True)
    assert _sets(pretrained[1])["inflate.source"] == "imagenet"
    with pytest.raises(ValueError, match="unknown protocol knob"):
        grid.plan("/d", audit=True, loo=["nope"])


def test_model_generators_get_their_familys_facts():
    assert grid.generator_overrides("cogvideox") == [f"svd.height={COGVIDEOX.native_size[0]}",
                                                     f"svd.width={COGVIDEOX.native_size[1]}", "svd.dtype=bf16"]
    assert grid.generator_overrides("ltx") == grid.generator_overrides("wan") == ["svd.dtype=bf16"]
    for name in ("svd", "i2vgen", "repeat", "motion", "reference", "tiny-cogvideox", "tiny-ltx"):
        assert grid.generator_overrides(name) == [], name   # the tiny builds have their own sizes
    with pytest.raises(ConfigError, match="unknown generator 'nope'"):
        grid.plan("/d", generators=["nope"])
    runs = grid.plan("/d", generators=["cogvideox"], control=[], seeds=[0], preset="reference",
                     extra=["-S", "svd.dtype=fp32"])
    sets = _sets(runs[0])
    assert (sets["svd.height"], sets["svd.width"]) == ("480", "720")   # after the protocol's 1024x576
    assert sets["svd.dtype"] == "fp32"                                  # the user's -S wins


def test_paper_plan_names_and_settings():
    runs = grid.paper_plan("/d", "/c", base=presets.load("paper"), seeds=[0, 1])
    stems = ["r1-svd", "r2-repeat", "r3-static", "r4-ref", "r5-svd-all", "r5-repeat-all"]
    assert _names(runs) == [f"{stem}-s{s}" for s in (0, 1) for stem in stems]
    by_name = {e.name: _sets(e) for e in runs}
    assert by_name["r1-svd-s1"]["train.seed"] == by_name["r1-svd-s1"]["data.seed"] == "1"
    assert by_name["r1-svd-s0"]["svd.model"] == "/c" and by_name["r1-svd-s0"]["svd.generator"] == "reference"
    r2 = by_name["r2-repeat-s0"]
    assert [r2[k] for k in ("svd.geometry", "svd.width", "svd.height", "svd.codec")] == \
        ["reference", "1024", "576", "h264"]
    assert by_name["r3-static-s0"]["svd.generator"] == "reference-static"
    r4 = by_name["r4-ref-s0"]
    assert r4["train.augment"] == "true" and r4["inflate.source"] == "imagenet" and r4["train.select_on"] == "test"
    assert r4["svd.geometry"] == "square" and r4["svd.codec"] == "none"   # already in the clips
    assert "evaluate.extra_protocols=[frame0,frames_mean]" not in runs[3].overrides
    assert by_name["r5-svd-all-s0"]["train3d.epochs"] == "1" and by_name["r1-svd-s0"]["train3d.epochs"] == "3"
    assert by_name["r5-repeat-all-s0"]["train2d.frames"] == "all"
    x = grid.paper_plan("/d", "/c", seeds=[0, 1], exploratory="store64", extra=["-S", "data.image_size=64"])
    assert _names(x) == ["x-store64-r1-svd-s0", "x-store64-r1-svd-s1"]
    assert _sets(x[0])["data.image_size"] == "64"


def test_every_planned_experiment_passes_the_config():
    params = presets.read_params()
    grid.check(grid.paper_plan("/d", "/c", base=presets.load("paper")), params)
    grid.check(grid.plan("/d", base=presets.load("grid-scratch"), audit=True, folds=3,
                         loo=list(grid.protocol.KNOB_NAMES)), params)
    bad = grid.plan("/d", seeds=[0], generators=["repeat"], control=[], extra=["-S", "train.lrr=1"])
    with pytest.raises(ConfigError, match=r"experiment repeat-first-s0: unknown key\(s\) train\.lrr"):
        grid.check(bad, params)
    with pytest.raises(ConfigError, match="data.folds must be in"):
        grid.check(grid.plan("/d", seeds=[0], folds=1000), params)
    with pytest.raises(ConfigError, match="names repeat: repeat-first-s0"):
        grid.check(grid.plan("/d", seeds=[0, 0], generators=["repeat"], control=[]), params)


# ---------------------------------------------------------------- skip-existing, queueing -------

def test_existing_names_count_finished_queued_and_running_but_not_failed():
    listed = {"abc": [("motion-ref-no-select-s0", "r1"), (None, "r2")], "def": [("repeat-x", "r3")]}
    status = [{"name": "motion-gva-s0", "status": "Running"}, {"name": "motion-ref-s0", "status": "Failed"},
              {"name": "q", "status": "Queued"}, {"name": "done", "status": "Success"},
              {"name": None, "status": "Queued"}]
    assert grid.names_from(listed, status) == {"motion-ref-no-select-s0", "repeat-x", "motion-gva-s0", "q", "done"}
    runs = grid.plan("/d", audit=True, generators=["motion"], seeds=[0], loo=["select"])
    todo, skipped = grid.pending(runs, grid.names_from(listed, status))
    assert _names(todo) == ["motion-ref-s0"] and _names(skipped) == ["motion-gva-s0", "motion-ref-no-select-s0"]


def test_existing_names_read_a_real_dvc_repository(tmp_path):
    """DVC's Python API, offline: a finished experiment and a queued one."""
    def run(*args):
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)
    run("git", "init", "-q")
    run("git", "config", "user.email", "t@t")
    run("git", "config", "user.name", "t")
    run("dvc", "init", "-q")
    (tmp_path / "params.yaml").write_text("x: 1\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  s:\n    cmd: echo hi > out.txt\n    params: [x]\n"
                                       "    outs: [out.txt]\n")
    run("git", "add", "-A")
    run("git", "commit", "-qm", "init")
    assert grid.existing_names(tmp_path) == set()
    run("dvc", "exp", "run", "-q", "-n", "done-s0", "-S", "x=2", "dvc.yaml")
    run("dvc", "exp", "run", "--queue", "-n", "queued-s0", "-S", "x=3", "dvc.yaml")
    assert grid.existing_names(tmp_path) == {"done-s0", "queued-s0"}
    assert grid.queue_busy(tmp_path)


def test_queue_skips_starts_and_waits(tmp_path, monkeypatch):
    monkeypatch.delenv("GVA_CACHE_DIR", raising=False)
    calls, lines, polls = [], [], iter([True, True, False])
    runs = grid.plan("/d", generators=["repeat"], control=["repeat"], seeds=[0])
    n = grid.queue(runs, skip_existing=True, wait=True,
                   dvc=lambda args, env: calls.append((args, env["GVA_CACHE_DIR"])),
                   existing=lambda: {"repeat-first-s0"}, busy=lambda: next(polls), sleep=lambda s: None,
                   out=lines.append)
    assert n == 1
    assert lines == ["skip repeat-first-s0 (exists)", "queue repeat-all-s0"]
    assert [c[0][:5] for c in calls] == [["exp", "run", "--queue", "-n", "repeat-all-s0"],
                                         ["queue", "start", "-j", "1"], ["queue", "status"]]
    assert {c[1] for c in calls} == {str(ROOT / "data" / ".cache")}
    calls.clear()
    grid.queue(runs, start=False, dvc=lambda args, env: calls.append(args), existing=lambda: 1 / 0)
    assert len(calls) == 2                     # --no-start; without --skip-existing nothing is read
    lines.clear()
    grid.queue(runs, dry_run=True, dvc=lambda args, env: 1 / 0, out=lines.append)
    assert lines[0].startswith("dvc exp run --queue -n repeat-first-s0 -S data.source=/d")


def test_one_worker_shares_the_checkouts_generation_cache():
    assert grid.cache_env(1, {}, Path("/w"))["GVA_CACHE_DIR"] == "/w/data/.cache"
    assert grid.cache_env(1, {"GVA_CACHE_DIR": ""}, Path("/w"))["GVA_CACHE_DIR"] == "/w/data/.cache"
    assert grid.cache_env(1, {"GVA_CACHE_DIR": "/mine"}, Path("/w"))["GVA_CACHE_DIR"] == "/mine"
    assert "GVA_CACHE_DIR" not in grid.cache_env(2, {}, Path("/w"))   # several workers: a cache each


def test_set_params_reads_every_spelling():
    assert grid.set_params(["-S", "a=1", "--set-param", "b=2", "--set-param=c=3", "-Sd=4", "--force"]) == \
        ["a=1", "b=2", "c=3", "d=4"]


# ---------------------------------------------------------------- command line -----------------

def _main(monkeypatch, argv, existing=()):
    calls = []
    monkeypatch.setattr(grid, "run_dvc", lambda args, env: calls.append(list(args)))
    monkeypatch.setattr(grid, "existing_names", lambda root=".": set(existing))
    return cli.main(argv), calls


def test_gva_grid_plans_checks_and_queues(tmp_path, monkeypatch, capsys):
    rc, calls = _main(monkeypatch, ["grid", str(tmp_path), "--generators", "repeat", "--control", "",
                                    "--seeds", "0,1", "--jobs", "2", "--skip-existing", "--", "-S", "train.lr=0.02"],
                      existing={"repeat-first-s0"})
    assert rc == 0
    assert [c[:5] for c in calls] == [["exp", "run", "--queue", "-n", "repeat-first-s1"], ["queue", "start", "-j", "2"]]
    assert f"data.source={tmp_path.resolve()}" in calls[0] and calls[0][-3:] == ["-S", "train.lr=0.02", "dvc.yaml"]
    assert capsys.readouterr().out.splitlines() == ["skip repeat-first-s0 (exists)", "queue repeat-first-s1"]
    rc, calls = _main(monkeypatch, ["grid", "paper", str(tmp_path), str(tmp_path), "--seeds", "2", "--no-start"])
    assert rc == 0 and [c[4] for c in calls] == [f"{s}-s2" for s in grid.PAPER_RUNS]


def _limits(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith("data.limit_per_class=")]


def test_an_explicit_limit_wins_over_the_base_presets(tmp_path, monkeypatch):
    """`--base offline --limit 100` queued data.limit_per_class=100 then the preset's 40: 40 won."""
    offline = presets.load("offline")
    assert "data.limit_per_class=40" in offline
    for limit, effective in ((100, "100"), (None, "null"), (grid.FROM_BASE, "40")):
        runs = grid.plan("/d", base=offline, generators=["repeat"], control=[], seeds=[0], limit=limit)
        assert _sets(runs[0])["data.limit_per_class"] == effective, limit
        assert len(_limits(runs[0].all_overrides())) == (2 if limit is grid.FROM_BASE else 1)
    # a base without a limit: as before, the given one (or null) in second place
    scratch = presets.load("grid-scratch")
    for limit, effective in ((100, "100"), (None, "null"), (grid.FROM_BASE, "null")):
        run = grid.plan("/d", base=scratch, seeds=[0], limit=limit)[0]
        assert run.overrides[1] == f"data.limit_per_class={effective}" and len(_limits(run.overrides)) == 1
    rc, calls = _main(monkeypatch, ["grid", str(tmp_path), "--base", "offline", "--limit", "100", "--generators",
                                    "repeat", "--control", "", "--seeds", "0", "--no-start"])
    assert rc == 0 and _limits(calls[0]) == ["data.limit_per_class=100"]
    rc, calls = _main(monkeypatch, ["grid", str(tmp_path), "--base", "offline", "--limit", "null", "--generators",
                                    "repeat", "--control", "", "--seeds", "0", "--no-start"])
    assert rc == 0 and _limits(calls[0]) == ["data.limit_per_class=null"]
    rc, calls = _main(monkeypatch, ["grid", str(tmp_path), "--base", "offline", "--generators", "repeat",
                                    "--control", "", "--seeds", "0", "--no-start"])
    assert rc == 0 and _limits(calls[0])[-1] == "data.limit_per_class=40"


def test_gva_grid_fails_before_queueing_anything(tmp_path, monkeypatch, capsys):
    rc, calls = _main(monkeypatch, ["grid", str(tmp_path), "--", "-S", "train.lrr=1"])
    assert rc == 2 and calls == []
    err = capsys.readouterr().err
    assert err.startswith("gva grid: error: experiment repeat-first-s0: unknown key(s) train.lrr; known: ")
    assert err.count("\n") == 1
    rc, calls = _main(monkeypatch, ["grid", str(tmp_path), "--generators", "nope"])
    assert rc == 2 and calls == [] and "unknown generator 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        cli.main(["grid", str(tmp_path / "nope")])
    assert exc.value.code == 2 and "no such data directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["grid", "paper", str(tmp_path), str(tmp_path / "nope")])
    assert "no such clips directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["grid", str(tmp_path), "--folds", "1"])
    assert "--folds must be at least 2" in capsys.readouterr().err


def test_gva_grid_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["grid", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for flag in ("--generators", "--control", "--no-first", "--seeds", "--vary-all", "--folds", "--limit",
                 "--epochs2d", "--epochs3d", "--jobs", "--no-start", "--skip-existing", "--wait", "--preset",
                 "--audit", "--loo", "--base", "--dry-run", "gva grid paper"):
        assert flag in out, flag
    assert "Stopping:" in out and "``" not in out
    with pytest.raises(SystemExit):
        cli.main(["grid", "paper", "--help"])
    out = capsys.readouterr().out
    for word in ("--seeds", "--exploratory", "--skip-existing", "--no-start", "--wait", "r5-repeat-all-s<s>"):
        assert word in out, word
