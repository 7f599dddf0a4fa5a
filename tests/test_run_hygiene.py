"""Issue 26's minor items: stale temporaries of killed stages are removed by the next run; a
train2d.frames=all that adds no frame says why."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

from tests.test_generate import make_curated, one_thread  # noqa: F401  (autouse: 1 torch thread)

from gva.config import config_from_dict
from gva.io import atomic_path


def test_frames_all_with_one_frame_clips_says_why_nothing_is_added(tmp_path, caplog):
    """svd.frames 1 with train2d.frames all warned "re-run extra_frames?", which cannot help."""
    from gva.data.frames import run as extra_frames
    from gva.generate.stage import run as generate
    from gva.train.stage import run_train2d

    make_curated(tmp_path / "curated", n=6, size=16)
    cfg = config_from_dict({"svd": {"generator": "repeat", "frames": 1, "previews_per_class": 0},
                            "data": {"classes": None},
                            "model": {"arch": "timm:test_resnet", "pretrained": False},
                            "train": {"image_size": 32, "num_workers": 0, "device": "cpu"},
                            "train2d": {"epochs": 1, "batch_size": 2, "frames": "all"}})
    generate(cfg, curated_dir=tmp_path / "curated", out_dir=tmp_path / "clips", cache_root=tmp_path / "cache",
             run_file=tmp_path / "run.json", progress=False)
    with caplog.at_level(logging.WARNING):
        assert extra_frames(cfg, tmp_path / "curated", tmp_path / "clips", tmp_path / "extra") == 0
        run_train2d(cfg, tmp_path / "curated", tmp_path / "extra", tmp_path / "model2d.pt", tmp_path / "live")
    text = caplog.text
    assert "the clips have 1 frame (svd.frames 1) and it is the original image" in text
    assert "re-run extra_frames" not in text and "trains on the original images alone" in text


def _temporary(parent: Path, name: str, age_s: float = 60.0) -> Path:
    """A temporary of ``parent/name`` as atomic_path makes them, ``age_s`` old, with a file in it."""
    tmp = parent / f".{name}.{os.urandom(4).hex()}.tmp"
    (tmp / name).mkdir(parents=True)
    (tmp / name / "images.npy").write_bytes(b"half-written")
    old = time.time() - age_s
    os.utime(tmp, (old, old))
    return tmp


def test_the_next_run_removes_temporaries_a_killed_run_left_but_not_a_live_runs(tmp_path):
    """Issue 26: a killed stage left data/.curated.*.tmp (or dvclive/.train2d.*.tmp) that nothing
    removed. A temporary is held (flock) by its run while it lives, so one no process holds is a
    killed run's; the next write of the same output removes it."""
    data = tmp_path / "data"
    data.mkdir()
    stale = _temporary(data, "curated")
    live = _temporary(data, "curated")
    young = _temporary(data, "curated", age_s=0)   # just made: its run may not hold it yet
    other = _temporary(data, "clips")               # another output's: not ours to judge now
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a run still writing it
    try:
        with atomic_path(data / "curated") as tmp:
            tmp.mkdir()
            (tmp / "index.csv").write_text("new\n")
    finally:
        os.close(fd)
    assert not stale.exists()
    assert live.exists() and young.exists() and other.exists()
    assert (data / "curated" / "index.csv").read_text() == "new\n"
    with atomic_path(data / "curated") as tmp:   # the live run has ended (its lock is gone)
        tmp.write_text("x")
    assert not live.exists()


def test_the_chunk_cache_removes_killed_runs_temporaries_never_a_live_runs(tmp_path):
    """svd_generate's chunk cache cleared every temporary over 10 minutes old, by age alone: a
    concurrent run's chunk in flight (another rank, another experiment sharing GVA_CACHE_DIR) was
    removed if its write took that long. Now a held temporary stays, however old."""
    from gva.generate.runner import ChunkCache

    cache = ChunkCache(tmp_path / "key", n=4, clip_shape=(2, 4, 4, 3))
    chunk = cache.chunk_path(0, 2).name
    stale = _temporary(cache.directory, chunk, age_s=3600)
    stale_hash = _temporary(cache.directory, chunk + ".blake2b", age_s=3600)
    live = _temporary(cache.directory, cache.chunk_path(2, 4).name, age_s=3600)
    young = _temporary(cache.directory, chunk, age_s=0)
    kept = cache.directory / "clips_000000000_000000002.npy"
    kept.write_bytes(b"a committed chunk")
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # a live run still writing it
    try:
        assert cache.remove_stale_temporaries() == 2
        assert not stale.exists() and not stale_hash.exists()
        assert live.exists() and young.exists() and kept.exists()
    finally:
        os.close(fd)
    assert cache.remove_stale_temporaries() == 1 and not live.exists()   # its run has ended
