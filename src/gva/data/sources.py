"""Where a dataset's bytes are: a local directory, a local zip, or an http(s) URL of a zip.

Only listing and reading are needed, so a directory and a zip share one small read-only
interface (:class:`Tree`), addressed by POSIX paths relative to the dataset's root; a tree can be
re-rooted at one of its folders (``tiny-imagenet-200/``, a zip's top folder).
"""

from __future__ import annotations

import io
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from gva.data.images import decode_image
from gva.errors import DatasetError
from gva.io import hash_files

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One image of the chosen classes: where it is, its class, and the split the data gives it."""

    source: str   # path inside the dataset (relative to its root, or as a CSV manifest names it)
    wnid: str     # class id: the Tiny ImageNet wnid, the class folder's name or the CSV label
    label: int    # position of the class in the chosen class list
    given: str    # "train" (the pool the val/test hold-outs come from), "val" or "test"


class Tree(ABC):
    """Read-only view of a dataset's files, addressed by POSIX paths relative to its root."""

    name: str   # for messages: the directory, or the zip plus the folder inside it

    @abstractmethod
    def read(self, rel: str) -> bytes: ...
    @abstractmethod
    def is_file(self, rel: str) -> bool: ...
    @abstractmethod
    def is_dir(self, rel: str) -> bool: ...
    @abstractmethod
    def listdir(self, rel: str) -> list[str]: ...
    @abstractmethod
    def walk(self, rel: str) -> list[str]: ...
    @abstractmethod
    def sub(self, folder: str) -> Tree: ...

    def where(self, rel: str) -> str:
        """``rel`` as a user finds it: a path on disk, or the zip's path plus the member's."""
        return f"{self.name}/{rel}"


class DirTree(Tree):
    def __init__(self, root: Path):
        self.root, self.name = Path(root), str(root)

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def is_file(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def is_dir(self, rel: str) -> bool:
        return (self.root / rel).is_dir()

    def listdir(self, rel: str) -> list[str]:
        return sorted(p.name for p in (self.root / rel).iterdir())

    def walk(self, rel: str) -> list[str]:
        """Every file under ``rel`` (recursively, links to files included), as paths relative to
        ``rel``, sorted."""
        top = self.root / rel
        out = []
        for folder, _dirs, files in os.walk(top):
            base = Path(folder).relative_to(top).as_posix()
            out += [f if base == "." else f"{base}/{f}" for f in files]
        return sorted(out)

    def sub(self, folder: str) -> DirTree:
        return DirTree(self.root / folder) if folder.strip("/") else self

    def where(self, rel: str) -> str:
        return str(self.root / rel)


class ZipTree(Tree):
    def __init__(self, path: Path, prefix: str = "", _names: list[str] | None = None):
        self.path, self.prefix = Path(path), prefix
        self.zf = zipfile.ZipFile(path)
        self.name = f"{path}/{prefix.rstrip('/')}" if prefix else str(path)
        names = self.zf.namelist() if _names is None else _names
        self._names = names
        self.files = {n[len(prefix):] for n in names if n.startswith(prefix) and not n.endswith("/")}
        self.dirs = {str(p) for f in self.files for p in PurePosixPath(f).parents if str(p) != "."}
        self.dirs |= {n[len(prefix):].rstrip("/") for n in names
                      if n.startswith(prefix) and n.endswith("/") and n != prefix}

    def read(self, rel: str) -> bytes:
        return self.zf.read(self.prefix + rel)

    def is_file(self, rel: str) -> bool:
        return rel in self.files

    def is_dir(self, rel: str) -> bool:
        return rel.rstrip("/") in self.dirs or rel.strip("/") == ""

    def listdir(self, rel: str) -> list[str]:
        rel = rel.strip("/")
        start = rel + "/" if rel else ""
        return sorted({f[len(start):].split("/")[0] for f in self.files | self.dirs
                       if f.startswith(start) and f != rel})

    def walk(self, rel: str) -> list[str]:
        start = rel.strip("/") + "/" if rel.strip("/") else ""
        return sorted(f[len(start):] for f in self.files if f.startswith(start))

    def sub(self, folder: str) -> ZipTree:
        folder = folder.strip("/")
        return ZipTree(self.path, f"{self.prefix}{folder}/", self._names) if folder else self


def download(url: str, dest_dir: Path, md5: str | None) -> Path:
    """Download ``url`` into ``dest_dir`` once (kept out of git), verifying ``md5`` if given."""
    dest = dest_dir / PurePosixPath(url.split("?")[0]).name
    if dest.is_file() and (md5 is None or hash_files(dest) == md5):
        return dest
    dest_dir.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    log.info("downloading %s -> %s", url, dest)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise DatasetError(f"{url}: cannot download ({exc}); offline, point data.source "
                           "at a local copy (directory or zip)") from None
    if md5 is not None and (got := hash_files(tmp)) != md5:
        tmp.unlink()
        raise DatasetError(f"{url}: checksum mismatch (md5 {got}, expected {md5}); download is corrupt")
    tmp.replace(dest)
    return dest


def is_url(source: str) -> bool:
    return re.match(r"^https?://", source) is not None


def local_path(source: str, download_dir: Path, md5: str | None = None) -> Path:
    """The local file or directory behind ``source`` (a URL is downloaded first); it must exist."""
    path = download(source, download_dir, md5) if is_url(source) else Path(source)
    if not path.exists():
        raise DatasetError(f"{source}: data source not found (expected a dataset directory, a zip, "
                           "a .csv manifest or an http(s) URL of a zip)")
    return path


def open_source(source: str, download_dir: Path, md5: str | None = None) -> Tree:
    """Open a directory, a zip or a URL of a zip as a :class:`Tree` rooted where the source starts."""
    path = local_path(source, download_dir, md5)
    if path.is_dir():
        return DirTree(path)
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not a directory or a zip file (nor a .csv manifest)")
    return ZipTree(path)


def wrapper_folder(tree: Tree) -> str | None:
    """The only visible folder at the top of ``tree`` (a zip's ``mydata/``), ignoring hidden entries
    and macOS' ``__MACOSX``; None if there are none or several."""
    dirs = [e for e in tree.listdir("") if not e.startswith(".") and e != "__MACOSX" and tree.is_dir(e)]
    return dirs[0] if len(dirs) == 1 else None


class Dataset:
    """What every dataset format (Tiny ImageNet, ImageFolder, CSV) shares: its tree, chosen classes,
    counts of skipped files, where each held-out split came from, and decoding one item."""

    format: str
    tree: Tree
    classes: list[str]
    class_names: list[str]

    def __init__(self) -> None:
        self.skipped: dict[str, int] = {}
        self.split_sources: dict[str, str] = {}

    def _skip(self, what: str, n: int) -> None:
        if n:
            self.skipped[what] = self.skipped.get(what, 0) + n
            log.warning("skipped %d %s", n, what)

    def load(self, item: Item, size: int, resize: str = "center_crop") -> np.ndarray:
        """Decode one image to uint8 RGB [size,size,3]; a corrupt file raises naming it."""
        return load_item(self.tree, item, size, resize)


def load_item(tree: Tree, item: Item, size: int, resize: str) -> np.ndarray:
    """Decode ``item`` of ``tree`` by gva.data.images' policy; a corrupt file raises naming it."""
    try:
        data = tree.read(item.source)
    except OSError as exc:
        raise DatasetError(f"{tree.where(item.source)}: cannot read ({exc.strerror or exc})") from None
    try:
        return decode_image(io.BytesIO(data), size, resize)
    except ValueError as exc:
        detail = re.sub(r"^not a readable image \((.*)\)$", r"\1", str(exc))
        raise DatasetError(f"{tree.where(item.source)}: corrupt or unreadable image ({detail})") from None
