"""Chunked, resumable generation into a content-keyed cache, sharded over ``torchrun`` ranks.

Clips are committed in chunks ``clips_<start>_<stop>.npy`` (rows [start, stop) of the store),
each written atomically (temp + rename), under a directory keyed by everything that changes clip
bytes (settings, curated data, code, library versions: :mod:`gva.generate.provenance`). Each
chunk's content hash is recorded beside it (``<chunk>.blake2b``, written before the chunk is
renamed into place) and checked once per run before the chunk is used: a chunk whose bytes no
longer match (a damaged disk, an edit), or that has no recorded hash, is deleted and regenerated,
with a warning naming it.
``dvc repro`` deletes the stage outputs but not this cache, so a run killed at any point
(SIGKILL included) resumes with only the missing rows.
Chunk boundaries come from the *missing* row ranges, so changing ``chunk_size`` between runs
still reuses every committed chunk. A clip depends only on its image, seed and settings, so the
resumed result has the same bytes as an uninterrupted run.

Under a launcher (``torchrun --nproc-per-node N [--nnodes M]``, see :mod:`gva.distributed`) the
ranks agree on the missing chunks (the union of what every rank's cache holds), rank ``r`` takes
chunks ``r, r+W, r+2W ...`` and commits them to its own cache, and rank 0 then receives the
chunks its cache lacks (none when the cache is on a shared filesystem) so it can assemble the
store. Chunk boundaries and batches are those of a one-process run, so the bytes are identical;
a killed rank loses only its chunk in flight, and the next run resumes every shard.

The directory also keeps ``generator.json``, the generator's
:meth:`~gva.generate.base.Generator.describe` as stored by the first rank that built it, so a run
that resumes every chunk (and builds nothing) still records the same description.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gva.config import SvdConfig
from gva.data.arrays import open_memmap_reserved
from gva.distributed import Dist
from gva.generate import factory
from gva.generate.base import Generator, Inputs
from gva.io import atomic_path, hash_files, remove_stale_temporaries_in, write_json

log = logging.getLogger(__name__)

_CHUNK_RE = re.compile(r"^clips_(\d+)_(\d+)\.npy$")
_HASH_SUFFIX = ".blake2b"  # beside each chunk: the hex blake2b-128 of its file, recorded at commit


def _content_hash(path: Path) -> str:
    return hash_files(path, algorithm="blake2b", digest_size=16)


def missing_ranges(covered: np.ndarray, chunk_size: int) -> list[tuple[int, int]]:
    """The False runs of ``covered`` as [start, stop) ranges of at most ``chunk_size`` rows."""
    n = len(covered)
    chunks, i = [], 0
    while i < n:
        if covered[i]:
            i += 1
            continue
        j = i
        while j < n and not covered[j] and j - i < chunk_size:
            j += 1
        chunks.append((i, j))
        i = j
    return chunks


class ChunkCache:
    """Committed chunks of one (settings, data) key; ``clip_shape`` is (T,H,W,3)."""

    def __init__(self, directory: str | Path, n: int, clip_shape: tuple[int, ...]):
        self.directory = Path(directory)
        self.n = n
        self.clip_shape = tuple(clip_shape)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._verified: dict[str, tuple[int, int, int]] = {}  # chunk name -> (size, mtime, inode) hashed OK

    @property
    def description_path(self) -> Path:
        return self.directory / "generator.json"

    def read_description(self) -> dict | None:
        """The generator description stored with the chunks (None if no rank has written it yet)."""
        try:
            return json.loads(self.description_path.read_text())
        except (OSError, ValueError):
            return None

    def write_description(self, description: dict) -> None:
        """Store ``description`` unless one is there already (the first builder's is kept)."""
        held = self.read_description()
        if held is None:
            write_json(self.description_path, description)
        elif held != json.loads(json.dumps(description)):
            log.warning("generator description differs from the one stored in %s: %s vs %s",
                        self.description_path, description, held)

    def chunk_path(self, start: int, stop: int) -> Path:
        return self.directory / f"clips_{start:09d}_{stop:09d}.npy"

    def hash_path(self, chunk: Path) -> Path:
        """Where the content hash of ``chunk`` is recorded."""
        return chunk.with_name(chunk.name + _HASH_SUFFIX)

    def _intact(self, p: Path, start: int, stop: int) -> bool:
        """Whether chunk ``p``'s bytes are those recorded when it was committed; hashed once per
        instance (a run) unless the file changes. A mismatch or a missing record deletes the chunk
        (its rows are then missing and get regenerated) and says so."""
        try:
            st = p.stat()
        except FileNotFoundError:
            return False
        stamp = (st.st_size, st.st_mtime_ns, st.st_ino)
        if self._verified.get(p.name) == stamp:
            return True
        try:
            recorded = self.hash_path(p).read_text().strip()
        except (OSError, UnicodeDecodeError):
            recorded = None
        if recorded is None:
            problem = f"has no recorded content hash ({self.hash_path(p).name})"
        else:
            actual = _content_hash(p)
            if actual == recorded:
                self._verified[p.name] = stamp
                return True
            problem = f"is corrupt: its content hash {actual} differs from the {recorded} recorded at commit"
        log.warning("chunk %s %s; deleting it and regenerating rows [%d, %d)", p, problem, start, stop)
        p.unlink(missing_ok=True)
        self.hash_path(p).unlink(missing_ok=True)
        return False

    def committed(self) -> list[tuple[int, int, Path]]:
        """Valid committed chunks, sorted by start; unreadable or mis-shaped files are ignored, and a
        chunk whose content hash does not match the recorded one is deleted (:meth:`_intact`)."""
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
            del arr
            if not self._intact(p, start, stop):
                continue
            out.append((start, stop, p))
        return sorted(out)

    def covered(self) -> np.ndarray:
        mask = np.zeros(self.n, dtype=bool)
        for start, stop, _ in self.committed():
            mask[start:stop] = True
        return mask

    def commit(self, start: int, stop: int, clips: np.ndarray) -> None:
        if clips.dtype != np.uint8 or clips.shape != (stop - start,) + self.clip_shape:
            raise RuntimeError(f"generator returned {clips.dtype} {clips.shape} for rows [{start},{stop}), "
                               f"expected uint8 {(stop - start,) + self.clip_shape}")
        path = self.chunk_path(start, stop)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, clips)
                f.flush()
                os.fsync(f.fileno())
            # the hash is recorded before the chunk is renamed into place: every committed chunk has one
            with atomic_path(self.hash_path(path)) as hash_tmp:
                hash_tmp.write_text(_content_hash(tmp) + "\n")
        st = path.stat()  # hashed just now: not again in this run
        self._verified[path.name] = (st.st_size, st.st_mtime_ns, st.st_ino)

    def remove_stale_temporaries(self) -> int:
        """Delete the atomic_path temporaries killed runs left behind: those no live process holds
        (:func:`gva.io.remove_stale_temporaries_in`), so a concurrent run's chunk in flight (another
        rank, another experiment sharing ``GVA_CACHE_DIR``) is never removed, however long it takes."""
        return remove_stale_temporaries_in(self.directory)

    def assemble(self, path: str | Path) -> None:
        """Write all N clips, in row order, to ``path`` (.npy, memory-mappable), atomically."""
        chunks = self.committed()
        mask = np.zeros(self.n, dtype=bool)
        with atomic_path(path) as tmp:
            out = open_memmap_reserved(tmp, (self.n,) + self.clip_shape)   # a full disk: ENOSPC, not SIGBUS
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
    """How to build the generator; every rank builds its own."""

    svd: SvdConfig
    device: str
    cache_root: str = "data/.cache"

    def prepare(self) -> None:
        """The generator's one-time work before the ranks load it (:meth:`Generator.prepare`)."""
        factory.prepare(self.svd, self.cache_root)

    def build(self, local_rank: int = 0, world: int = 1) -> Generator:
        """The generator; with several ranks on CUDA, rank -> ``cuda:<local rank>``."""
        device = self.device
        if world > 1 and device == "cuda":
            device = f"cuda:{local_rank}"
        return factory.build_generator(self.svd, device=device, cache_root=self.cache_root)


@dataclass
class RunStats:
    n: int
    generated: int = 0
    resumed: int = 0
    seconds: float = 0.0
    generator: dict | None = None  # the generator's describe() (built here or read from the cache)
    chunks: list = field(default_factory=list)
    started: float = 0.0  # perf_counter when generation (not model loading) began
    processes: int = 1
    received: int = 0      # rows rank 0 received from other ranks' caches (not on a shared filesystem)

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


def run_chunks(spec: GeneratorSpec, images: np.ndarray, seeds: Sequence[int], cache: ChunkCache,
               chunk_size: int, progress: bool = True, generator=None, desc: str = "svd_generate",
               dist: Dist | None = None, inputs: Inputs = None) -> RunStats:
    """Generate every clip missing from ``cache`` (this rank's shard of them); return counts and timing.

    ``generator`` (optional) is an already built generator to use (tests, benchmark). ``dist`` is
    the process group (None: one process). ``inputs``: one per image for a generator that takes
    them (:meth:`~gva.generate.base.Generator.image_inputs`), else None. On return rank 0's cache holds every row; the counts
    in the returned stats are totals over the ranks (on rank 0), and ``stats.generator`` is the
    generator's description (None only if no rank built it and no cache holds it).
    """
    dist = dist or Dist()
    n = images.shape[0]
    if len(seeds) != n:
        raise ValueError(f"got {n} images but {len(seeds)} seeds")
    if dist.is_local_main:
        cache.remove_stale_temporaries()
    # Agree on the work: the union of every rank's committed rows (per-node caches resume too).
    held = [(a, b) for a, b, _ in cache.committed()]
    covered = np.zeros(n, dtype=bool)
    for ranges in dist.all_gather_object(held, "agreeing on the committed chunks"):
        for a, b in ranges:
            covered[a:b] = True
    todo = missing_ranges(covered, chunk_size)
    mine = todo[dist.rank::dist.world]
    stats = RunStats(n=n, resumed=int(covered.sum()), chunks=todo, processes=dist.world)
    seeds = [int(s) for s in seeds]
    stats.started = time.perf_counter()
    if todo:
        if generator is None and dist.is_local_main:
            spec.prepare()
        dist.barrier("waiting for the model preparation")
        gen = generator
        if mine and gen is None:  # load the model before the bar opens: its time is not generation time
            gen = spec.build(dist.local_rank, dist.world)
        if gen is not None:
            stats.generator = gen.describe()
            cache.write_description(stats.generator)
        dist.barrier("waiting for every rank to load the generator")
        stats.started = time.perf_counter()
        n_mine = sum(b - a for a, b in mine)
        with _progress(n_mine, f"{desc} rank {dist.rank}/{dist.world}" if dist.active else desc,
                       progress and dist.is_main) as bar:
            for start, stop in mine:
                cache.commit(start, stop, gen.generate(np.ascontiguousarray(images[start:stop]), seeds[start:stop],
                                                       None if inputs is None else inputs[start:stop]))
                bar.update(stop - start)
                stats.generated += stop - start
                _rate(bar, stats.generated, stats.started)
    stats.generator = stats.generator or cache.read_description()
    if dist.active:
        _collect_on_rank0(cache, dist, stats)
    if dist.is_main and stats.generator is not None:
        cache.write_description(stats.generator)
    stats.seconds = time.perf_counter() - stats.started
    return stats


def _collect_on_rank0(cache: ChunkCache, dist: Dist, stats: RunStats) -> None:
    """Rank 0 gets the chunks its cache lacks from the ranks that hold them; totals the counts."""
    dist.barrier("waiting for every rank to finish its shard")  # so a shared cache is complete now
    lacking = ~cache.covered() if dist.is_main else None
    lacking = dist.broadcast_object(lacking, "finishing generation (a rank may have failed)")
    sent = []
    if lacking.any() and not dist.is_main:
        for start, stop, p in cache.committed():
            if lacking[start:stop].any():
                sent.append((start, stop, np.load(p)))
                lacking[start:stop] = False  # one copy of each row is enough
    got = dist.gather_object((stats.generated, stats.generator, sent), "collecting the chunks on rank 0")
    if not dist.is_main:
        return
    assert got is not None  # gathered on rank 0
    stats.generated = sum(g for g, _, _ in got)
    stats.generator = stats.generator or next((d for _, d, _ in got if d is not None), None)
    still = ~cache.covered()
    for _, _, chunks in got:
        for start, stop, clips in chunks:
            if still[start:stop].any():
                cache.commit(start, stop, clips)
                stats.received += int(still[start:stop].sum())
                still[start:stop] = False
    if still.any():
        raise RuntimeError(f"{cache.directory}: {int(still.sum())} rows are in no rank's cache after generation")
