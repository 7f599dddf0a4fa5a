"""``gva svd_generate``: curated images -> ``data/clips`` (clips.npy, index.csv, generation.json,
previews/) and the run's facts -> ``metrics/svd_generate.json``.

Reads only ``cfg.svd`` and the curated store. Work is committed chunk by chunk to
``<cache_root>/svd/<key>/`` (see :mod:`gva.generate.runner`), where ``key`` hashes everything that
changes clip bytes: the generator's settings, the curated content, gva's generation code and the
library versions (:mod:`gva.generate.provenance`). The outputs are then assembled from the cache,
so a killed or ``dvc repro``-restarted run resumes and a run with unchanged settings only
re-assembles.

Everything in ``data/clips`` is a function of what changes the clips: ``generation.json`` holds
content facts only (generator, settings, resolved generator, key, provenance), so a run knob such
as ``svd.batch_size`` leaves ``data/clips`` byte-identical and the stages after it untouched.
Run facts (time, images/s, generated / resumed counts, processes, batch size, device name,
cache directory) go to the run file, ``metrics/svd_generate.json``, which no stage reads.

Scale-out: with ``svd.processes`` = N, ``gva svd_generate`` runs under a launcher (``torchrun
--standalone --nproc-per-node N -m gva.cli svd_generate``, or across machines with ``--nnodes``).
Every rank generates its shard of the missing chunks (:func:`gva.generate.runner.run_chunks`);
rank 0 alone writes ``data/clips`` and the run file, byte-identical to a one-process run.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from gva import distributed
from gva.config import Config
from gva.data.arrays import SPLITS, IndexRow, open_images, write_index
from gva.device import device_name
from gva.errors import GenerationError, StoreError
from gva.generate.base import SEED_RULE, image_seed
from gva.generate.factory import cache_settings, class_of, code_files_of, resolve_device
from gva.generate.provenance import cache_key, key_record
from gva.generate.registry import generator_class
from gva.generate.runner import ChunkCache, GeneratorSpec, RunStats, run_chunks
from gva.io import atomic_path, hash_files, write_json
from gva.paths import CACHE_DIR, CLIPS_DIR, CURATED_DIR, GENERATION_RUN

log = logging.getLogger(__name__)

#: Splits that must not be empty: train2d/train3d train on ``train``, evaluate scores ``test``.
REQUIRED_SPLITS = ("train", "test")


def clip_key(cfg: Config, device: str, curated_hash: str) -> tuple[str, dict[str, Any]]:
    """The cache key for ``cfg.svd`` on (resolved) ``device`` and the curated data, and its record."""
    name = cfg.svd.generator
    record = key_record(cache_settings(cfg.svd, device), curated_hash, code_files_of(name), class_of(name))
    return cache_key(record), record


def clip_data_hash(images_path: Path, rows: list[IndexRow]) -> str:
    """What the clips take from the curated store: the images' bytes and, per row, the id (its
    seed) and the class (a prompt's fields) -- not the split. So changing only who is train, val
    or test (``data.seed``, ``data.val_fraction``, the folds of ``data.folds``) keeps the key and
    the cached clips are reused; the previews and generation.json are rewritten by the stage."""
    h = hashlib.blake2b(digest_size=16)
    h.update(bytes.fromhex(hash_files(images_path, algorithm="blake2b", digest_size=16)))
    h.update("\n".join(f"{r.id},{r.wnid},{r.class_name},{r.label}" for r in rows).encode())
    return h.hexdigest()


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


def check_store_rows(rows: list[IndexRow], where: Path) -> None:
    """The curated rows can feed the pipeline: not empty, train and test present, unique ids."""
    if not rows:
        raise StoreError(f"{where}: the curated store is empty (0 images)")
    counts = {s: sum(r.split == s for r in rows) for s in SPLITS}
    empty = [s for s in REQUIRED_SPLITS if counts[s] == 0]
    if empty:
        raise StoreError(f"{where}: split(s) {', '.join(empty)} are empty "
                         f"(counts: {', '.join(f'{k}={v}' for k, v in counts.items())})")
    ids = [r.id for r in rows]
    if len(set(ids)) != len(ids):
        raise StoreError(f"{where}: index.csv has duplicate image ids (per-image seeds need unique ids)")


def run(cfg: Config, curated_dir: str | Path = CURATED_DIR, out_dir: str | Path = CLIPS_DIR,
        cache_root: str | Path = CACHE_DIR, run_file: str | Path = GENERATION_RUN,
        progress: bool = True) -> dict[str, Any]:
    """Generate one clip per curated image into ``out_dir`` and write the run facts to ``run_file``.

    Returns ``{"generation": <generation.json>, "run": <run file>}`` on every rank.
    """
    t_start = time.perf_counter()
    svd = cfg.svd
    generator_class(svd.generator)  # an unknown generator fails before anything is read
    device = resolve_device(svd.device)
    with distributed.session("cuda" if device.startswith("cuda") else "cpu") as dist:
        _check_processes(svd.processes, dist.world)
        return _run(cfg, Path(curated_dir), Path(out_dir), Path(cache_root), Path(run_file), progress, device,
                    dist, t_start)


def _check_processes(wanted: int, world: int) -> None:
    """The clips do not depend on the process count, so a mismatch is only worth a warning."""
    if world == 1 and wanted > 1:
        log.warning("svd.processes is %d but this is one process outside a launcher: generating in one process "
                    "(`gva svd_generate` starts the %d processes itself)", wanted, wanted)
    elif world != wanted:
        log.warning("svd.processes is %d but the launcher started %d processes; using %d (the clips are the same)",
                    wanted, world, world)


#: How each key ingredient is named when ranks disagree on it.
_INGREDIENTS = {"settings": "the svd settings", "curated_hash": "the curated data (data/curated)",
                "generator_class": "gva's generation code", "code_hash": "gva's generation code",
                "code_files": "gva's generation code",
                "versions": "the library versions"}


def _run(cfg: Config, curated_dir: Path, out_dir: Path, cache_root: Path, run_file: Path, progress: bool,
         device: str, dist: distributed.Dist, t_start: float) -> dict[str, Any]:
    svd = cfg.svd
    try:
        store = open_images(curated_dir)
    except StoreError as exc:
        raise StoreError(f"curated store unusable: {exc}") from None
    images, rows = store.array, store.rows
    check_store_rows(rows, curated_dir)
    n, h, w, _ = images.shape

    key, record = clip_key(cfg, device, clip_data_hash(curated_dir / "images.npy", rows))
    records = dist.all_gather_object(record, "comparing the ranks' settings, data, code and libraries")
    if any(r != record for r in records):  # e.g. another node holds another params.yaml or torch
        differ = list(dict.fromkeys(name for k, name in _INGREDIENTS.items()
                                    if any(r.get(k) != record.get(k) for r in records)))
        raise GenerationError(f"ranks disagree on {', '.join(differ)} (cache keys by rank: "
                              f"{[cache_key(r) for r in records]}); every node needs the same params.yaml, "
                              "data/curated, gva code and library versions")
    cache = ChunkCache(cache_root / "svd" / key, n, (svd.frames, h, w, 3))
    if dist.is_local_main:
        write_json(cache.directory / "key.json", {"key": key, **record})
    seeds = [image_seed(svd.seed, r.id) for r in rows]
    # per-image inputs (prompts, imported clips), checked before anything is generated
    gen_cls = generator_class(svd.generator)
    inputs = gen_cls.image_inputs(svd, images, rows, cache.directory) if gen_cls.takes_inputs else None

    # several ranks on CUDA: each uses its own GPU, cuda:<local rank> (GeneratorSpec.build)
    spec = GeneratorSpec(svd, "cuda" if device.startswith("cuda") and dist.active else device, str(cache_root))
    try:
        stats = run_chunks(spec, images, seeds, cache, svd.chunk_size, progress=progress,
                           desc=f"svd_generate[{svd.generator}]", dist=dist, inputs=inputs)
    except RuntimeError as exc:  # a failed or stopped rank: say what survives
        if not dist.active:
            raise
        raise GenerationError(f"{exc}. Committed chunks in {cache.directory} are kept: re-running the stage "
                              "resumes every rank's shard") from exc
    outputs = None
    if dist.is_main:
        generation = generation_record(cfg, key, record, _description(cache, stats, spec), (n, svd.frames, h, w, 3),
                                       gen_cls.inputs_record(svd, rows, inputs) if inputs is not None else None)
        previews = _write_clips(out_dir, cache, rows, generation, svd.previews_per_class, svd.preview_fps)
        run_record = _run_record(cfg, key, cache, stats, device, previews, time.perf_counter() - t_start)
        write_json(run_file, run_record)
        log.info("svd_generate: %d clips [%s] in %.1f s total; %d generated by %d process(es) at %.2f images/s, "
                 "%d resumed from %s", n, svd.generator, run_record["total_seconds"], stats.generated,
                 stats.processes, stats.images_per_s, stats.resumed, cache.directory)
        outputs = {"generation": generation, "run": run_record}
    return dist.broadcast_object(outputs, "waiting for rank 0 to write data/clips")


def _description(cache: ChunkCache, stats: RunStats, spec: GeneratorSpec) -> dict[str, Any]:
    """The generator's description as stored with the chunks (the same whether they were generated
    now or resumed); built once if no run stored it."""
    held = cache.read_description()
    if held is None:
        description = stats.generator
        if description is None:  # every chunk resumed from a cache without generator.json
            log.info("building the generator once to describe it (%s has no generator.json)", cache.directory)
            spec.prepare()
            description = spec.build().describe()
        cache.write_description(description)
        held = cache.read_description()
        assert held is not None  # just written
    return held


def generation_record(cfg: Config, key: str, record: dict[str, Any], description: dict[str, Any],
                      shape: tuple[int, ...], inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """generation.json: content facts only, each a function of what changes the clips.

    ``inputs``: the generator's :meth:`~gva.generate.base.Generator.inputs_record`, merged in
    (text-conditioned generators: ``prompts``, the templates and the distinct prompts used per
    split; the reference importer: ``reference``, how every clip was matched).

    ``record`` is the key's :func:`~gva.generate.provenance.key_record`: the chunks under ``key``
    were all made under its code and library versions, so they are the clips' provenance.
    """
    return {
        "generator": cfg.svd.generator,
        "cache_key": key,
        "clip_settings": record["settings"],
        "resolved": description,
        "curated_hash": record["curated_hash"],
        "shape": list(shape),
        "images": shape[0],
        "frames": shape[1],
        "seed_rule": SEED_RULE,
        "prompts": None,
        **(inputs or {}),
        "provenance": {"generator_class": record["generator_class"], "code_hash": record["code_hash"],
                       "code_files": record["code_files"], "versions": record["versions"]},
    }


def _write_clips(out_dir: Path, cache: ChunkCache, rows: list[IndexRow], generation: dict[str, Any],
                 previews_per_class: int, preview_fps: int) -> list[str]:
    """data/clips appears whole (clips, index, previews, record) or not at all; returns the preview names."""
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        cache.assemble(tmp / "clips.npy")
        write_index(tmp / "index.csv", rows)
        clips = np.load(tmp / "clips.npy", mmap_mode="r")
        previews = write_previews(tmp / "previews", clips, rows, previews_per_class, preview_fps)
        del clips  # close the memory map before atomic_path renames the directory (Windows refuses otherwise)
        write_json(tmp / "generation.json", generation)
    return previews


def _run_record(cfg: Config, key: str, cache: ChunkCache, stats: RunStats, device: str, previews: list[str],
                total_s: float) -> dict[str, Any]:
    """The run file: how this run went (nothing in it changes the clips; no stage reads it)."""
    svd = cfg.svd
    return {
        "generator": svd.generator,
        "cache_key": key,
        "cache_dir": str(cache.directory),
        "device": device,
        "device_name": device_name(device),
        "processes": stats.processes,
        "batch_size": svd.batch_size,
        "chunk_size": svd.chunk_size,
        "images": stats.n,
        "generated_images": stats.generated,
        "resumed_images": stats.resumed,
        "received_images": stats.received,
        "generation_seconds": round(stats.seconds, 3),
        "images_per_s": round(stats.images_per_s, 4),
        "total_seconds": round(total_s, 3),
        "previews": previews,
    }
