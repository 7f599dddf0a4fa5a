"""The DVC pipeline as a user drives it: `dvc repro` in a fresh repo, on a tiny dataset."""

from __future__ import annotations

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
    sh(["git", "init", "-q"], repo)
    sh(["dvc", "init", "-q"], repo)
    sh(["dvc", "config", "core.analytics", "false"], repo)
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
