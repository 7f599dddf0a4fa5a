"""Read Tiny ImageNet in its official layout from a directory, a zip file or a URL of the zip.

Official layout (possibly under one top folder such as ``tiny-imagenet-200/``)::

    wnids.txt  words.txt
    train/<wnid>/images/<wnid>_<k>.JPEG
    val/images/val_<k>.JPEG   val/val_annotations.txt   (file <TAB> wnid <TAB> box...)

Only listing and reading are needed, so a directory and a zip share one small interface.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, ImageFile

from gva.errors import DatasetError
from gva.io import hash_files

log = logging.getLogger(__name__)
ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated JPEG must raise, never decode half-grey

IMAGE_SUFFIXES = (".jpeg", ".jpg")




class _Tree:
    """Read-only view of the dataset's files, addressed by POSIX paths relative to its root."""

    name: str

    def read(self, rel: str) -> bytes: ...
    def is_file(self, rel: str) -> bool: ...
    def is_dir(self, rel: str) -> bool: ...
    def listdir(self, rel: str) -> list[str]: ...


class _DirTree(_Tree):
    def __init__(self, root: Path):
        self.root, self.name = root, str(root)

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def is_file(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def is_dir(self, rel: str) -> bool:
        return (self.root / rel).is_dir()

    def listdir(self, rel: str) -> list[str]:
        return sorted(p.name for p in (self.root / rel).iterdir())


class _ZipTree(_Tree):
    def __init__(self, path: Path, prefix: str):
        self.zf, self.prefix, self.name = zipfile.ZipFile(path), prefix, str(path)
        self.files = {n[len(prefix):] for n in self.zf.namelist() if n.startswith(prefix) and not n.endswith("/")}
        self.dirs = {str(p) for f in self.files for p in PurePosixPath(f).parents if str(p) != "."}

    def read(self, rel: str) -> bytes:
        return self.zf.read(self.prefix + rel)

    def is_file(self, rel: str) -> bool:
        return rel in self.files

    def is_dir(self, rel: str) -> bool:
        return rel in self.dirs

    def listdir(self, rel: str) -> list[str]:
        rel = rel.rstrip("/") + "/"
        return sorted({f[len(rel):].split("/")[0] for f in self.files | self.dirs if f.startswith(rel)})


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


def _find_root(entries: list[str]) -> str | None:
    """The shallowest folder holding wnids.txt, as a prefix ('' or 'tiny-imagenet-200/')."""
    hits = sorted((e for e in entries if PurePosixPath(e).name == "wnids.txt"), key=lambda e: e.count("/"))
    return hits[0][: -len("wnids.txt")] if hits else None


def open_tree(source: str, download_dir: Path, md5: str | None = None) -> _Tree:
    """Open a dataset source: an http(s) URL of the zip, a local zip, or a local directory."""
    if re.match(r"^https?://", source):
        path = download(source, download_dir, md5)
    else:
        path = Path(source)
    if not path.exists():
        raise DatasetError(f"{source}: data source not found (expected a Tiny ImageNet directory, zip or URL)")
    if path.is_dir():
        for root in (path, path / "tiny-imagenet-200"):
            if (root / "wnids.txt").is_file():
                return _DirTree(root)
        raise DatasetError(f"{path}: not Tiny ImageNet (no wnids.txt in it or in tiny-imagenet-200/)")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not a directory or a zip file")
    with zipfile.ZipFile(path) as zf:
        prefix = _find_root(zf.namelist())
    if prefix is None:
        raise DatasetError(f"{path}: not Tiny ImageNet (the zip has no wnids.txt)")
    return _ZipTree(path, prefix)


@dataclass(frozen=True)
class Item:
    """One image of the chosen classes: where it is and what it is."""

    source: str   # path inside the dataset
    wnid: str
    label: int
    official_split: str  # "train" or "val" (the official val becomes gva's test)


def _number(name: str) -> int:
    m = re.search(r"_(\d+)\.[A-Za-z]+$", name)
    return int(m.group(1)) if m else -1


class TinyImageNet:
    """The chosen classes of one Tiny ImageNet source: names, labels, and the image list."""

    def __init__(self, tree: _Tree, classes: list[str]):
        self.tree, self.classes = tree, list(classes)
        for required in ("wnids.txt", "words.txt", "val/val_annotations.txt"):
            if not tree.is_file(required):
                raise DatasetError(f"{tree.name}: not Tiny ImageNet ({required} missing)")
        wnids = tree.read("wnids.txt").decode().split()
        for wnid in classes:
            if wnid not in wnids:
                raise DatasetError(f"{tree.name}/wnids.txt: class {wnid} (in data.classes) is not listed")
        words = {}
        for line in tree.read("words.txt").decode().splitlines():
            if "\t" in line:
                wnid, text = line.split("\t", 1)
                words[wnid] = text.strip()
        self.class_names = [words.get(w, w).split(",")[0].strip() for w in classes]
        self.skipped: dict[str, int] = {}

    def items(self) -> list[Item]:
        """All images of the chosen classes in canonical order: train by class then number, then val."""
        out: list[Item] = []
        for label, wnid in enumerate(self.classes):
            folder = f"train/{wnid}/images"
            if not self.tree.is_dir(folder):
                raise DatasetError(f"{self.tree.name}/{folder}: class directory missing")
            names = self.tree.listdir(folder)
            images = [n for n in names if n.lower().endswith(IMAGE_SUFFIXES)]
            self._skip("non-image files in train/", len(names) - len(images))
            if not images:
                raise DatasetError(f"{self.tree.name}/{folder}: class {wnid} has no images")
            out += [Item(f"{folder}/{n}", wnid, label, "train") for n in sorted(images, key=_number)]
        label_of = {w: i for i, w in enumerate(self.classes)}
        val = []
        ann = "val/val_annotations.txt"
        for lineno, line in enumerate(self.tree.read(ann).decode().splitlines(), start=1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2:
                raise DatasetError(f"{self.tree.name}/{ann}:{lineno}: malformed row {line!r}")
            name, wnid = parts[0], parts[1]
            if wnid not in label_of:
                continue  # a class we did not choose
            rel = f"val/images/{name}"
            if not self.tree.is_file(rel):
                raise DatasetError(f"{self.tree.name}/{ann}:{lineno}: names {rel}, which does not exist")
            val.append(Item(rel, wnid, label_of[wnid], "val"))
        counts = {w: 0 for w in self.classes}
        for it in val:
            counts[it.wnid] += 1
        empty = [w for w, c in counts.items() if c == 0]
        if empty:
            raise DatasetError(f"{self.tree.name}/{ann}: class {empty[0]} has no val (test) images")
        out += sorted(val, key=lambda it: (it.label, _number(it.source)))
        return out

    def _skip(self, what: str, n: int) -> None:
        if n:
            self.skipped[what] = self.skipped.get(what, 0) + n
            log.warning("skipped %d %s", n, what)

    def load(self, item: Item, size: int) -> np.ndarray:
        """Decode one image to uint8 RGB [size,size,3]; a corrupt file raises naming it."""
        try:
            with Image.open(io.BytesIO(self.tree.read(item.source))) as im:
                im.load()
                rgb = im.convert("RGB")
        except Exception as exc:  # PIL raises several types for broken files
            raise DatasetError(f"{self.tree.name}/{item.source}: corrupt or unreadable image ({exc})") from None
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.Resampling.BICUBIC)
        return np.asarray(rgb, dtype=np.uint8)
