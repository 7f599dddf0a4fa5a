"""The dataset formats ``curate`` reads, and how ``data.format`` picks one (docs/data.md).

* ``tinyimagenet``: the official layout (:mod:`gva.data.tinyimagenet`).
* ``imagefolder``: ``ROOT/train/<class>/<image>`` (sub-folders of a class folder are read too),
  optionally ``ROOT/test/<class>/...`` and/or ``ROOT/val/<class>/...``. With ``test/``, it is the
  test split; with ``val/`` alone, ``val/`` is the test split (as Tiny ImageNet's official val is);
  with both, ``val/`` is the val split. The class names are the folder names.
* ``csv``: a manifest with a header row ``path,label[,split]`` (columns in any order, more columns
  ignored); paths relative to the manifest's folder; ``split`` is ``train``, ``val`` or ``test``.

A dataset object has ``format``, ``classes`` (ids in label order), ``class_names``, ``skipped``
(counts of skipped files by reason), ``split_sources`` (which splits the data itself gives, and
where from), ``items()`` (the canonical enumeration: split given by the data (train, val, test),
then class in label order, then file path sorted by name) and ``load(item, size, resize)``.
Splits the data does not give are held out of ``train`` by ``curate``.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

from gva.data.images import is_image_name
from gva.data.sources import Dataset, DirTree, Item, Tree, ZipTree, is_url, local_path, open_source, wrapper_folder
from gva.data.tinyimagenet import TinyImageNet, find_root
from gva.errors import DatasetError

log = logging.getLogger(__name__)

FORMATS = ("tinyimagenet", "imagefolder", "csv")
GIVEN_ORDER = {"train": 0, "val": 1, "test": 2}


def sort_classes(names) -> list[str]:
    """All classes when ``data.classes`` is null: sorted by name, or by value when every name is an
    integer (CSV labels ``0..9, 10``: label k is class ``k``)."""
    names = set(names)
    if names and all(n.isdecimal() for n in names):
        return sorted(names, key=lambda n: (int(n), n))
    return sorted(names)


def _preview(names: list[str], k: int = 8) -> str:
    return ", ".join(names[:k]) + (f" ... ({len(names)} in all)" if len(names) > k else "")


def select_classes(available: list[str], classes: list[str] | None, missing: Callable[[str], str]) -> list[str]:
    """``data.classes`` checked against the classes the data has (``missing(c)``: the error for one
    that is absent), or all of them (:func:`sort_classes`) when it is null or empty."""
    if not classes:
        return sort_classes(available)
    for c in classes:
        if c not in available:
            raise DatasetError(missing(c))
    return list(classes)


class ImageFolder(Dataset):
    """``ROOT/train/<class>/...`` plus optional ``test/`` and ``val/`` folders of the same classes."""

    format = "imagefolder"

    def __init__(self, tree: Tree, classes: list[str] | None):
        super().__init__()
        self.tree = tree
        train = self._class_folders("train")
        if not train:
            raise DatasetError(f"{tree.where('train')}: no class folders in it (expected train/<class>/<images>)")
        self.folders = [("train", "train")]
        has_test, has_val = tree.is_dir("test"), tree.is_dir("val")
        if has_test and has_val:
            self.folders += [("val", "val"), ("test", "test")]
        elif has_test:
            self.folders += [("test", "test")]
        elif has_val:
            self.folders += [("val", "test")]   # like Tiny ImageNet's official val: the test split
        self.classes = select_classes(train, classes, lambda c: (
            f"{tree.where('train')}: no folder for class {c!r} (in data.classes); "
            f"its class folders: {_preview(train)}; data.classes: null takes them all"))
        for folder, given in self.folders[1:]:
            present = self._class_folders(folder)
            extra = sorted(set(present) - set(train))
            if extra and not classes:
                raise DatasetError(f"{tree.where(folder + '/' + extra[0])}: a class folder with no "
                                   f"train/{extra[0]} (every class needs train images)")
            self.split_sources[given] = f"{folder}/"
        self.class_names = list(self.classes)

    def _class_folders(self, folder: str) -> list[str]:
        """The class folders in ``folder``; anything else there (files, hidden folders) is skipped."""
        entries = self.tree.listdir(folder)
        dirs = [e for e in entries if not e.startswith(".") and self.tree.is_dir(f"{folder}/{e}")]
        self._skip(f"non-image files in {folder}/", len(entries) - len(dirs))
        return dirs

    def items(self) -> list[Item]:
        out: list[Item] = []
        for folder, given in self.folders:
            for label, cls in enumerate(self.classes):
                rel = f"{folder}/{cls}"
                if not self.tree.is_dir(rel):
                    raise DatasetError(f"{self.tree.where(rel)}: class folder missing (every class needs "
                                       f"one in {folder}/ since {folder}/ exists)")
                files = self.tree.walk(rel)
                images = [f for f in files if is_image_name(f)]
                self._skip(f"non-image files in {folder}/", len(files) - len(images))
                if not images:
                    raise DatasetError(f"{self.tree.where(rel)}: class {cls} has no images")
                out += [Item(f"{rel}/{f}", cls, label, given) for f in images]   # walk() sorts
        return out


class CsvManifest(Dataset):
    """A manifest ``path,label[,split]``; paths relative to its folder (absolute ones allowed)."""

    format = "csv"

    def __init__(self, path: Path, classes: list[str] | None):
        super().__init__()
        self.path, self.tree = path, DirTree(path.parent)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: cannot read the manifest ({exc})") from None
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        cols = [h.strip().lower() for h in header or []]
        if "path" not in cols or "label" not in cols:
            raise DatasetError(f"{path}: a manifest needs a header row with columns path,label[,split]; "
                               f"got {','.join(header or []) or 'an empty file'}")
        ip, il = cols.index("path"), cols.index("label")
        isp = cols.index("split") if "split" in cols else None
        self.rows: list[tuple[int, str, str, str]] = []
        first_line: dict[str, tuple[int, str]] = {}   # resolved path -> (line, as written)
        for lineno, rec in enumerate(reader, start=2):
            if not any(c.strip() for c in rec):
                continue
            if len(rec) <= max(ip, il, isp or 0):
                raise DatasetError(f"{path}:{lineno}: expected {len(cols)} fields, got {len(rec)}")
            rel, label = rec[ip].strip().replace("\\", "/"), rec[il].strip()
            split = rec[isp].strip().lower() if isp is not None else "train"
            if not rel or not label:
                raise DatasetError(f"{path}:{lineno}: empty path or label")
            if "/" in label or "\\" in label or label in (".", "..") or not label.isprintable():
                raise DatasetError(f"{path}:{lineno}: label {label!r} cannot name a class (no slashes or "
                                   "control characters: labels become parts of file names)")
            if split not in GIVEN_ORDER:
                raise DatasetError(f"{path}:{lineno}: split {split!r} is not train, val or test")
            # the file, not the spelling: ./a.jpg, a//a.jpg, an absolute path or a link to it are a.jpg
            where = os.path.realpath(path.parent / rel)
            if where in first_line:
                line, spelled = first_line[where]
                also = f"line {line}" + (f", as {spelled}" if spelled != rel else "")
                raise DatasetError(f"{path}:{lineno}: {rel} is listed twice (also on {also}): one file "
                                   "cannot be two images (in two splits it would leak into the test score)")
            first_line[where] = (lineno, rel)
            self.rows.append((lineno, rel, label, split))
        labels = sorted({r[2] for r in self.rows})
        if not labels:
            raise DatasetError(f"{path}: the manifest lists no images")
        self.classes = select_classes(labels, classes, lambda c: (
            f"{path}: class {c!r} (in data.classes) has no rows; its labels: "
            f"{_preview(labels)}; data.classes: null takes them all"))
        self.class_names = list(self.classes)
        given = {r[3] for r in self.rows if r[2] in self.classes}
        self.split_sources = {s: "the manifest's split column" for s in ("val", "test") if s in given}

    def items(self) -> list[Item]:
        label_of = {c: k for k, c in enumerate(self.classes)}
        out: list[tuple[int, Item]] = []
        skipped = 0
        for lineno, rel, label, split in self.rows:
            if label not in label_of:
                continue   # a class not chosen
            if not is_image_name(rel):
                skipped += 1
                continue
            if not self.tree.is_file(rel):
                raise DatasetError(f"{self.path}:{lineno}: names {rel}, which does not exist")
            out.append((lineno, Item(rel, label, label_of[label], split)))
        self._skip("non-image files in the manifest", skipped)
        items = [it for _, it in sorted(out, key=lambda p: (GIVEN_ORDER[p[1].given], p[1].label, p[1].source))]
        for split in ("train", *self.split_sources):
            have = {it.label for it in items if it.given == split}
            for k, c in enumerate(self.classes):
                if k not in have:
                    raise DatasetError(f"{self.path}: class {c} has no {split} images (the manifest gives "
                                       f"a {split} split{'' if split == 'train' else ' for other classes'})")
        return items


def _has_class_folders(tree: Tree, rel: str) -> bool:
    return tree.is_dir(rel) and any(not e.startswith(".") and tree.is_dir(f"{rel}/{e}") for e in tree.listdir(rel))


def _folder_root(tree: Tree) -> str | None:
    """Where an ImageFolder starts: the source itself or its only folder (a zip's ``mydata/``)."""
    wrapper = wrapper_folder(tree)
    for root in ("", *([wrapper + "/"] if wrapper else [])):
        if _has_class_folders(tree, root + "train"):
            return root
    return None


def detect(tree: Tree) -> tuple[str, str]:
    """``data.format: auto`` on a directory or zip: (format, root folder inside ``tree``).

    Tiny ImageNet when a wnids.txt is found (see :func:`gva.data.tinyimagenet.find_root`);
    otherwise ImageFolder when ``train/<class>/`` folders exist; a Tiny ImageNet without wnids.txt
    but with its other files is ambiguous (a damaged copy, or class folders?) and an error.
    """
    root = find_root(tree)
    if root is not None:
        return "tinyimagenet", root
    wrapper = wrapper_folder(tree)
    roots = ["", *([wrapper + "/"] if wrapper else [])]
    hints = [r + m for r in roots for m in ("words.txt", "val/val_annotations.txt") if tree.is_file(r + m)]
    if hints:
        raise DatasetError(f"{tree.name}: not Tiny ImageNet (no wnids.txt) though it has {hints[0]}, and "
                           "data.format: auto cannot tell what it is; set data.format: tinyimagenet (and "
                           "restore wnids.txt) or data.format: imagefolder (train/<class>/ folders)")
    root = _folder_root(tree)
    if root is not None:
        return "imagefolder", root
    raise DatasetError(f"{tree.name}: no dataset found: neither Tiny ImageNet (wnids.txt) nor an ImageFolder "
                       "(train/<class>/<images>), in it or in its only folder; a CSV manifest is a .csv "
                       "file (docs/data.md, \"Your own images\")")


def open_dataset(source: str, fmt: str, classes: list[str] | None, download_dir: Path,
                 md5: str | None = None):
    """The dataset behind ``data.source`` in ``data.format`` (``auto``: detected and logged)."""
    classes = list(classes) if classes else None
    csv_file = source.lower().endswith(".csv") and not is_url(source)
    if fmt == "csv" or (fmt == "auto" and csv_file):
        if is_url(source):
            raise DatasetError(f"{source}: data.format csv reads a local .csv manifest, not a URL")
        path = local_path(source, download_dir)
        if not path.is_file():
            raise DatasetError(f"{path}: data.format csv needs a .csv manifest file, this is a directory")
        if fmt == "auto":
            log.info("data.format auto: %s is a CSV manifest (csv)", source)
        return CsvManifest(path, classes)
    if csv_file and local_path(source, download_dir).is_file():
        raise DatasetError(f"{source}: a .csv manifest, but data.format is {fmt}; set data.format: csv (or auto)")
    tree = open_source(source, download_dir, md5)
    root: str | None
    if fmt == "auto":
        fmt, root = detect(tree)
        log.info("data.format auto: detected %s in %s%s", fmt, tree.name,
                 f" (under {root.rstrip('/')})" if root else "")
    elif fmt == "tinyimagenet":
        root = find_root(tree)
        if root is None:
            raise DatasetError(f"{tree.name}: not Tiny ImageNet ("
                               + ("the zip has no wnids.txt)" if isinstance(tree, ZipTree)
                                  else "no wnids.txt in it or in tiny-imagenet-200/)"))
    elif fmt == "imagefolder":
        root = _folder_root(tree)
        if root is None:
            raise DatasetError(f"{tree.name}: not an ImageFolder (no train/<class>/ folders in it or in its "
                               "only folder)")
    else:
        raise DatasetError(f"data.format {fmt!r} is not one of auto, {', '.join(FORMATS)}")
    tree = tree.sub(root)
    if fmt == "tinyimagenet":
        return TinyImageNet(tree, classes)
    return ImageFolder(tree, classes)

