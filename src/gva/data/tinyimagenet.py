"""Tiny ImageNet in its official layout, in a directory or a zip (gva.data.sources opens those).

Official layout (possibly under one top folder such as ``tiny-imagenet-200/``)::

    wnids.txt  words.txt
    train/<wnid>/images/<wnid>_<k>.JPEG
    val/images/val_<k>.JPEG   val/val_annotations.txt   (file <TAB> wnid <TAB> box...)

The official val images become gva's ``test`` split (``Item.given == "test"``).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from gva.data.images import is_image_name
from gva.data.sources import Dataset, Item, Tree, ZipTree
from gva.errors import DatasetError

IMAGE_SUFFIXES = (".jpeg", ".jpg")   # Tiny ImageNet's images are JPEGs; anything else is skipped
MARKERS = ("wnids.txt", "words.txt", "val/val_annotations.txt")

__all__ = ["DatasetError", "Item", "TinyImageNet", "find_root"]


def _find_zip_root(entries: list[str]) -> str | None:
    """The shallowest folder holding wnids.txt, as a prefix ('' or 'tiny-imagenet-200/')."""
    hits = sorted((e for e in entries if PurePosixPath(e).name == "wnids.txt"), key=lambda e: e.count("/"))
    return hits[0][: -len("wnids.txt")] if hits else None


def find_root(tree: Tree) -> str | None:
    """Where Tiny ImageNet starts in ``tree`` (the folder holding wnids.txt: the root itself,
    ``tiny-imagenet-200/``, or, in a zip, the shallowest one), or None."""
    if isinstance(tree, ZipTree):
        return _find_zip_root(sorted(tree.files))
    for root in ("", "tiny-imagenet-200/"):
        if tree.is_file(root + "wnids.txt"):
            return root
    return None


def _number(name: str) -> int:
    m = re.search(r"_(\d+)\.[A-Za-z]+$", name)
    return int(m.group(1)) if m else -1


class TinyImageNet(Dataset):
    """The chosen classes of one Tiny ImageNet source: names, labels, and the image list.

    ``classes`` None (or empty): every wnid of wnids.txt, sorted.
    """

    format = "tinyimagenet"

    def __init__(self, tree: Tree, classes: list[str] | None):
        super().__init__()
        self.tree = tree
        for required in MARKERS:
            if not tree.is_file(required):
                raise DatasetError(f"{tree.name}: not Tiny ImageNet ({required} missing)")
        wnids = tree.read("wnids.txt").decode().split()
        self.classes = list(classes) if classes else sorted(set(wnids))
        for wnid in self.classes:
            if wnid not in wnids:
                raise DatasetError(f"{tree.name}/wnids.txt: class {wnid} (in data.classes) is not listed")
        words = {}
        for line in tree.read("words.txt").decode().splitlines():
            if "\t" in line:
                wnid, text = line.split("\t", 1)
                words[wnid] = text.strip()
        self.class_names = [words.get(w, w).split(",")[0].strip() for w in self.classes]
        self.split_sources = {"test": "val/ (official val images, val/val_annotations.txt)"}

    def items(self) -> list[Item]:
        """All images of the chosen classes in canonical order: train by class then number, then val."""
        out: list[Item] = []
        for label, wnid in enumerate(self.classes):
            folder = f"train/{wnid}/images"
            if not self.tree.is_dir(folder):
                raise DatasetError(f"{self.tree.name}/{folder}: class directory missing")
            names = self.tree.listdir(folder)
            images = [n for n in names if is_image_name(n, IMAGE_SUFFIXES)]
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
            val.append(Item(rel, wnid, label_of[wnid], "test"))
        counts = {w: 0 for w in self.classes}
        for it in val:
            counts[it.wnid] += 1
        empty = [w for w, c in counts.items() if c == 0]
        if empty:
            raise DatasetError(f"{self.tree.name}/{ann}: class {empty[0]} has no val (test) images")
        out += sorted(val, key=lambda it: (it.label, _number(it.source)))
        return out
