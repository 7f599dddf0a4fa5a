"""Issue 26's minor items: stale temporaries of killed stages are removed by the next run; a
train2d.frames=all that adds no frame says why."""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path

from gva.config import config_from_dict
from gva.io import atomic_path
from tests.test_generate import make_curated, one_thread  # noqa: F401  (autouse: 1 torch thread)


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
