"""svd_generate survives SIGKILL (real subprocess) and gives the same bytes resumed, and under torchrun.

More torchrun cases (a killed rank, per-node caches, the dvc.yaml command) are in test_distributed.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml
from tests.test_generate import make_curated, one_thread  # noqa: F401  (autouse: 1 torch thread)

from gva.config import config_from_dict
from gva.data.arrays import read_index, write_array, write_index

# 32-px generation (upscaled... here downscaled from the 64-px store) keeps the subprocess quick.
TINY = {"generator": "tiny-svd", "steps": 2, "height": 32, "width": 32, "frames": 3,
        "batch_size": 1, "chunk_size": 1, "previews_per_class": 0}


def _chunks(cache_root: Path) -> list[Path]:
    return sorted(cache_root.glob("svd/*/clips_*.npy"))


def kill_after_chunks(cwd: Path, cache_root: Path, chunks: int, timeout_s: float = 150) -> None:
    """Run `gva svd_generate` in ``cwd`` as a real subprocess and SIGKILL it once ``chunks`` chunks are
    committed under ``cache_root``. The subprocess uses one torch thread, like the tests (see
    ``one_thread``), so its bytes can match an in-process run exactly."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "gva.cli", "svd_generate"], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + timeout_s
    try:
        while len(_chunks(cache_root)) < chunks:
            assert proc.poll() is None, f"generation ended before it could be killed: {proc.stderr.read()!r}"
            assert time.time() < deadline, "no chunk committed in time"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def test_resume_after_sigkill_gives_identical_bytes_and_processes_agree(tmp_path):
    from gva.generate.stage import run

    n = 6
    make_curated(tmp_path / "data" / "curated", n=n)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"svd": TINY}))
    cache_root = tmp_path / "data" / ".cache"

    # 1. `gva svd_generate` in a real subprocess, SIGKILLed once it has committed 2 chunks.
    kill_after_chunks(tmp_path, cache_root, 2)
    committed = len(_chunks(cache_root))
    assert 2 <= committed < n, committed  # really interrupted mid-way
    assert not (tmp_path / "data" / "clips" / "clips.npy").exists()
    for p in _chunks(cache_root):  # every committed chunk is whole
        assert np.load(p).shape == (1, 3, 64, 64, 3)  # clips at the store's resolution

    # 2. Resume in-process: only the missing rows are generated.
    cfg = config_from_dict({"svd": TINY})
    resumed = run(cfg, curated_dir=tmp_path / "data" / "curated", out_dir=tmp_path / "data" / "clips",
                  cache_root=cache_root, run_file=tmp_path / "metrics" / "svd_generate.json", progress=False)["run"]
    assert resumed["resumed_images"] >= committed and resumed["generated_images"] == n - resumed["resumed_images"]

    # 3. An uninterrupted run from an empty cache gives the same bytes.
    ref = run(cfg, curated_dir=tmp_path / "data" / "curated", out_dir=tmp_path / "ref",
              cache_root=tmp_path / "ref_cache", run_file=tmp_path / "ref_run.json", progress=False)["run"]
    assert ref["resumed_images"] == 0
    # every file of data/clips (generation.json included: the same key and provenance) is the same
    for name in ("clips.npy", "index.csv", "generation.json"):
        assert (tmp_path / "data" / "clips" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name

    # 4. Another batch size and a store holding only the first 3 images (same ids -> same seeds):
    #    the same clips. Float results agree to ~1e-6, so at most a rare one-level rounding
    #    difference after quantisation. (svd.processes > 1 without a launcher runs one process.)
    images = np.load(tmp_path / "data" / "curated" / "images.npy")
    rows = read_index(tmp_path / "data" / "curated" / "index.csv")
    write_array(tmp_path / "sub" / "images.npy", images[:3])
    write_index(tmp_path / "sub" / "index.csv", rows[:3])
    cfg2 = config_from_dict({"svd": {**TINY, "batch_size": 2}})
    run(cfg2, curated_dir=tmp_path / "sub", out_dir=tmp_path / "p2", cache_root=tmp_path / "p2_cache",
        run_file=tmp_path / "p2_run.json", progress=False)
    a = np.load(tmp_path / "ref" / "clips.npy")[:3].astype(int)
    b = np.load(tmp_path / "p2" / "clips.npy").astype(int)
    assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3
    assert len(list((tmp_path / "p2_cache").glob("svd/*/clips_*.npy"))) == 3


def test_motion_under_torchrun_is_bit_identical(tmp_path):
    """`torchrun --nproc-per-node 2 -m gva.cli svd_generate` (another chunk size): the same bytes."""
    from gva.generate.stage import run

    make_curated(tmp_path / "data" / "curated", n=9)
    one = config_from_dict({"svd": {"generator": "motion", "chunk_size": 2, "previews_per_class": 0}})
    run(one, curated_dir=tmp_path / "data" / "curated", out_dir=tmp_path / "a", cache_root=tmp_path / "ca",
        run_file=tmp_path / "a_run.json", progress=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"svd": {"generator": "motion", "chunk_size": 3, "processes": 2, "previews_per_class": 0}}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           "-m", "gva.cli", "svd_generate"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((tmp_path / "metrics" / "svd_generate.json").read_text())  # the run facts
    assert rec["generated_images"] == 9 and rec["processes"] == 2 and rec["chunk_size"] == 3
    for name in ("clips.npy", "index.csv", "generation.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "data" / "clips" / name).read_bytes(), name
