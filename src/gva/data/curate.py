"""The ``curate`` stage: chosen Tiny ImageNet classes -> ``data/curated/{images.npy,index.csv}``.

Splits: ``test`` is the official val set of the chosen classes; ``val`` is a stratified, seeded
hold-out of the official train set (for model selection); ``train`` is the rest.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gva.config import Config, DataConfig, to_dict
from gva.data.arrays import IndexRow, write_array, write_index
from gva.data.tinyimagenet import Item, TinyImageNet, open_tree
from gva.io import atomic_path
from gva.paths import CURATED_DIR, DOWNLOAD_DIR

log = logging.getLogger(__name__)



def assign_splits(items: list[Item], val_fraction: float, seed: int, num_classes: int) -> list[str]:
    """Split names per item: official val -> test; official train -> val (stratified, seeded) or train.

    Each class draws its own val subset from ``(seed, label)``, ``label`` being the class's position
    in ``data.classes``: appending a class leaves the others' splits unchanged; removing or
    reordering classes redraws the val subsets of the classes whose position moved.
    """
    splits = ["test" if it.official_split == "val" else "train" for it in items]
    for label in range(num_classes):
        pos = [i for i, it in enumerate(items) if it.label == label and it.official_split == "train"]
        n_val = int(round(val_fraction * len(pos)))
        rng = np.random.default_rng([seed, label])
        for i in rng.permutation(len(pos))[:n_val]:
            splits[pos[i]] = "val"
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


def curate(cfg: DataConfig, out_dir: Path = CURATED_DIR, download_dir: Path = DOWNLOAD_DIR) -> dict:
    """Build the curated store in ``out_dir`` (atomically: it appears whole or not at all)."""
    start = time.perf_counter()
    md5 = cfg.md5 if cfg.source.startswith(("http://", "https://")) else None
    dataset = TinyImageNet(open_tree(cfg.source, download_dir, md5), cfg.classes)
    items = dataset.items()
    splits = assign_splits(items, cfg.val_fraction, cfg.seed, len(cfg.classes))
    # ids are positions in the canonical enumeration, before limiting: an image keeps its id
    # (and so its generation seed) whatever limit_per_class is.
    rows = limit([(i, it, s) for i, (it, s) in enumerate(zip(items, splits))], cfg.limit_per_class)

    images = np.empty((len(rows), cfg.image_size, cfg.image_size, 3), dtype=np.uint8)
    for n, (_, item, _) in enumerate(tqdm(rows, desc="curate", unit="img")):
        images[n] = dataset.load(item, cfg.image_size)
    index = [IndexRow(i, s, it.wnid, dataset.class_names[it.label], it.label, it.source) for i, it, s in rows]

    counts = {s: sum(1 for r in index if r.split == s) for s in ("train", "val", "test")}
    summary = {
        "source": cfg.source,
        "counts": counts,
        "per_class": {name: {s: sum(1 for r in index if r.split == s and r.label == label) for s in counts}
                      for label, name in enumerate(dataset.class_names)},
        "skipped": dataset.skipped,
        "params": to_dict(cfg),
        "seconds": round(time.perf_counter() - start, 2),
    }
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_array(tmp / "images.npy", images)
        write_index(tmp / "index.csv", index)
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.info("curated %d images (%s) from %s in %.1fs", len(index),
             ", ".join(f"{k} {v}" for k, v in counts.items()), cfg.source, summary["seconds"])
    return summary


def run(cfg: Config, out_dir: str | Path = CURATED_DIR, download_dir: str | Path = DOWNLOAD_DIR) -> dict:
    """Stage ``curate``: reads ``cfg.data`` only; returns the summary written beside the store."""
    return curate(cfg.data, Path(out_dir), Path(download_dir))
