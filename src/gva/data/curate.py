"""The ``curate`` stage: a dataset's chosen classes -> ``data/curated/{images.npy,index.csv,summary.json}``.

The dataset is Tiny ImageNet, an ImageFolder or a CSV manifest (:mod:`gva.data.formats`, picked by
``data.format``). Splits: what the data gives (Tiny ImageNet's official val, an ImageFolder's
``test/``/``val/`` folders, a manifest's split column) is used as given; a ``test`` split it does
not give is a stratified, seeded ``data.test_fraction`` hold-out of train, a ``val`` split a
``data.val_fraction`` hold-out of the rest (for model selection); ``train`` is what remains.
With ``data.folds: K`` (cross-fitting, :func:`assign_folds`) the given splits are pooled instead:
each class is dealt into K stratified folds, fold ``data.fold`` is ``test``, and ``val`` / ``train``
come from the other folds; the store holds the same images in the same order for every fold.
Images are decoded one at a time into a memory-mapped array (bounded memory for any N).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gva.config import Config, DataConfig, to_dict
from gva.data.arrays import IndexRow, write_array_rows, write_index
from gva.data.formats import open_dataset
from gva.data.sources import Item
from gva.errors import DatasetError
from gva.io import atomic_path
from gva.paths import CURATED_DIR, DOWNLOAD_DIR

log = logging.getLogger(__name__)


def assign_splits(items: list[Item], val_fraction: float, seed: int, num_classes: int,
                  test_fraction: float = 0.0, class_ids: list[str] | None = None) -> list[str]:
    """Split names per item: the split the data gives, or a stratified, seeded hold-out of train.

    Each class permutes its ``train`` items with a generator seeded by ``(seed, label)``, ``label``
    being the class's position in the class list: when the data gives no test split, the first
    ``max(1, round(test_fraction * n))`` become ``test``; when it gives no val split, the next
    ``round(val_fraction * rest)`` become ``val``. (With Tiny ImageNet, whose test split is given,
    this is the val hold-out gva always drew.) Appending a class leaves the others' splits
    unchanged; removing or reordering classes redraws those of the classes whose position moved.
    """
    splits = [it.given for it in items]
    hold_test = test_fraction > 0 and not any(it.given == "test" for it in items)
    hold_val = not any(it.given == "val" for it in items)
    for label in range(num_classes):
        pos = [i for i, it in enumerate(items) if it.label == label and it.given == "train"]
        n_test = max(1, int(round(test_fraction * len(pos)))) if hold_test else 0
        n_val = int(round(val_fraction * (len(pos) - n_test))) if hold_val else 0
        if len(pos) - n_test - n_val < 1:
            name = class_ids[label] if class_ids else label
            raise DatasetError(f"class {name}: {len(pos)} train image(s) leave none to train on after the "
                               f"hold-outs (data.test_fraction {test_fraction}, data.val_fraction {val_fraction})")
        rng = np.random.default_rng([seed, label])
        perm = rng.permutation(len(pos))
        for i in perm[:n_test]:
            splits[pos[i]] = "test"
        for i in perm[n_test:n_test + n_val]:
            splits[pos[i]] = "val"
    return splits


def assign_folds(items: list[Item], folds: int, fold: int, val_fraction: float, seed: int,
                 num_classes: int, class_ids: list[str] | None = None) -> list[str]:
    """Split names per item for cross-fitting: fold ``fold`` of ``folds`` is ``test``.

    Each class permutes all its items (whatever split the data gives) with a generator seeded by
    ``(seed, label)`` and deals the permutation into ``folds`` contiguous parts of near-equal size
    (``numpy.array_split``), the same parts whatever ``fold`` is, so the test splits of folds
    ``0..folds-1`` partition the data. Of the other parts, in permutation order, the first
    ``round(val_fraction * rest)`` items are ``val`` and the rest ``train``.
    """
    splits = [""] * len(items)
    for label in range(num_classes):
        pos = [i for i, it in enumerate(items) if it.label == label]
        name = class_ids[label] if class_ids else label
        perm = np.random.default_rng([seed, label]).permutation(len(pos))
        parts = np.array_split(perm, folds)
        rest = np.concatenate([p for j, p in enumerate(parts) if j != fold])
        n_val = int(round(val_fraction * len(rest)))
        if len(pos) < folds or len(rest) - n_val < 1:
            raise DatasetError(f"class {name}: {len(pos)} image(s) cannot fill {folds} folds and leave one to "
                               f"train on (data.folds {folds}, data.val_fraction {val_fraction})")
        for i in parts[fold]:
            splits[pos[i]] = "test"
        for i in rest[:n_val]:
            splits[pos[i]] = "val"
        for i in rest[n_val:]:
            splits[pos[i]] = "train"
    return splits


def limit(rows: list[tuple[int, Item, str]], k: int | None) -> list[tuple[int, Item, str]]:
    """Keep the first ``k`` images per (class, split), in canonical order."""
    if k is None:
        return rows
    seen: dict[tuple[int, str], int] = {}
    kept = []
    for row in rows:
        key = (row[1].label, row[2])
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= k:
            kept.append(row)
    return kept


def check_names(dataset, items: list[Item]) -> None:
    """Every file name can be written to index.csv (UTF-8): a name in another encoding (bytes that
    are not UTF-8, kept by Python as lone surrogates) is a :class:`DatasetError` naming it."""
    for item in items:
        try:
            item.source.encode("utf-8")
        except UnicodeEncodeError:
            where = os.fsencode(dataset.tree.where(item.source)).decode("utf-8", "backslashreplace")
            raise DatasetError(f"{where}: the file name is not valid UTF-8 (index.csv records names as UTF-8); "
                               "rename the file") from None


def check_duplicates(dataset, rows: list[tuple[int, Item, str]]) -> dict[str, int]:
    """Files with identical bytes among the chosen rows, whatever their names (a copy, a link).

    A test image identical to a train or val image is leakage: the test score would partly be a
    training score, the one number the pipeline exists to estimate, so it is a
    :class:`DatasetError` naming both files (remove one copy). Copies within one split (an image
    counted twice) or across train and val (model selection sees training images; the test
    estimate is untouched) are warned about and counted: ``{"same_split": n, "train_val": m}``."""
    first: dict[bytes, tuple[Item, str]] = {}
    # (file, its split, the copy, its split)
    same: list[tuple[str, str, str, str]] = []
    train_val: list[tuple[str, str, str, str]] = []
    leaks: list[tuple[str, str, str, str]] = []
    for _, item, split in rows:
        try:
            data = dataset.tree.read(item.source)
        except OSError:
            continue   # decoding it reports the file
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if digest not in first:
            first[digest] = (item, split)
            continue
        other, other_split = first[digest]
        pair = (dataset.tree.where(other.source), other_split, dataset.tree.where(item.source), split)
        (same if split == other_split else leaks if "test" in (split, other_split) else train_val).append(pair)
    if leaks:
        a, sa, b, sb = leaks[0]
        raise DatasetError(f"{a} ({sa}) and {b} ({sb}) have identical bytes: a test image would also be a "
                           f"{sa if sb == 'test' else sb} image, so the test score would partly be a training "
                           f"score ({len(leaks)} such pair(s) in all); remove one copy from the data")
    if same:
        a, _, b, _ = same[0]
        log.warning("%d image(s) have the same bytes as another image of their split (e.g. %s and %s): each "
                    "counts twice", len(same), a, b)
    if train_val:
        a, sa, b, _ = train_val[0]
        log.warning("%d val image(s) have the same bytes as a train image (e.g. %s and %s): model selection "
                    "sees training images", len(train_val), a, b)
    return {"same_split": len(same), "train_val": len(train_val)}


def curate(cfg: DataConfig, out_dir: Path = CURATED_DIR, download_dir: Path = DOWNLOAD_DIR) -> dict:
    """Build the curated store in ``out_dir`` (atomically: it appears whole or not at all)."""
    start = time.perf_counter()
    dataset = open_dataset(cfg.source, cfg.format, cfg.classes, download_dir, cfg.md5)
    items = dataset.items()
    check_names(dataset, items)
    # ids are positions in the canonical enumeration, before limiting: an image keeps its id
    # (and so its generation seed) whatever limit_per_class, the hold-outs or the folds are.
    if cfg.folds is not None:
        # the pool: the first limit_per_class images of each class in every split the data gives
        pool = limit([(i, it, it.given) for i, it in enumerate(items)], cfg.limit_per_class)
        splits = assign_folds([it for _, it, _ in pool], cfg.folds, cfg.fold, cfg.val_fraction, cfg.seed,
                              len(dataset.classes), class_ids=dataset.classes)
        rows = [(i, it, s) for (i, it, _), s in zip(pool, splits)]
        split_sources = {
            "test": f"fold {cfg.fold} of {cfg.folds} (data.folds: every split the data gives, pooled and dealt "
                    f"into stratified folds by data.seed {cfg.seed})",
            "val": f"held out of the other folds (data.val_fraction {cfg.val_fraction})"
                   if cfg.val_fraction > 0 else "none (data.val_fraction 0)",
        }
    else:
        given = {it.given for it in items}
        if "test" not in given and cfg.test_fraction == 0:
            raise DatasetError(f"{cfg.source}: no test split: the data gives none (no test/ or val/ folder, no "
                               "split column) and data.test_fraction is 0; set data.test_fraction > 0")
        splits = assign_splits(items, cfg.val_fraction, cfg.seed, len(dataset.classes),
                               test_fraction=cfg.test_fraction, class_ids=dataset.classes)
        rows = limit([(i, it, s) for i, (it, s) in enumerate(zip(items, splits))], cfg.limit_per_class)
        split_sources = {
            "test": dataset.split_sources.get("test", f"held out of train (data.test_fraction {cfg.test_fraction})"),
            "val": dataset.split_sources.get("val", f"held out of train (data.val_fraction {cfg.val_fraction})"
                                             if cfg.val_fraction > 0 else "none (data.val_fraction 0)"),
        }
    index = [IndexRow(i, s, it.wnid, dataset.class_names[it.label], it.label, it.source) for i, it, s in rows]
    duplicates = check_duplicates(dataset, rows)

    counts = {s: sum(1 for r in index if r.split == s) for s in ("train", "val", "test")}
    summary = {
        "source": cfg.source,
        "format": dataset.format,
        "splits": split_sources,
        "counts": counts,
        "per_class": {name: {s: sum(1 for r in index if r.split == s and r.label == label) for s in counts}
                      for label, name in enumerate(dataset.class_names)},
        "skipped": dataset.skipped,
        "duplicates": duplicates,
        "params": to_dict(cfg),
    }
    size = cfg.image_size
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        with write_array_rows(tmp / "images.npy", (len(rows), size, size, 3)) as images:
            for n, (_, item, _) in enumerate(tqdm(rows, desc="curate", unit="img")):
                images[n] = dataset.load(item, size, cfg.resize)
        write_index(tmp / "index.csv", index)
        # content facts only (no wall time): the same data gives the same bytes, so a forced re-run
        # leaves the stages that depend on data/curated up to date
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("curated %d images (%s) of %d classes from %s (%s; test: %s; val: %s) in %.1fs", len(index),
             ", ".join(f"{k} {v}" for k, v in counts.items()), len(dataset.classes), cfg.source,
             dataset.format, split_sources["test"], split_sources["val"], time.perf_counter() - start)
    return summary


def run(cfg: Config, out_dir: str | Path = CURATED_DIR, download_dir: str | Path = DOWNLOAD_DIR) -> dict:
    """Stage ``curate``: reads ``cfg.data`` only; returns the summary written beside the store."""
    return curate(cfg.data, Path(out_dir), Path(download_dir))
