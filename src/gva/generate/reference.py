"""``svd.generator: reference``: clips made elsewhere, imported -- the reference run's SVD clips.

The folder (``svd.model``) is in the reference run's layout::

    train.csv  val.csv          video_path,label   (label: index of the wnid among the sorted wnids)
    train/00000.mp4 ...         one clip per official train image, grouped by label
    val/00000.mp4 ...           one clip per official val image, in val_annotations.txt's order

Each curated image gets its own clip (:mod:`gva.generate.matching`): an official val image
(``val/images/val_<k>.JPEG``) by the annotation order, every other image by content, one-to-one
within its label. The clips stay what they are: decoded frames, not re-encoded or re-generated;
only resized (bilinear, antialiased, as every generator's frames) to the curated size, like every
clip gva stores. Frame 0 is SVD's, whatever ``svd.first_frame`` says; the geometry and codec are
already the reference's, so ``svd.geometry`` / ``svd.codec`` other than square / none are refused
(they would stretch and compress a second time).

``reference-static`` is the *generated but static* control: frame 0 of each matched clip,
repeated -- SVD's content and artefacts, no motion.

The resume-cache key holds a hash of the folder's files, so another folder (or an edited one)
imports again; the same folder with the same curated images re-does nothing. The matches are kept
beside the chunks (``matches.json``) and recorded per image in generation.json (``reference``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

import numpy as np

from gva.config import SvdConfig
from gva.errors import ConfigError, DatasetError, GenerationError
from gva.generate.base import Generator, Inputs, check_images
from gva.generate.matching import (
    LabelMismatch,
    Match,
    frame_features,
    image_features,
    match_by_content,
    match_by_order,
    summary,
)
from gva.io import write_json

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
#: The curated ``source`` of an official Tiny ImageNet val image (its clip is found by order).
_VAL_SOURCE = re.compile(r"(?:^|/)val/images/val_(\d+)\.[A-Za-z]+$")


def folder_of(cfg: SvdConfig) -> Path:
    """``svd.model``: the folder of the clips, checked to be one."""
    if not cfg.model:
        raise ConfigError("svd.model: svd.generator reference needs the folder of the clips "
                          "(e.g. svd.model=../shared/reference-run/svd_videos; docs/generators.md, \"The reference run's clips\")")
    folder = Path(cfg.model)
    if not folder.is_dir():
        raise ConfigError(f"svd.model: {folder} is not a directory (svd.generator reference reads "
                          "{train,val}.csv and {train,val}/NNNNN.mp4 from it)")
    return folder


def read_listing(folder: Path) -> dict[str, list[tuple[str, int]]]:
    """``{split: [(clip path inside the folder, label), ...]}`` from train.csv and val.csv, with
    every listed file present."""
    out: dict[str, list[tuple[str, int]]] = {}
    for split in SPLITS:
        path = folder / f"{split}.csv"
        if not path.is_file():
            raise DatasetError(f"{path}: missing (a reference clip folder has train.csv and val.csv)")
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"video_path", "label"} <= set(reader.fieldnames):
                raise DatasetError(f"{path}: needs the columns video_path,label (found {reader.fieldnames})")
            rows = []
            for line, r in enumerate(reader, start=2):
                try:
                    label = int(r["label"])
                except (TypeError, ValueError):
                    raise DatasetError(f"{path}:{line}: label {r['label']!r} is not an integer") from None
                name = f"{split}/{r['video_path']}"
                if not (folder / name).is_file():
                    raise DatasetError(f"{folder / name}: missing (listed in {path.name} line {line})")
                rows.append((name, label))
        out[split] = rows
    return out


def folder_hash(folder: Path) -> str:
    """blake2b of the listings and every listed clip's name and bytes: the folder's content."""
    h = hashlib.blake2b(digest_size=16)
    for split, rows in read_listing(folder).items():
        h.update((folder / f"{split}.csv").read_bytes())
        for name, _ in rows:
            h.update(name.encode() + b"\0" + (folder / name).read_bytes())
    return h.hexdigest()


def read_clip(path: Path) -> np.ndarray:
    """uint8 [T,H,W,3] decoded frames; an unreadable file is a :class:`DatasetError` naming it."""
    from gva.data.video import read_mp4

    try:
        frames, _ = read_mp4(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing") from None
    except Exception as exc:  # PyAV raises its own error types for corrupt or truncated files
        raise DatasetError(f"{path}: not a readable MP4 ({type(exc).__name__}: {exc})") from None
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise DatasetError(f"{path}: no video frames")
    return frames


class ReferenceGenerator(Generator):
    """The clips of a folder in the reference layout, one per curated image (matched, not made)."""

    takes_inputs = True
    #: frame 0 repeated (the generated-but-static control)
    static = False

    def __init__(self, folder: str | Path, frames: int):
        self.folder = Path(folder)
        self.frames = frames

    @classmethod
    def from_config(cls, cfg: SvdConfig, device: str = "cpu", cache_root: str | Path = "") -> ReferenceGenerator:
        """Reads ``svd.model`` (the folder) and ``svd.frames``; refuses a second geometry or codec."""
        cls.check_settings(cfg)
        return cls(folder_of(cfg), cfg.frames)

    @staticmethod
    def check_settings(cfg: SvdConfig) -> None:
        """The clips already carry the reference geometry and codec: applying them again is refused."""
        if cfg.geometry != "square" or cfg.codec != "none":
            raise ConfigError(f"svd.geometry {cfg.geometry} / svd.codec {cfg.codec}: the imported clips already are "
                              "in the reference geometry and H.264; set svd.geometry: square and svd.codec: none")

    @classmethod
    def cache_settings(cls, cfg: SvdConfig, device: str) -> dict[str, Any]:
        return {"folder": folder_hash(folder_of(cfg)), "frames": cfg.frames}

    @classmethod
    def image_inputs(cls, cfg: SvdConfig, images: np.ndarray, rows: Sequence[Any], workdir: Path) -> list[Match]:
        """One :class:`~gva.generate.matching.Match` per row, kept in ``workdir/matches.json``."""
        cls.check_settings(cfg)
        if cfg.first_frame == "original":
            log.info("svd.first_frame original is ignored by svd.generator %s: frame 0 of the imported clips "
                     "is SVD's own", cfg.generator)
        path = Path(workdir) / "matches.json"
        try:
            held = json.loads(path.read_text())
            if [m["id"] for m in held] == [r.id for r in rows]:
                matches = [Match(**{k: v for k, v in m.items() if k != "id"}) for m in held]
                _log_summary(matches)
                return matches
        except (OSError, ValueError, KeyError, TypeError):
            pass
        matches = match_rows(folder_of(cfg), images, rows)
        write_json(path, [{"id": r.id, **m.to_dict()} for r, m in zip(rows, matches)])
        _log_summary(matches)
        return matches

    @classmethod
    def inputs_record(cls, cfg: SvdConfig, rows: Sequence[Any], inputs: Inputs) -> dict[str, Any]:
        """generation.json's ``reference``: the folder, a summary, and every image's match."""
        matches = list(inputs or [])
        return {"reference": {"folder": str(cfg.model), "static": cls.static, "summary": summary(matches),
                              "matches": [{"id": r.id, **m.to_dict()} for r, m in zip(rows, matches)]}}

    def generate_float(self, images: np.ndarray, seeds: Sequence[int], inputs: Inputs = None) -> np.ndarray:
        images = check_images(images, seeds)
        if inputs is None:
            raise GenerationError(f"svd.generator {'reference-static' if self.static else 'reference'} imports "
                                  "the clips of the curated images; it cannot make a clip for any other image")
        import torch

        from gva.generate.pipelines import to_clips

        out = np.empty((len(inputs), self.frames, *images.shape[1:]), dtype=np.float32)
        for i, match in enumerate(inputs):
            clip = read_clip(self.folder / match.clip)
            if clip.shape[0] != self.frames:
                raise DatasetError(f"{self.folder / match.clip}: {clip.shape[0]} frames, but svd.frames is "
                                   f"{self.frames}; set svd.frames: {clip.shape[0]}")
            if self.static:
                clip = np.repeat(clip[:1], self.frames, axis=0)
            # resized to the curated size as every generator's frames are (bilinear, antialiased)
            video = torch.from_numpy(clip).permute(0, 3, 1, 2)[None].float() / 255.0
            out[i] = to_clips(video, images[i:i + 1], first_frame_original=False)[0]
        return out

    def describe(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "frames": self.frames, "static": self.static,
                "first_frame": "generated (the imported clip's own)"}


class StaticReferenceGenerator(ReferenceGenerator):
    """Frame 0 of each matched clip, repeated: SVD's content and artefacts without its motion."""

    static = True


@lru_cache(maxsize=4)
def _frame0_features(folder: Path, names: tuple[str, ...]) -> np.ndarray:
    from tqdm import tqdm

    frames = np.stack([read_clip(folder / n)[0] for n in tqdm(names, desc="reading frame 0 of the clips",
                                                               unit="clip", mininterval=2.0)])
    return frame_features(frames)


def reference_labels(rows: Sequence[Any], listing: dict[str, list[tuple[str, int]]], folder: Path) -> list[int]:
    """Each row's label in the folder's numbering: the index of its wnid among the sorted wnids."""
    wnids = sorted({r.wnid for r in rows})
    labels = sorted({label for split in listing.values() for _, label in split})
    if labels != list(range(len(wnids))):
        raise DatasetError(f"{folder}: its CSVs have labels {labels[:12]}{' ...' if len(labels) > 12 else ''}, but "
                           f"the curated data has {len(wnids)} classes: the folder's labels must be 0..{len(wnids) - 1}, "
                           "the index of each wnid among the sorted wnids (as the reference run numbered them)")
    index = {w: i for i, w in enumerate(wnids)}
    return [index[r.wnid] for r in rows]


def match_rows(folder: Path, images: np.ndarray, rows: Sequence[Any]) -> list[Match]:
    """Every row's clip: official val images by order, the others by content (module docstring)."""
    listing = read_listing(folder)
    labels = np.array(reference_labels(rows, listing, folder))
    val_number = [_VAL_SOURCE.search(r.source) for r in rows]
    is_val = np.array([m is not None for m in val_number])
    matches: list[Match | None] = [None] * len(rows)

    if is_val.any():
        idx, names = _val_pairs(folder, listing, rows, labels, np.flatnonzero(is_val), val_number)
        by_order = match_by_order(image_features(images[idx]), labels[idx], _frame0_features(folder, tuple(names)),
                                  names)
        for i, m in zip(idx, by_order):
            matches[i] = m
    train_rows = np.flatnonzero(~is_val)
    if len(train_rows):
        wanted = set(labels[train_rows].tolist())
        pool = [(n, lb) for n, lb in listing["train"] if lb in wanted]
        names = [n for n, _ in pool]
        try:
            found = match_by_content(image_features(images[train_rows]), labels[train_rows],
                                     _frame0_features(folder, tuple(names)), [lb for _, lb in pool], names)
        except LabelMismatch as exc:
            raise DatasetError(f"{folder}/train.csv: {exc}") from None
        except ValueError as exc:
            raise DatasetError(f"{folder}/train.csv: {exc}") from None
        for i, m in zip(train_rows.tolist(), found):
            matches[i] = m
    return cast(list[Match], matches)  # every row matched (or an error raised)


def _val_pairs(folder: Path, listing: dict[str, list[tuple[str, int]]], rows: Sequence[Any], labels: np.ndarray,
               val_rows: np.ndarray, val_number: list) -> tuple[list[int], list[str]]:
    """(row, clip) of the official val images. All present: the k-th by file number (the annotation
    order) takes val.csv's k-th clip, and a label that differs is an error. A subset (the first k
    per class, ``data.limit_per_class``): the k-th of a label takes the label's k-th clip."""
    order = sorted(val_rows, key=lambda i: int(val_number[i].group(1)))
    if len(order) == len(listing["val"]):
        for k, i in enumerate(order):
            name, label = listing["val"][k]
            if label != labels[i]:
                raise DatasetError(f"{folder}/val.csv line {k + 2}: {name} is label {label}, but the {k}-th official "
                                   f"val image ({rows[i].source}) is {rows[i].wnid}, label {labels[i]}: the CSV's "
                                   "labels and the images disagree")
        return [int(i) for i in order], [name for name, _ in listing["val"]]
    pairs = []
    for lab in np.unique(labels[val_rows]):
        clips = [n for n, lb in listing["val"] if lb == lab]
        own = [i for i in order if labels[i] == lab]
        if len(own) > len(clips):
            raise DatasetError(f"{folder}/val.csv: label {lab} has {len(clips)} clips for {len(own)} official val images")
        pairs += list(zip(own, clips))
    return [int(i) for i, _ in pairs], [n for _, n in pairs]


def _log_summary(matches: Sequence[Match]) -> None:
    for how, s in summary(matches).items():
        log.info("reference clips by %s: %d images, %d confident (margin >= 0.05); cost p5/p50/p95 %s, margin %s",
                 how, s["images"], s["confident"], s["cost_p5_p50_p95"], s["margin_p5_p50_p95"])
