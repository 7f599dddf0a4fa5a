"""Stage ``extra_frames``: the generated train frames as extra 2-D training images (``data/extra_frames``).

``train2d.frames: all`` (the *2-D on frames* control) trains the 2-D model on every generated frame
besides the original images. This stage materialises those frames as an image store
(``images.npy`` uint8 [M,H,W,3] + ``index.csv``, each row a copy of its clip's row with ``source``
``<source>#frame<t>``), so that ``train2d`` never reads ``data/clips``. With ``train2d.frames:
first`` the store is empty, and its bytes never change: a new ``svd.*`` setting re-runs this cheap
stage, but ``train2d`` and ``inflate`` stay up to date (DVC compares the content of their deps).

Which frames: 1..T-1 of every ``train`` clip, and frame 0 only when it differs from the original
image (``svd.first_frame: generated``): with ``first_frame: original`` (and the control
generators) frame 0 *is* the image, already a sample. Frames equal to the image are kept
otherwise, so ``repeat`` with ``frames: all`` is the "more optimiser steps, no new views" control.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from gva.config import Config
from gva.data.arrays import IndexRow, Store, open_clips, open_images, open_memmap_reserved, write_index
from gva.errors import StoreError
from gva.io import atomic_path
from gva.paths import CLIPS_DIR, CURATED_DIR, EXTRA_FRAMES_DIR

log = logging.getLogger(__name__)


def frame_rows(images: Store, clips: Store, split: str = "train") -> list[tuple[int, int]]:
    """(store row, frame) of every extra frame of ``split``, in store then frame order."""
    out = []
    for i in clips.split_indices(split):
        if not np.array_equal(clips.array[i, 0], images.array[i]):
            out.append((int(i), 0))
        out.extend((int(i), t) for t in range(1, clips.array.shape[1]))
    return out


def run(cfg: Config, curated_dir: str | Path = CURATED_DIR, clips_dir: str | Path = CLIPS_DIR,
        out_dir: str | Path = EXTRA_FRAMES_DIR) -> int:
    """Write ``out_dir`` (the extra frames for ``train2d.frames: all``, else an empty store);
    returns the number of frames written."""
    curated_dir, clips_dir, out_dir = Path(curated_dir), Path(clips_dir), Path(out_dir)
    images = open_images(curated_dir)
    side = images.array.shape[1]
    picked: list[tuple[int, int]] = []
    clips = None
    if cfg.train2d.frames == "all":
        clips = open_clips(clips_dir, image_size=side)
        if [(r.id, r.split, r.label) for r in images.rows] != [(r.id, r.split, r.label) for r in clips.rows]:
            raise StoreError(f"{clips_dir}/index.csv: rows do not match {curated_dir}/index.csv "
                             "(ids, splits or labels); regenerate the clips")
        picked = frame_rows(images, clips)
        if not picked:   # no train clip, or one frame that is the image itself
            why = ("there are no train clips" if not len(clips.split_indices("train")) else
                   "the clips have 1 frame (svd.frames 1) and it is the original image (svd.first_frame: "
                   "original, or a control generator)")
            log.warning("train2d.frames is all but the clips add no training frame: %s; train2d trains on the "
                        "original images alone, as with train2d.frames: first", why)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        array = open_memmap_reserved(tmp / "images.npy", (len(picked), side, side, 3))   # ENOSPC, not SIGBUS
        rows: list[IndexRow] = []
        for k, (i, t) in enumerate(picked):  # one frame at a time: never the whole store in RAM
            assert clips is not None  # frames are picked only from clips
            array[k] = clips.array[i, t]
            r = clips.rows[i]
            rows.append(IndexRow(r.id, r.split, r.wnid, r.class_name, r.label, f"{r.source}#frame{t}"))
        array.flush()
        del array
        write_index(tmp / "index.csv", rows)
    log.info("extra_frames (train2d.frames=%s): %d generated train frames -> %s", cfg.train2d.frames,
             len(picked), out_dir)
    return len(picked)
