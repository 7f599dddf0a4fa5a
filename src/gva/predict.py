"""End-to-end inference: image file -> generated clip -> 3-D prediction, with a latency breakdown.

The clip is made the way the training clips were: the generator is built from the run's own
``svd`` params section and each image's seed derives from ``svd.seed`` and the image's bytes, so
the same file always gets the same clip. ``--model 2d`` classifies the image alone for comparison.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from gva.config import Config
from gva.data.images import IMAGE_SUFFIXES, decode_image
from gva.device import resolve_device, synchronize
from gva.errors import PredictError
from gva.execution import Execution, FastInference


def expand_inputs(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to the image files in them (sorted, recursive).

    A folder with no image file in it is a :class:`PredictError` (nothing would be classified), and
    so is ``-``: standard input is not read.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if str(p) == "-":
            raise PredictError("'-': standard input is not read; pass image files or folders")
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise PredictError(f"{p}: no image files in this folder "
                                   f"({', '.join(sorted(IMAGE_SUFFIXES))})")
            out += found
        else:
            out.append(p)
    return out


def load_image(path: str | Path | BinaryIO, size: int, resize: str = "center_crop") -> np.ndarray:
    """Decode any common image (a path or an open binary file) to uint8 RGB [size,size,3].

    The decode path of ``curate`` (:func:`gva.data.images.decode_image`: EXIF orientation,
    16-bit scaling, transparency on white, large JPEGs decoded at reduced scale), resized by the
    run's ``data.resize`` policy, so an image is seen as its training images were.
    """
    return decode_image(path, size, resize)


def file_seed(svd_seed: int, data: bytes) -> int:
    """A per-file seed from ``svd.seed`` and the file's content (same file, same clip)."""
    digest = hashlib.blake2b(data, digest_size=8, key=str(svd_seed).encode()).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


@dataclass
class Prediction:
    file: str
    ok: bool
    top: list[dict] = field(default_factory=list)
    latency_ms: dict = field(default_factory=dict)
    error: str | None = None

    def to_json(self) -> dict:
        d = {"file": self.file, "ok": self.ok}
        if self.ok:
            d["predictions"] = self.top
            d["latency_ms"] = self.latency_ms
        else:
            d["error"] = self.error
        return d

    def to_text(self) -> str:
        if not self.ok:
            return f"{self.file}: error: {self.error}"
        preds = ", ".join(f"{p['class_name']} {p['probability']:.3f}" for p in self.top)
        lat = ", ".join(f"{k} {v:.1f} ms" for k, v in self.latency_ms.items())
        return f"{self.file}: {preds}  [{lat}]"


class Predictor:
    """A trained model (2-D or 3-D) plus, for 3-D, the generator its training clips came from."""

    def __init__(self, cfg: Config, checkpoint: Path, model_kind: str = "3d", device: str = "auto"):
        from gva.models.checkpoint import load_checkpoint

        self.cfg = cfg
        self.device = resolve_device(device, "--device")
        if not checkpoint.is_file():
            raise PredictError(f"{checkpoint}: checkpoint not found (train the run first: dvc repro)")
        model, self.meta = load_checkpoint(checkpoint, map_location="cpu")
        self._check(checkpoint, model_kind)
        ev = cfg.evaluate  # the run's inference settings: precision, layout (not compile: one-off calls)
        self.execution = Execution.resolve(ev.precision, ev.channels_last, False, self.device, "evaluate")
        self.model = FastInference(model.to(self.device).eval(), self.execution, clips=model_kind == "3d")
        self.kind = model_kind
        self.generator = None
        if model_kind == "3d":
            from gva.generate import build_generator

            self.generator = build_generator(cfg.svd, device=str(self.device))

    def _check(self, path: Path, kind: str) -> None:
        meta, cfg = self.meta, self.cfg
        if meta.kind != kind:
            raise PredictError(f"{path}: is a {meta.kind} checkpoint, --model {kind} was asked for")
        # data.classes null: the classes are whatever the data had, and the checkpoint records them
        if cfg.data.classes and meta.wnids != list(cfg.data.classes):
            if meta.num_classes != cfg.num_classes:
                raise PredictError(f"{path}: has {meta.num_classes} classes but the run's params list "
                                   f"{cfg.num_classes} (data.classes)")
            differ = [f"{k}: {a} vs {b}" for k, (a, b) in enumerate(zip(meta.wnids, cfg.data.classes)) if a != b]
            raise PredictError(f"{path}: its classes differ from the run's data.classes (label "
                               f"{'; '.join(differ[:3])}{' ...' if len(differ) > 3 else ''})")
        if meta.arch != cfg.model.arch:
            raise PredictError(f"{path}: architecture {meta.arch!r} does not match the run's "
                               f"model.arch {cfg.model.arch!r}")
        if kind == "3d" and meta.frames not in (None, cfg.svd.frames):
            raise PredictError(f"{path}: trained on {meta.frames}-frame clips but svd.frames is "
                               f"{cfg.svd.frames}")

    @torch.no_grad()
    def predict_batch(self, images: np.ndarray, seeds: Sequence[int], top_k: int) -> tuple[list[list[dict]], dict]:
        """uint8 [B,S,S,3] -> top-k per image, and the per-image generate/classify time in ms."""
        from gva.data.loader import to_model_input

        t0 = time.perf_counter()
        if self.generator is not None:
            batch = torch.from_numpy(self.generator.generate(images, list(seeds)))
        else:
            batch = torch.from_numpy(images)
        synchronize(self.device)
        t1 = time.perf_counter()
        x = to_model_input(batch.to(self.device), self.meta.input_size, self.meta.mean, self.meta.std)
        probs = torch.softmax(self.model(x).float(), dim=1)
        synchronize(self.device)
        t2 = time.perf_counter()
        k = min(top_k, probs.shape[1])
        p, idx = probs.topk(k, dim=1)
        names, wnids = self.meta.class_names, self.meta.wnids
        tops = [[{"class_name": names[j], "wnid": wnids[j], "label": int(j), "probability": float(q)}
                 for q, j in zip(pr.tolist(), ix.tolist())] for pr, ix in zip(p, idx)]
        n = len(images)
        timing = {"generate": (t1 - t0) * 1e3 / n if self.generator else 0.0, "classify": (t2 - t1) * 1e3 / n}
        return tops, timing

    def predict_files(self, files: Sequence[Path], top_k: int = 3, batch_size: int = 8,
                      progress: Callable[[Iterable], Iterable] = lambda x: x) -> Iterator[Prediction]:
        """Stream files through in batches; a bad file yields an error result and the rest go on."""
        if top_k < 1 or batch_size < 1:
            raise PredictError(f"top_k and batch_size must be at least 1, got {top_k} and {batch_size}")
        if not files:
            raise PredictError("no input files")
        size = self.cfg.data.image_size
        pending: list[tuple[Path, np.ndarray, int, float]] = []

        def flush() -> Iterator[Prediction]:
            if not pending:
                return
            images = np.stack([p[1] for p in pending])
            tops, timing = self.predict_batch(images, [p[2] for p in pending], top_k)
            for (path, _, _, decode_ms), top in zip(pending, tops):
                lat = {"decode": decode_ms, **timing}
                lat["total"] = sum(lat.values())
                yield Prediction(str(path), True, top, {k: round(v, 3) for k, v in lat.items()})
            pending.clear()

        for path in progress(files):
            t0 = time.perf_counter()
            try:
                data = path.read_bytes() if path.is_file() else None
                if data is None:
                    raise ValueError("file not found" if not path.exists() else "not a file")
                image = load_image(io.BytesIO(data), size, self.cfg.data.resize)
            except (ValueError, OSError) as exc:  # undecodable, unreadable (permissions, I/O)
                yield Prediction(str(path), False, error=str(exc))
                continue
            pending.append((path, image, file_seed(self.cfg.svd.seed, data), (time.perf_counter() - t0) * 1e3))
            if len(pending) >= batch_size:
                yield from flush()
        yield from flush()
