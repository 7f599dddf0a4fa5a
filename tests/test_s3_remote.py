"""A team's shared DVC remote on S3: generate once, push with the run-cache, reuse everywhere.

A local S3-compatible server (moto's ``ThreadedMotoServer`` on 127.0.0.1, a free port, stopped
whatever happens) holds the remote. One repo runs the whole pipeline on a tiny dataset and
``dvc push --run-cache``; fresh ``git clone``s then get everything without running any stage:
one with ``dvc pull`` + ``dvc repro`` (nothing runs), one with ``dvc repro --pull`` and no
``dvc.lock`` at all (a workspace that never recorded the run: the run-cache alone restores the
generation; nothing is generated).
Credentials are fake and live only in the subprocess environment; the endpoint is set with
``dvc remote modify --local`` (not committed, so each clone sets its own).
"""

from __future__ import annotations

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

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUCKET = "gva-team"
STAGES = ["curate", "svd_generate", "train2d", "inflate", "train3d", "evaluate"]
TINY = {
    "data.classes": FAKE_CLASSES, "data.image_size": 16,
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


def _git_commit(repo: Path, env: dict, message: str) -> None:
    _sh(["git", "add", "-A"], repo, env)
    _sh(["git", "-c", "user.email=ci@gva", "-c", "user.name=gva", "commit", "-qm", message], repo, env)


def _clone(origin: Path, dest: Path, endpoint: str, env: dict) -> Path:
    _sh(["git", "clone", "-q", str(origin), str(dest)], origin.parent, env)
    _sh(["dvc", "remote", "modify", "--local", "team", "endpointurl", endpoint], dest, env)
    return dest


def test_generation_runs_once_per_team(tmp_path, s3_endpoint):
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
    _sh(["git", "init", "-q"], repo, env)
    _sh(["dvc", "init", "-q"], repo, env)
    _sh(["dvc", "remote", "add", "-d", "team", f"s3://{BUCKET}/dvcstore"], repo, env)
    _sh(["dvc", "remote", "modify", "--local", "team", "endpointurl", s3_endpoint], repo, env)
    _git_commit(repo, env, "pipeline")

    assert _ran(_sh(["dvc", "repro"], repo, env)) == STAGES
    _git_commit(repo, env, "run")
    _sh(["dvc", "push", "--run-cache"], repo, env)
    clips = (repo / "data" / "clips" / "clips.npy").read_bytes()

    # a teammate: clone, pull, repro -> nothing runs
    a = _clone(repo, tmp_path / "teammate", s3_endpoint, env)
    _sh(["dvc", "pull"], a, env)
    out = _sh(["dvc", "repro"], a, env)
    assert _ran(out) == [] and "Data and pipelines are up to date" in out, out
    assert (a / "data" / "clips" / "clips.npy").read_bytes() == clips
    assert (a / "models" / "model3d.pt").is_file()
    assert "svd_generate" not in _sh(["dvc", "status"], a, env)

    # a workspace without dvc.lock (e.g. a branch that never recorded the run): the run-cache restores it
    b = _clone(repo, tmp_path / "other", s3_endpoint, env)
    (b / "dvc.lock").unlink()
    out = _sh(["dvc", "repro", "--pull"], b, env)
    # Generation never runs again. (The training and evaluate stages are restored only once they
    # have no `cache: false` outputs: `dvc push --run-cache` does not upload those files.)
    assert not {"curate", "svd_generate"} & set(_ran(out)), out
    assert "Stage 'svd_generate' is cached - skipping run" in out, out
    assert (b / "data" / "clips" / "clips.npy").read_bytes() == clips
    for clone in (a, b):
        assert not (clone / "data" / ".cache" / "svd").exists()  # no generation happened there
