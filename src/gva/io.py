"""Atomic file output: everything gva writes appears whole or not at all."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:   # not POSIX: no locks, so temporaries are never judged stale
    fcntl = None  # type: ignore[assignment]  # the module or None (not POSIX)

log = logging.getLogger(__name__)


#: errno values of a full disk or quota
NO_SPACE = frozenset(e for e in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if e is not None)
#: below this many free bytes, a failed write is taken for a full disk (libraries such as torch.save
#: report it as a RuntimeError without errno)
_FULL_BELOW = 1 << 20


def _free_bytes(where: Path) -> int | None:
    try:
        return shutil.disk_usage(where).free
    except OSError:
        return None


def _hold(directory: Path) -> int | None:
    """An open descriptor holding an exclusive ``flock`` on ``directory``, or None when it is held
    already (by a live run) or cannot be locked here. The lock goes when the descriptor is closed
    or its process dies, however it dies (SIGKILL too)."""
    if fcntl is None:
        return None
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


#: An :func:`atomic_path` temporary's name: ``.<the output's name>.<8 chars>.tmp`` (tempfile.mkdtemp).
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")


def remove_stale_temporaries(path: str | Path, keep: Path | None = None) -> int:
    """Remove the :func:`atomic_path` temporaries of ``path`` that killed runs left behind: its
    siblings ``.<name>.<8 chars>.tmp`` that no live process holds (each run holds its own with a
    ``flock`` while it writes) and that are over 2 s old (one just made may not be held yet).
    Returns how many were removed; where locks are not available nothing is removed."""
    path = Path(path)
    return _remove_unheld(path.parent, path.name, keep, str(path))


def remove_stale_temporaries_in(directory: str | Path) -> int:
    """:func:`remove_stale_temporaries` for every output in ``directory``: the temporaries there
    that killed runs left (none a live run holds, however old)."""
    return _remove_unheld(Path(directory), None, None, f"outputs in {directory}")


def _remove_unheld(directory: Path, name: str | None, keep: Path | None, what: str) -> int:
    """Remove the temporaries in ``directory`` (of output ``name``; None: of any) that no live
    process holds and that are over 2 s old, ``keep`` aside."""
    try:
        entries = [e for e in os.scandir(directory)
                   if (m := _TEMPORARY.match(e.name)) and (name is None or m.group("name") == name)]
    except OSError:
        return 0
    removed, now = 0, time.time()
    for entry in entries:
        if keep is not None and entry.name == keep.name:
            continue
        try:
            if not entry.is_dir(follow_symlinks=False) or now - entry.stat(follow_symlinks=False).st_mtime < 2.0:
                continue
        except OSError:
            continue
        fd = _hold(Path(entry.path))
        if fd is None:
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
        finally:
            os.close(fd)
    if removed:
        log.info("removed %d temporary(ies) of %s that a killed run left", removed, what)
    return removed


def _final(written: object, target: Path, path: Path) -> Path | None:
    """Where ``written``, a file inside the temporary ``target``, ends up: under ``path``; None
    when it is not inside ``target`` (or not a path)."""
    if isinstance(written, (str, os.PathLike)):
        inner = Path(written)
        if inner == target or target in inner.parents:
            return path / inner.relative_to(target)
    return None


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` (file or directory); rename it onto ``path`` on success.

    On any exception the temporary is removed and ``path`` is left as it was; temporaries of
    ``path`` that killed runs left are removed first (:func:`remove_stale_temporaries`). A full disk (an
    ``OSError`` ENOSPC/EDQUOT, or any other error while under 1 MiB is free there) becomes a
    :class:`~gva.errors.NoSpaceError` naming ``path`` (for an output nested in another's temporary,
    the outer output's path: ``data/curated/images.npy``, not the temporary's).
    """
    from gva.errors import GvaError, NoSpaceError

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise NoSpaceError(path) from exc
        raise
    held = _hold(tmp)   # while this run lives, no other run's cleanup removes tmp
    target = tmp / path.name
    try:
        remove_stale_temporaries(path, keep=tmp)
        yield target
        if path.is_dir() and not path.is_symlink():
            # A directory cannot be os.replace'd onto a non-empty one. Move the old one aside (into
            # tmp, removed below) rather than delete it first: the moment with nothing at ``path``
            # shrinks to two renames, and a crash in it still leaves the old one on disk.
            os.replace(path, tmp / f"{path.name}.old")
        os.replace(target, path)
    except NoSpaceError as exc:
        final = _final(exc.filename, target, path)
        if final is None:   # another output's (written while this one was open): already named
            raise
        raise NoSpaceError(final, exc.detail) from exc
    except Exception as exc:
        if isinstance(exc, GvaError):
            raise
        if isinstance(exc, OSError) and exc.errno in NO_SPACE:
            raise NoSpaceError(_final(exc.filename, target, path) or path) from exc
        free = _free_bytes(tmp)
        if free is not None and free < _FULL_BELOW:
            raise NoSpaceError(path, f" ({free} bytes free)") from exc
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if held is not None:
            os.close(held)


def hash_files(*paths: str | Path, algorithm: str = "md5", **options: Any) -> str:
    """Hex digest of the files' bytes, concatenated in order (names excluded), read in 1 MiB blocks.

    ``options`` go to the hash constructor (e.g. ``digest_size=16`` for blake2b).
    """
    h = hashlib.new(algorithm, **options)
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def save_png(fig: Any, path: str | Path, dpi: int = 120, **savefig: Any) -> None:
    """Write a matplotlib figure as PNG, atomically, without Software/date metadata (same figure,
    same bytes)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None}, **savefig)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
