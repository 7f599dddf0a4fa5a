"""Chunked, resumable, optionally multi-process generation into a content-keyed cache.

Clips are committed in chunks ``clips_<start>_<stop>.npy`` (rows [start, stop) of the store),
each written atomically (temp + rename), under a directory keyed by the settings that change
clip bytes and by the curated data hash. ``dvc repro`` deletes the stage outputs but not this
cache, so a run killed at any point (SIGKILL included) resumes with only the missing rows.
Chunk boundaries come from the *missing* row ranges, so changing ``chunk_size`` between runs
still reuses every committed chunk. A clip depends only on its image, seed and settings, so the
resumed result has the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import logging
import os
import queue as queue_mod
import re
import shutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from gva.config import SvdConfig
from gva.io import atomic_path

log = logging.getLogger(__name__)

_CHUNK_RE = re.compile(r"^clips_(\d+)_(\d+)\.npy$")
_STALE_TMP_S = 600  # atomic_path temporaries older than this are left-overs of a killed run


class ChunkCache:
    """Committed chunks of one (settings, data) key; ``clip_shape`` is (T,H,W,3)."""

    def __init__(self, directory: str | Path, n: int, clip_shape: tuple[int, ...]):
        self.directory = Path(directory)
        self.n = n
        self.clip_shape = tuple(clip_shape)
        self.directory.mkdir(parents=True, exist_ok=True)

    def chunk_path(self, start: int, stop: int) -> Path:
        return self.directory / f"clips_{start:09d}_{stop:09d}.npy"

    def committed(self) -> list[tuple[int, int, Path]]:
        """Valid committed chunks, sorted by start; unreadable or mis-shaped files are ignored."""
        out = []
        for p in self.directory.iterdir():
            m = _CHUNK_RE.match(p.name)
            if not m:
                continue
            start, stop = int(m.group(1)), int(m.group(2))
            if not (0 <= start < stop <= self.n):
                continue
            try:
                arr = np.load(p, mmap_mode="r")  # reads the header only
            except (ValueError, OSError):
                log.warning("ignoring unreadable chunk %s", p)
                continue
            if arr.dtype != np.uint8 or arr.shape != (stop - start,) + self.clip_shape:
                log.warning("ignoring chunk %s with shape %s", p, arr.shape)
                continue
            out.append((start, stop, p))
        return sorted(out)

    def covered(self) -> np.ndarray:
        mask = np.zeros(self.n, dtype=bool)
        for start, stop, _ in self.committed():
            mask[start:stop] = True
        return mask

    def missing(self, chunk_size: int) -> list[tuple[int, int]]:
        """Rows not yet committed, as [start, stop) ranges of at most ``chunk_size`` rows."""
        mask = self.covered()
        chunks, i = [], 0
        while i < self.n:
            if mask[i]:
                i += 1
                continue
            j = i
            while j < self.n and not mask[j] and j - i < chunk_size:
                j += 1
            chunks.append((i, j))
            i = j
        return chunks

    def commit(self, start: int, stop: int, clips: np.ndarray) -> None:
        if clips.dtype != np.uint8 or clips.shape != (stop - start,) + self.clip_shape:
            raise RuntimeError(f"generator returned {clips.dtype} {clips.shape} for rows [{start},{stop}), "
                               f"expected uint8 {(stop - start,) + self.clip_shape}")
        with atomic_path(self.chunk_path(start, stop)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, clips)
                f.flush()
                os.fsync(f.fileno())

    def remove_stale_temporaries(self, max_age_s: float = _STALE_TMP_S) -> int:
        """Delete atomic_path temporaries a killed run left behind (old enough not to be in use)."""
        removed, now = 0, time.time()
        for p in self.directory.glob(".*.tmp"):
            try:
                if now - p.stat().st_mtime > max_age_s:
                    shutil.rmtree(p, ignore_errors=True)
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    def assemble(self, path: str | Path) -> None:
        """Write all N clips, in row order, to ``path`` (.npy, memory-mappable), atomically."""
        chunks = self.committed()
        mask = np.zeros(self.n, dtype=bool)
        with atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(self.n,) + self.clip_shape)
            for start, stop, p in chunks:
                todo = ~mask[start:stop]
                if todo.any():
                    arr = np.load(p, mmap_mode="r")
                    out[start:stop][todo] = arr[todo]
                    mask[start:stop] = True
            if not mask.all():
                raise RuntimeError(f"{self.directory}: {int((~mask).sum())} rows have no committed chunk")
            out.flush()
            del out


@dataclass(frozen=True)
class GeneratorSpec:
    """How to build the generator: picklable, so worker processes build their own."""

    svd: SvdConfig
    device: str
    cache_root: str = "data/.cache"

    def prepare(self) -> None:
        """One-time work before workers start (building the tiny-svd directory)."""
        if self.svd.generator == "tiny-svd":
            from gva.generate.svd import is_model_dir, tiny_model_dir

            if not is_model_dir(self.svd.model):
                tiny_model_dir(self.cache_root)

    def build(self, rank: int = 0, world: int = 1):
        from gva.generate.base import build_generator

        device = self.device
        if world > 1 and device == "cuda":
            import torch

            device = f"cuda:{rank % max(torch.cuda.device_count(), 1)}"  # spread workers over GPUs
        return build_generator(self.svd, device=device, cache_root=self.cache_root)


@dataclass
class RunStats:
    n: int
    generated: int = 0
    resumed: int = 0
    seconds: float = 0.0
    generator: Optional[dict] = None
    chunks: list = field(default_factory=list)
    started: float = 0.0  # perf_counter when generation (not model loading) began

    @property
    def images_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc=desc, disable=not enabled, dynamic_ncols=True,
                mininterval=1.0, smoothing=0.1)


def _rate(bar, done: int, started: float) -> None:
    """tqdm switches to s/img below 1 img/s; always show images/s as well."""
    elapsed = time.perf_counter() - started
    if elapsed > 0:
        bar.set_postfix_str(f"{done / elapsed:.3g} images/s", refresh=False)


def _worker(rank: int, world: int, spec: GeneratorSpec, images_path: Optional[str], images: Optional[np.ndarray],
            seeds: list[int], chunks: list[tuple[int, int]], cache_dir: str, n: int, clip_shape: tuple,
            threads: int, q) -> None:
    """Worker process: build a generator, generate and commit its share of the chunks."""
    try:
        import torch

        torch.set_num_threads(threads)
        if images is None:
            images = np.load(images_path, mmap_mode="r")
        gen = spec.build(rank, world)
        q.put(("ready", rank, gen.describe()))
        cache = ChunkCache(cache_dir, n, clip_shape)
        for start, stop in chunks:
            cache.commit(start, stop, gen.generate(np.ascontiguousarray(images[start:stop]), seeds[start:stop]))
            q.put(("done", rank, stop - start))
        q.put(("exit", rank, None))
    except (ValueError, RuntimeError, FileNotFoundError) as exc:  # bad input: the message is enough
        q.put(("error", rank, f"{type(exc).__name__}: {exc}"))
    except BaseException:  # anything else (a bug, KeyboardInterrupt): the parent gets the traceback
        q.put(("error", rank, traceback.format_exc()))


def run_chunks(spec: GeneratorSpec, images: np.ndarray, seeds: Sequence[int], cache: ChunkCache,
               chunk_size: int, processes: int = 1, progress: bool = True, generator=None,
               desc: str = "svd_generate") -> RunStats:
    """Generate every clip missing from ``cache``; return counts and timing.

    ``generator`` (optional) is an already built generator to use in-process (tests, benchmark).
    """
    n = images.shape[0]
    if len(seeds) != n:
        raise ValueError(f"got {n} images but {len(seeds)} seeds")
    cache.remove_stale_temporaries()
    todo = cache.missing(chunk_size)
    n_todo = sum(b - a for a, b in todo)
    stats = RunStats(n=n, resumed=n - n_todo, chunks=todo)
    if not todo:
        return stats
    seeds = [int(s) for s in seeds]
    world = min(processes, len(todo)) if generator is None else 1
    stats.started = time.perf_counter()
    gen = None
    if world == 1:  # load the model before the bar opens: its time is not generation time
        gen = generator if generator is not None else spec.build()
        stats.generator = gen.describe()
    with _progress(n_todo, desc, progress) as bar:
        if gen is not None:
            stats.started = time.perf_counter()
            for start, stop in todo:
                cache.commit(start, stop, gen.generate(np.ascontiguousarray(images[start:stop]), seeds[start:stop]))
                bar.update(stop - start)
                stats.generated += stop - start
                _rate(bar, stats.generated, stats.started)
        else:
            stats.generated = _run_workers(spec, images, seeds, cache, todo, world, bar, stats)
    stats.seconds = time.perf_counter() - stats.started
    return stats


def _run_workers(spec: GeneratorSpec, images: np.ndarray, seeds: list[int], cache: ChunkCache,
                 todo: list[tuple[int, int]], world: int, bar, stats: RunStats) -> int:
    import multiprocessing as mp

    spec.prepare()
    images_path = None
    filename = getattr(images, "filename", None)
    if isinstance(images, np.memmap) and filename and np.load(filename, mmap_mode="r").shape == images.shape:
        images_path, images_arg = str(filename), None  # workers map the file instead of a pickled copy
    else:
        images_arg = np.asarray(images)
    threads = max(1, (os.cpu_count() or 1) // world)
    ctx = mp.get_context("spawn")  # fork after torch init is unsafe; spawn works everywhere
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(r, world, spec, images_path, images_arg, seeds, todo[r::world],
                                                 str(cache.directory), cache.n, cache.clip_shape, threads, q),
                         daemon=True) for r in range(world)]
    for p in procs:
        p.start()
    done, exited, ready = 0, set(), 0
    try:
        while len(exited) < world:
            try:
                kind, rank, payload = q.get(timeout=1.0)
            except queue_mod.Empty:
                dead = [r for r, p in enumerate(procs) if not p.is_alive() and r not in exited]
                if dead and q.empty():
                    raise RuntimeError(f"generation worker(s) {dead} died (exit codes "
                                       f"{[procs[r].exitcode for r in dead]}); committed chunks are kept")
                continue
            if kind == "ready":
                ready += 1
                stats.generator = payload
                if ready == world:
                    stats.started = time.perf_counter()
            elif kind == "done":
                done += payload
                bar.update(payload)
                _rate(bar, done, stats.started)
            elif kind == "exit":
                exited.add(rank)
            elif kind == "error":
                raise RuntimeError(f"generation worker {rank} failed: {payload}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=10)
        q.close()
        q.join_thread()
    return done
