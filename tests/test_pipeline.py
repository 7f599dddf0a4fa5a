"""The DVC pipeline as a user drives it: `dvc repro` in a fresh repo, on a tiny dataset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import FAKE_CLASSES, make_tiny_imagenet
from gva.data.arrays import open_images

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def sh(cmd: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def make_repo(tmp_path: Path, overrides: dict) -> Path:
    """A fresh git+DVC repo holding this project's pipeline files and params with ``overrides``."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", "data.dvc", ".dvcignore"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in overrides.items():
        section, name = key.split(".", 1)
        params[section][name] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    sh(["git", "init", "-q"], repo)
    sh(["dvc", "init", "-q"], repo)
    sh(["dvc", "config", "core.analytics", "false"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.email=ci@gva", "-c", "user.name=gva", "commit", "-qm", "base"], repo)  # dvclive wants a commit
    return repo


def test_repro_curate_then_nothing_to_do(tmp_path):
    data = make_tiny_imagenet(tmp_path / "tin", n_train=6, n_val=2)
    repo = make_repo(tmp_path, {"data.source": str(data), "data.classes": FAKE_CLASSES})
    out = sh(["dvc", "repro", "curate"], repo)
    assert "Running stage 'curate'" in out
    store = open_images(repo / "data" / "curated")
    assert len(store.rows) == 3 * 8
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert lock["stages"]["curate"]["deps"][0]["path"] == str(data)  # the raw data's hash is recorded
    again = sh(["dvc", "repro", "curate"], repo)
    assert "Running stage" not in again and "didn't change" in again


def test_dvc_config_is_quiet():
    cfg = (ROOT / ".dvc" / "config").read_text()
    assert "analytics = false" in cfg and "check_update = false" in cfg


TINY_RUN = {
    "data.classes": FAKE_CLASSES, "data.image_size": 32,
    "svd.generator": "motion", "svd.previews_per_class": 1,
    "model.arch": "timm:test_resnet", "model.pretrained": False,
    "train.image_size": 32, "train.lr": 0.05, "train.num_workers": 0,
    "train2d.epochs": 2, "train2d.batch_size": 8, "train3d.epochs": 1, "train3d.batch_size": 4,
    "evaluate.bootstrap": 200, "evaluate.latency_batch_sizes": [1, 4], "evaluate.latency_repeats": 3,
}
STAGES = ["curate", "svd_generate", "extra_frames", "train2d", "inflate", "train3d", "evaluate"]


def ran(out: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in out]


@pytest.mark.slow
def test_whole_dag_with_dvc_repro_and_experiments(tmp_path):
    """The DAG end to end; re-runs touch only what a change affects; metrics are readable."""
    data = make_tiny_imagenet(tmp_path / "tin", n_train=8, n_val=3)
    repo = make_repo(tmp_path, {"data.source": str(data), **TINY_RUN})
    assert ran(sh(["dvc", "repro", "dvc.yaml"], repo)) == STAGES
    for f in ("data/clips/clips.npy", "models/model2d.pt", "models/model3d_init.pt", "models/model3d.pt",
              "metrics/metrics.json", "plots/confusion_3d.png", "dvclive/train3d/metrics.json"):
        assert (repo / f).is_file(), f
    assert list((repo / "data/clips/previews").glob("*.mp4"))
    assert ran(sh(["dvc", "repro", "dvc.yaml"], repo)) == []

    metrics = json.loads(sh(["dvc", "metrics", "show", "--json"], repo))
    flat = json.dumps(metrics)
    for name in ('"model2d"', '"model3d"', '"delta"', '"top1"', '"mcnemar_p"'):
        assert name in flat

    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.email=ci@gva", "-c", "user.name=gva", "commit", "-qm", "run"], repo)
    # a training knob re-runs that stage and what follows, nothing before it
    out = sh(["dvc", "exp", "run", "-S", "train3d.epochs=2", "dvc.yaml"], repo)
    assert ran(out) == ["train3d", "evaluate"]
    # a generation knob re-runs generation and what reads clips; the 2-D baseline stays (frames: first)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["svd"]["seed"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = json.loads(sh(["dvc", "status", "--json", "dvc.yaml"], repo))
    assert set(status) == {"svd_generate"}, status   # train2d and inflate are up to date
    sh(["git", "checkout", "params.yaml"], repo)
    out = sh(["dvc", "exp", "run", "-S", "svd.seed=1", "dvc.yaml"], repo)
    assert ran(out) == ["svd_generate", "extra_frames", "train3d", "evaluate"]
    exps = sh(["dvc", "exp", "show", "--json"], repo)
    assert "svd.seed" in exps or '"seed": 1' in exps
    # run knobs that leave the clips' bytes alone re-run generation (it resumes) and nothing after it
    out = sh(["dvc", "exp", "run", "-S", "svd.batch_size=2", "-S", "svd.chunk_size=3",
              "-S", "svd.previews_per_class=2", "dvc.yaml"], repo)
    assert ran(out) == ["svd_generate"], out
