"""The uint8 stores: ``images.npy`` [N,H,W,3] / ``clips.npy`` [N,T,H,W,3] plus ``index.csv``.

A store is a directory holding the array and its index, rows in the same order. Arrays are
read memory-mapped (training touches one sample at a time) and written atomically.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import mmap
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gva.errors import StoreError
from gva.io import atomic_path
from gva.paths import CLIPS_DIR, CURATED_DIR

INDEX_COLUMNS = ["id", "split", "wnid", "class_name", "label", "source"]
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class IndexRow:
    id: int
    split: str
    wnid: str
    class_name: str
    label: int
    source: str




def write_index(path: str | Path, rows: list[IndexRow]) -> None:
    """Write ``index.csv`` (columns ``INDEX_COLUMNS``) atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(INDEX_COLUMNS)
            for r in rows:
                w.writerow([r.id, r.split, r.wnid, r.class_name, r.label, r.source])


def read_index(path: str | Path) -> list[IndexRow]:
    """Read ``index.csv``; a missing column or a malformed row is a :class:`StoreError`."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: index file not found")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or list(reader.fieldnames) != INDEX_COLUMNS:
                raise StoreError(f"{path}: expected columns {','.join(INDEX_COLUMNS)}, "
                                 f"got {','.join(reader.fieldnames or [])}")
            rows = []
            for line, rec in enumerate(reader, start=2):
                try:
                    rows.append(IndexRow(int(rec["id"]), rec["split"], rec["wnid"], rec["class_name"],
                                         int(rec["label"]), rec["source"]))
                except (TypeError, ValueError) as exc:
                    raise StoreError(f"{path}:{line}: malformed row ({exc})") from None
                if rows[-1].split not in SPLITS:
                    raise StoreError(f"{path}:{line}: unknown split {rows[-1].split!r}")
    except UnicodeDecodeError as exc:
        raise StoreError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return rows


def write_array(path: str | Path, array: np.ndarray) -> None:
    """Save a uint8 array as ``.npy`` atomically."""
    if array.dtype != np.uint8:
        raise StoreError(f"{path}: refusing to write dtype {array.dtype}, stores are uint8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def open_memmap_reserved(path: str | Path, shape: tuple[int, ...]) -> np.memmap:
    """``numpy.lib.format.open_memmap(path, "w+")`` of a uint8 array, its disk blocks reserved first.

    open_memmap makes a sparse file; on a full disk, writing a page of it through the map is
    SIGBUS: the process dies (exit 135) with no message and leaves its temporaries. Reserving the
    blocks (``posix_fallocate``) turns a full disk into an ``OSError`` ENOSPC here, before any row
    is written. Where the filesystem cannot reserve, the free space is checked instead."""
    array = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=tuple(shape))
    size = os.path.getsize(path)
    try:
        fd = os.open(path, os.O_RDWR)
        try:
            os.posix_fallocate(fd, 0, size)
        finally:
            os.close(fd)
    except (OSError, AttributeError) as exc:   # AttributeError: no posix_fallocate (not POSIX)
        if isinstance(exc, OSError) and exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            del array
            raise
        if shutil.disk_usage(Path(path).parent).free < size:
            del array
            raise OSError(errno.ENOSPC, f"No space left on device ({size} bytes needed)", str(path)) from None
    return array


class RowWriter:
    """Rows of a uint8 ``.npy`` being written through a memory map (see :func:`write_array_rows`)."""

    def __init__(self, array: np.memmap, release_every: int):
        self.array: np.memmap | None = array   # None once closed
        self.shape = array.shape
        self._release_every, self._since = max(1, release_every), 0
        self._mmap = getattr(array, "_mmap", None)   # numpy's mmap object, if it exposes one
        self._base = int(array.offset) % mmap.ALLOCATIONGRANULARITY   # where row 0 starts in it
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64))
        self._released = 0   # bytes of the map already handed back

    def __setitem__(self, i: int, row: np.ndarray) -> None:
        assert self.array is not None, "the writer is closed"
        self.array[i] = row
        self._since += 1
        if self._since >= self._release_every:
            self._release(self._base + (i + 1) * self._row_bytes)

    def _release(self, end: int) -> None:
        """Hand the written pages back: they are file pages of a shared map (they stay in the page
        cache, the kernel writes them out), so the process's memory stays bounded for any N."""
        self._since = 0
        end -= end % mmap.PAGESIZE
        if self._mmap is None or not hasattr(self._mmap, "madvise") or end <= self._released:
            return
        try:
            self._mmap.madvise(mmap.MADV_DONTNEED, self._released, end - self._released)
        except (OSError, ValueError, AttributeError):   # not on this platform: memory is still reclaimable
            self._mmap = None
            return
        self._released = end


@contextlib.contextmanager
def write_array_rows(path: str | Path, shape: tuple[int, ...], release_every: int = 256) -> Iterator[RowWriter]:
    """Write a uint8 ``.npy`` of ``shape`` row by row, never holding it whole in memory.

    The rows go through ``numpy.lib.format.open_memmap`` (:func:`open_memmap_reserved`: a full
    disk is an error before the first row, never SIGBUS) on a temporary sibling of ``path``,
    renamed onto ``path`` when the block ends without an exception (removed otherwise); every
    ``release_every`` rows the written pages are dropped from the process (``MADV_DONTNEED``).
    Rows must be assigned in order (``writer[i] = row``) for memory to stay bounded.
    """
    with atomic_path(path) as tmp:
        array = open_memmap_reserved(tmp, shape)
        writer = RowWriter(array, release_every)
        try:
            yield writer
            array.flush()
        finally:
            writer.array = writer._mmap = None
            del array


def read_array(path: str | Path, ndim: int, mmap: bool = True) -> np.ndarray:
    """Open a uint8 store memory-mapped and check its rank and channel count."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: array file not found")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None)
    except EOFError:
        raise StoreError(f"{path}: empty or truncated .npy file") from None
    except (ValueError, OSError) as exc:
        raise StoreError(f"{path}: not a readable .npy file ({exc})") from None
    if arr.dtype != np.uint8 or arr.ndim != ndim or arr.shape[-1] != 3:
        raise StoreError(f"{path}: expected uint8 array of rank {ndim} with 3 channels last, "
                         f"got {arr.dtype} {arr.shape}")
    return arr


@dataclass
class Store:
    """An array and its index, read together and checked against each other."""

    array: np.ndarray
    rows: list[IndexRow]

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.rows], dtype=np.int64)

    @property
    def ids(self) -> np.ndarray:
        return np.array([r.id for r in self.rows], dtype=np.int64)

    def split_indices(self, split: str) -> np.ndarray:
        """Row positions of ``split``, in store order."""
        return np.array([i for i, r in enumerate(self.rows) if r.split == split], dtype=np.int64)

    def class_names(self) -> list[str]:
        """Class names ordered by label."""
        names: dict[int, str] = {}
        for r in self.rows:
            names.setdefault(r.label, r.class_name)
        return [names[k] for k in sorted(names)]


def open_store(directory: str | Path, array_name: str, ndim: int) -> Store:
    """Open ``directory/array_name`` with ``directory/index.csv``; row counts must agree."""
    directory = Path(directory)
    arr = read_array(directory / array_name, ndim)
    rows = read_index(directory / "index.csv")
    if len(rows) != arr.shape[0]:
        raise StoreError(f"{directory}: {array_name} has {arr.shape[0]} rows but index.csv has {len(rows)}")
    return Store(arr, rows)


def open_images(directory: str | Path = CURATED_DIR) -> Store:
    """The curated images: uint8 [N,H,W,3]."""
    return open_store(directory, "images.npy", 4)


def open_clips(directory: str | Path = CLIPS_DIR, image_size: int | None = None) -> Store:
    """The generated clips: uint8 [N,T,H,W,3], checked against the ``generation.json`` beside them
    (the shape the generator recorded) and, when given, the curated side ``image_size``."""
    directory = Path(directory)
    store = open_store(directory, "clips.npy", 5)
    shape = list(store.array.shape)
    record = directory / "generation.json"
    if record.is_file():
        try:
            recorded = json.loads(record.read_text()).get("shape")
        except (ValueError, AttributeError):
            raise StoreError(f"{record}: not a readable generation record") from None
        if recorded is not None and list(recorded) != shape:
            raise StoreError(f"{directory / 'clips.npy'}: shape {shape} differs from the {recorded} its "
                             f"generator recorded in {record.name}; regenerate the clips (dvc repro)")
    if image_size is not None and tuple(shape[2:4]) != (image_size, image_size):
        raise StoreError(f"{directory / 'clips.npy'}: frames are {shape[2]}x{shape[3]} but the curated "
                         f"images are {image_size}x{image_size}; regenerate the clips (dvc repro)")
    return store
