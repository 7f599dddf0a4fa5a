"""A team's shared DVC remote on S3, lived as a team lives it: run once, push with the run-cache,
reuse everywhere; branch, change a param, diff against main.

A local S3-compatible server (moto's ``ThreadedMotoServer`` on 127.0.0.1, a free port, stopped
whatever happens) holds the remote. One repo runs the whole pipeline on a tiny dataset, commits
it the documented way (docs/experiments.md: ``git add dvc.lock``; every output is in DVC's cache)
and ``dvc push --run-cache``. Fresh ``git clone``s then get every stage's outputs, trained models and metrics
included, byte for byte, without running any stage: one with ``dvc repro --pull``, one with
``dvc repro --pull`` and no ``dvc.lock`` at all (a workspace that never recorded the run: the
run-cache alone restores every stage). In the first clone a teammate then branches, re-runs with
one param changed, commits, and ``dvc params/metrics/plots diff main`` show exactly that change;
``gva report`` finds both revisions' predictions.csv through DVC.
Credentials are fake and live only in the subprocess environment; the endpoint is set with
``dvc remote modify --local`` (not committed, so each clone sets its own).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FAKE_CLASSES, make_tiny_imagenet
from gva.report.collect import Run, attach_predictions

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUCKET = "gva-team"
STAGES = ["curate", "svd_generate", "extra_frames", "train2d", "inflate", "train3d", "evaluate"]
# every output of the DAG: what a teammate must get byte for byte without running anything
OUTPUTS = ["data/curated/images.npy", "data/clips/clips.npy", "data/extra_frames/images.npy",
           "models/model2d.pt", "models/model3d_init.pt", "models/model3d.pt",
           "dvclive/train2d/metrics.json", "dvclive/train2d/plots/metrics/train/loss.tsv",
           "dvclive/train3d/metrics.json", "metrics/svd_generate.json", "metrics/metrics.json",
           "metrics/per_class.json", "metrics/report.json", "metrics/predictions.csv",
           "plots/confusion_3d.json", "plots/per_class.png"]
TINY = {
    "data.classes": FAKE_CLASSES, "data.image_size": 16, "data.val_fraction": 0.25,  # 1 val image per class
    "svd.generator": "motion", "svd.previews_per_class": 1, "svd.frames": 2,
    "model.arch": "timm:test_resnet", "model.pretrained": False,
    "train.image_size": 32, "train.num_workers": 0, "train.device": "cpu",
    "train2d.epochs": 1, "train2d.batch_size": 4, "train3d.epochs": 1, "train3d.batch_size": 4,
    "evaluate.bootstrap": 50, "evaluate.latency_batch_sizes": [1], "evaluate.latency_repeats": 1,
    "evaluate.latency_warmup": 0, "evaluate.device": "cpu",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint():
    """An S3 API on 127.0.0.1 with an empty bucket ``gva-team``; always stopped at the end."""
    pytest.importorskip("moto.server", reason="needs moto[server] (the test extra)")
    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    try:
        url = f"http://127.0.0.1:{server._port}"
        boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield url
    finally:
        server.stop()


def _env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "PATH": f"{BIN}{os.pathsep}{env['PATH']}", "OMP_NUM_THREADS": "1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            # never read a developer's real AWS config
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials")}


def _sh(cmd: list[str], cwd: Path, env: dict) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _ran(out: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in out]


def _git(repo: Path, env: dict, *args: str) -> str:
    return _sh(["git", "-c", "user.email=ci@gva", "-c", "user.name=gva", *args], repo, env)


def _clone(origin: Path, dest: Path, endpoint: str, env: dict) -> Path:
    _sh(["git", "clone", "-q", str(origin), str(dest)], origin.parent, env)
    _sh(["dvc", "remote", "modify", "--local", "team", "endpointurl", endpoint], dest, env)
    return dest


def _same_outputs(a: Path, b: Path) -> None:
    for f in OUTPUTS:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_a_team_shares_runs_and_diffs_branches(tmp_path, s3_endpoint):
    env = _env(tmp_path)
    data = make_tiny_imagenet(tmp_path / "tin", n_train=4, n_val=2, size=16)
    repo = tmp_path / "origin"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)  # not data.dvc: with a local data.source nothing needs it
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in {"data.source": str(data), **TINY}.items():
        section, name = key.split(".", 1)
        params[section][name] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _sh(["git", "init", "-q", "-b", "main"], repo, env)
    _sh(["dvc", "init", "-q"], repo, env)
    _sh(["dvc", "remote", "add", "-d", "team", f"s3://{BUCKET}/dvcstore"], repo, env)
    _sh(["dvc", "remote", "modify", "--local", "team", "endpointurl", s3_endpoint], repo, env)
    _git(repo, env, "add", "-A")
    _git(repo, env, "commit", "-qm", "pipeline")

    # the documented commit step (docs/experiments.md): dvc.lock is all git needs, every output is in DVC's cache
    assert _ran(_sh(["dvc", "repro"], repo, env)) == STAGES
    _git(repo, env, "add", "dvc.lock")
    _git(repo, env, "commit", "-qm", "run")
    assert _git(repo, env, "status", "--porcelain") == ""
    assert "failed to load" not in _sh(["dvc", "metrics", "diff"], repo, env)  # HEAD has the run now
    _sh(["dvc", "push", "--run-cache"], repo, env)

    # a teammate: clone, then `dvc repro --pull` -> nothing runs, every output byte for byte
    a = _clone(repo, tmp_path / "teammate", s3_endpoint, env)
    shown = json.loads(_sh(["dvc", "metrics", "show", "--json"], a, env))  # before any pull: from the remote
    assert "error" not in json.dumps(shown) and '"delta"' in json.dumps(shown), shown
    assert "failed to load" not in _sh(["dvc", "metrics", "diff"], a, env)
    out = _sh(["dvc", "repro", "--pull"], a, env)
    assert _ran(out) == [], out
    _same_outputs(repo, a)
    out = _sh(["dvc", "repro"], a, env)
    assert _ran(out) == [] and "Data and pipelines are up to date" in out, out

    # a workspace without dvc.lock (a branch that never recorded the run): the run-cache restores
    # every stage, trained models and metrics included
    b = _clone(repo, tmp_path / "other", s3_endpoint, env)
    (b / "dvc.lock").unlink()
    out = _sh(["dvc", "repro", "--pull"], b, env)
    assert _ran(out) == [], out
    for stage in STAGES:
        assert f"Stage '{stage}' is cached - skipping run" in out, (stage, out)
    _same_outputs(repo, b)
    for clone in (a, b):
        assert not (clone / "data" / ".cache" / "svd").exists()  # no generation happened there

    # the teammate branches, changes one param, re-runs, commits, and diffs against main
    _git(a, env, "checkout", "-qb", "longer-3d")
    out = _sh(["dvc", "exp", "run", "-S", "train3d.epochs=2"], a, env)
    assert _ran(out) == ["train3d", "evaluate"], out
    _git(a, env, "add", "dvc.lock", "params.yaml")
    _git(a, env, "commit", "-qm", "train3d.epochs=2")
    assert _git(a, env, "status", "--porcelain") == ""

    assert json.loads(_sh(["dvc", "params", "diff", "main", "--json"], a, env)) == {
        "params.yaml": {"train3d.epochs": {"old": 1, "new": 2, "diff": 1}}}
    text = _sh(["dvc", "metrics", "diff", "main"], a, env)
    assert "failed to load" not in text, text
    diff = json.loads(_sh(["dvc", "metrics", "diff", "main", "--json"], a, env))
    # train2d, generation and the 2-D model's scores did not change: not in the diff
    assert set(diff) <= {"metrics/metrics.json", "dvclive/train3d/metrics.json"}, diff
    assert diff["dvclive/train3d/metrics.json"]["step"] == {"old": 0, "new": 1, "diff": 1}
    new = json.loads((a / "metrics/metrics.json").read_text())
    old = json.loads((repo / "metrics/metrics.json").read_text())
    for key, change in diff.get("metrics/metrics.json", {}).items():
        assert key.startswith(("model3d.", "delta.")) or ".latency_ms." in key, key  # re-measured timings
        section, rest = key.split(".", 1)
        assert change["old"] == _get(old[section], rest) and change["new"] == _get(new[section], rest), key
    plots = _sh(["dvc", "plots", "diff", "main", "--json"], a, env)
    assert "failed to load" not in plots, plots
    plots = json.loads(plots)
    assert not plots.get("errors"), plots["errors"]
    for name in ("training_loss", "training_top1", "plots/confusion_3d.json", "plots/per_class.json"):
        assert {r for spec in plots["data"][name] for r in spec["revisions"]} == {"main", "workspace"}, name
    _sh(["dvc", "plots", "diff", "main", "-o", str(tmp_path / "dvc_plots")], a, env)
    assert (tmp_path / "dvc_plots" / "index.html").stat().st_size > 0

    # gva report's paired comparisons read each revision's predictions.csv (in DVC's cache, not git)
    revs = [_git(a, env, "rev-parse", rev).strip() for rev in ("main", "longer-3d")]
    import dvc.api

    # each file must reproduce its run's metrics (gva.report.collect.check_predictions)
    metrics = [json.loads(dvc.api.read("metrics/metrics.json", repo=str(a), rev=rev)) for rev in revs]
    runs, notes = attach_predictions([Run(rev, {}, m, rev) for rev, m in zip(revs, metrics)], a)
    assert notes == [], notes
    rows = (a / "metrics/predictions.csv").read_text().count("\n") - 1
    assert [len(r.predictions["id"]) for r in runs] == [rows, rows]


def _get(obj: dict, dotted: str):
    """``obj["a"]["b"]`` for ``"a.b"``; DVC flattens nested metrics with dots."""
    for part in dotted.split("."):
        obj = obj[part]
    return obj
