"""``gva svd_generate``: curated images -> ``data/clips`` (clips.npy, index.csv, previews/, generation.json).

Reads only ``cfg.svd`` and the curated store. Work is committed chunk by chunk to
``<cache_root>/svd/<key>/`` (see :mod:`gva.generate.runner`), where ``key`` hashes the settings
that change clip bytes and the curated content; the outputs are then assembled from the cache,
so a killed or ``dvc repro``-restarted run resumes and a run with unchanged settings only
re-assembles.

Scale-out: run it under a launcher, ``torchrun --standalone --nproc-per-node N -m gva.cli
svd_generate`` (``svd.processes`` = N; dvc.yaml does this) or across machines with ``--nnodes``.
Every rank generates its shard of the missing chunks (:func:`gva.generate.runner.run_chunks`);
rank 0 alone writes ``data/clips``, byte-identical to a one-process run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np

from gva import distributed
from gva.config import Config, to_dict
from gva.data.arrays import SPLITS, IndexRow, StoreError, open_images, write_index
from gva.generate.base import cache_settings, image_seed, resolve_device
from gva.generate.runner import ChunkCache, GeneratorSpec, RunStats, run_chunks
from gva.io import atomic_path, hash_files, write_json
from gva.paths import CACHE_DIR, CLIPS_DIR, CURATED_DIR

log = logging.getLogger(__name__)

#: Splits that must not be empty: train2d/train3d train on ``train``, evaluate scores ``test``.
REQUIRED_SPLITS = ("train", "test")


def cache_key(settings: dict, data_hash: str) -> str:
    blob = json.dumps({"settings": settings, "data": data_hash}, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def preview_rows(rows: list[IndexRow], per_class: int) -> list[int]:
    """Row positions of the previews: per label, the first ``per_class`` rows, test split first."""
    order = {s: i for i, s in enumerate(("test", "val", "train"))}
    by_label: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_label.setdefault(r.label, []).append(i)
    picked = []
    for label in sorted(by_label):
        idx = sorted(by_label[label], key=lambda i: (order.get(rows[i].split, 3), i))
        picked.extend(idx[:per_class])
    return picked


def write_previews(directory: Path, clips: np.ndarray, rows: list[IndexRow], per_class: int, fps: int) -> list[str]:
    """Write the preview MP4s into ``directory`` (replaced as a whole, atomically)."""
    from gva.data.video import write_mp4

    names = []
    with atomic_path(directory) as tmp:
        tmp.mkdir()
        for i in preview_rows(rows, per_class):
            r = rows[i]
            name = f"{r.label:03d}_{r.wnid}_{r.split}_{r.id}.mp4"
            write_mp4(tmp / name, np.asarray(clips[i]), fps)
            names.append(name)
    return names


def library_versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("gva", "numpy", "torch", "diffusers", "transformers", "av", "pillow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def check_store_rows(rows: list[IndexRow], where: Path) -> None:
    if not rows:
        raise ValueError(f"{where}: the curated store is empty (0 images)")
    counts = {s: sum(r.split == s for r in rows) for s in SPLITS}
    empty = [s for s in REQUIRED_SPLITS if counts[s] == 0]
    if empty:
        raise ValueError(f"{where}: split(s) {', '.join(empty)} are empty "
                         f"(counts: {', '.join(f'{k}={v}' for k, v in counts.items())})")
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{where}: index.csv has duplicate image ids (per-image seeds need unique ids)")


def run(cfg: Config, curated_dir: str | Path = CURATED_DIR, out_dir: str | Path = CLIPS_DIR,
        cache_root: str | Path = CACHE_DIR, progress: bool = True) -> dict:
    """Generate one clip per curated image; returns the generation.json record (on every rank)."""
    t_start = time.perf_counter()
    svd = cfg.svd
    device = resolve_device(svd.device)
    with distributed.session("cuda" if device.startswith("cuda") else "cpu") as dist:
        _check_processes(svd.processes, dist.world)
        return _run(cfg, Path(curated_dir), Path(out_dir), Path(cache_root), progress, device, dist, t_start)


def _check_processes(wanted: int, world: int) -> None:
    """The clips do not depend on the process count, so a mismatch is only worth a warning."""
    if world == 1 and wanted > 1:
        log.warning("svd.processes is %d but gva was not started by a launcher: generating in one process "
                    "(use `torchrun --standalone --nproc-per-node %d -m gva.cli svd_generate`, as dvc.yaml does)",
                    wanted, wanted)
    elif world != wanted:
        log.warning("svd.processes is %d but the launcher started %d processes; using %d (the clips are the same)",
                    wanted, world, world)


def _run(cfg: Config, curated_dir: Path, out_dir: Path, cache_root: Path, progress: bool, device: str,
         dist: distributed.Dist, t_start: float) -> dict:
    svd = cfg.svd
    try:
        store = open_images(curated_dir)
    except StoreError as exc:
        raise ValueError(f"curated store unusable: {exc}") from None
    images, rows = store.array, store.rows
    check_store_rows(rows, curated_dir)
    n, h, w, _ = images.shape

    settings = cache_settings(svd, device)
    data_hash = hash_files(curated_dir / "images.npy", curated_dir / "index.csv", algorithm="blake2b",
                           digest_size=16)
    key = cache_key(settings, data_hash)
    keys = dist.all_gather_object(key, "comparing the ranks' settings and data")
    if len(set(keys)) > 1:  # e.g. another node holds a different data/curated or params.yaml
        raise ValueError(f"ranks disagree on the settings or the curated data (cache keys by rank: {keys}); "
                         "every node needs the same params.yaml and data/curated")
    cache = ChunkCache(cache_root / "svd" / key, n, (svd.frames, h, w, 3))
    if dist.is_local_main:
        write_json(cache.directory / "key.json", {"settings": settings, "curated_hash": data_hash})
    seeds = [image_seed(svd.seed, r.id) for r in rows]

    # several ranks on CUDA: each uses its own GPU, cuda:<local rank> (GeneratorSpec.build)
    spec = GeneratorSpec(svd, "cuda" if device.startswith("cuda") and dist.active else device, str(cache_root))
    try:
        stats = run_chunks(spec, images, seeds, cache, svd.chunk_size, progress=progress,
                           desc=f"svd_generate[{svd.generator}]", dist=dist)
    except RuntimeError as exc:  # a failed or stopped rank: say what survives
        if not dist.active:
            raise
        raise RuntimeError(f"{exc}. Committed chunks in {cache.directory} are kept: re-running the stage "
                           "resumes every rank's shard") from None
    record = _write_outputs(cfg, out_dir, cache, rows, stats, settings, data_hash, key, device, t_start, n, h, w) \
        if dist.is_main else None
    return dist.broadcast_object(record, "waiting for rank 0 to write data/clips")


def _write_outputs(cfg: Config, out_dir: Path, cache: ChunkCache, rows: list[IndexRow], stats: RunStats,
                   settings: dict, data_hash: str, key: str, device: str, t_start: float, n: int, h: int,
                   w: int) -> dict:
    svd = cfg.svd
    with atomic_path(out_dir) as tmp:  # data/clips appears whole (clips, index, previews, record) or not at all
        tmp.mkdir()
        record = _fill_outputs(cfg, tmp, cache, rows, stats, settings, data_hash, key, device, t_start, n, h, w)
    log.info("svd_generate: %d clips [%s] in %.1f s total; %d generated by %d process(es) at %.2f images/s, "
             "%d resumed from %s", n, svd.generator, record["total_seconds"], stats.generated, stats.processes,
             stats.images_per_s, stats.resumed, cache.directory)
    return record


def _fill_outputs(cfg: Config, out_dir: Path, cache: ChunkCache, rows: list[IndexRow], stats: RunStats,
                  settings: dict, data_hash: str, key: str, device: str, t_start: float, n: int, h: int,
                  w: int) -> dict:
    svd = cfg.svd
    cache.assemble(out_dir / "clips.npy")
    write_index(out_dir / "index.csv", rows)
    clips = np.load(out_dir / "clips.npy", mmap_mode="r")
    previews = write_previews(out_dir / "previews", clips, rows, svd.previews_per_class, svd.preview_fps)
    del clips  # close the memory map before atomic_path renames the directory (Windows refuses otherwise)

    total = time.perf_counter() - t_start
    record = {
        "generator": svd.generator,
        "settings": to_dict(svd),
        "resolved": {"device": device, "cache_key": key, "cache_dir": str(cache.directory),
                     "clip_settings": settings, "generator": stats.generator,
                     "seed_rule": "blake2b('gva-svd:{svd.seed}:{image id}') -> 63-bit torch/numpy seed"},
        "curated_hash": data_hash,
        "shape": [n, svd.frames, h, w, 3],
        "images": n,
        "processes": stats.processes,
        "generated_images": stats.generated,
        "resumed_images": stats.resumed,
        "received_images": stats.received,
        "generation_seconds": round(stats.seconds, 3),
        "images_per_s": round(stats.images_per_s, 4),
        "total_seconds": round(total, 3),
        "previews": previews,
        "versions": library_versions(),
    }
    write_json(out_dir / "generation.json", record)
    return record
