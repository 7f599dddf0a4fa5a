"""The bash wrappers: scripts/grid.sh and scripts/paper.sh are `gva grid [paper]`, scripts/repro.sh
--offline reads params/offline.yaml. What the grids queue is tested in tests/test_grid.py (the
plans) and tests/test_grid_equivalence.py (the scripts through a stub `dvc`, against the calls the
bash grids made)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from gva import presets

ROOT = Path(__file__).resolve().parents[1]


def _bash(*args: str, env: dict | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_missing_directories_fail_clearly(tmp_path):
    r = _bash(str(ROOT / "scripts" / "grid.sh"), str(tmp_path / "nope"), "--no-start")
    assert r.returncode == 2 and "no such data directory" in r.stderr
    r = _bash(str(ROOT / "scripts" / "paper.sh"), str(tmp_path), str(tmp_path / "nope"), "--no-start")
    assert r.returncode == 2 and "no such clips directory" in r.stderr
    r = _bash(str(ROOT / "scripts" / "grid.sh"), str(tmp_path), "--no-such-option")
    assert r.returncode == 2 and "unrecognized arguments: --no-such-option" in r.stderr


def test_repro_offline_runs_the_offline_preset(tmp_path):
    """repro.sh --offline in a copy of the repository whose .venv has a stub python (no install)
    and a recording dvc: one `dvc exp run` with data.source and params/offline.yaml's overrides."""
    for name in ("scripts", "params"):
        shutil.copytree(ROOT / name, tmp_path / name)
    shutil.copyfile(ROOT / "params.yaml", tmp_path / "params.yaml")
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    log = tmp_path / "calls"
    (venv / "python").write_text("#!/usr/bin/env bash\nexit 0\n")
    (venv / "dvc").write_text(f'#!/usr/bin/env bash\nprintf "%s\\0" "$@" >> {log}\n')
    for stub in ("python", "dvc"):
        (venv / stub).chmod(0o755)
    (venv / "gva").symlink_to(shutil.which("gva") or str(Path(sys.executable).parent / "gva"))
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / ".dvc").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    r = _bash("scripts/repro.sh", "--offline", "/some/data", "-S", "svd.generator=repeat", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    call = log.read_text().rstrip("\0").split("\0")
    assert call[:4] == ["exp", "run", "-S", "data.source=/some/data"]
    assert call[-3:] == ["-S", "svd.generator=repeat", "dvc.yaml"]   # the user's args after the preset's
    sets = [call[i + 1] for i, w in enumerate(call[:-3]) if w == "-S"]
    assert sets[1:] == presets.load(ROOT / "params" / "offline.yaml", ROOT / "params.yaml")
    # what repro.sh's offline=(...) array held at 43d505c, in its order there
    assert Counter(sets) == Counter([
        "data.source=/some/data", "data.limit_per_class=40", "svd.generator=motion",
        "model.arch=timm:tf_efficientnet_lite0", "model.pretrained=true", "model.head=imagenet",
        "train.image_size=64", "train.freeze=blocks.6", "train.lr=0.01", "train.threads=1", "inflate.threads=1",
        "evaluate.threads=1", "train2d.epochs=3", "train3d.epochs=2", "inflate.last_n=2", "evaluate.bootstrap=2000",
        "evaluate.latency_batch_sizes=[1,8]", "evaluate.latency_repeats=5"])


def test_gva_cache_dir_moves_the_cache(tmp_path):
    code = "from gva import paths; print(paths.CACHE_DIR, paths.DOWNLOAD_DIR)"
    moved = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "GVA_CACHE_DIR": str(tmp_path / "c")}).stdout.split()
    assert moved == [str(tmp_path / "c"), str(tmp_path / "c" / "downloads")]
    env = {k: v for k, v in os.environ.items() if k != "GVA_CACHE_DIR"}
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=env).stdout.split()
    assert default == ["data/.cache", "data/.cache/downloads"]
