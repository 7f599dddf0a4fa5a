"""The generator interface every ``svd.generator`` kind implements, plus per-image seeding.

A generator turns curated images (uint8 [B,H,W,3]) into clips (uint8 [B,T,H,W,3]) at the input
resolution. ``generate_float`` is the same computation before quantisation (float32 in [0,1]);
the invariance tests (batch, order, processes) compare it within 1e-5, the byte tests compare
``generate``. A clip depends only on its image, its seed and the settings, never on which other
images share its batch.

Besides generating, a generator class answers three questions about itself, so that nothing
else in gva needs to know which settings a kind reads:

* :meth:`Generator.from_config` -- how to build it from the ``svd`` params section;
* :meth:`Generator.cache_settings` -- which settings change its bytes (the resume-cache key);
* :meth:`Generator.describe` -- its resolved settings, recorded in ``generation.json``;

and may do one-time per-machine work in :meth:`Generator.prepare`. A generator that needs more
than the image and its seed (a text prompt, an imported clip) says so with :attr:`takes_inputs`
and computes one input per image from the curated rows in :meth:`Generator.image_inputs`. This module imports no
generator module: the names live in :mod:`gva.generate.registry`. The diffusers generators share
one subclass, :class:`gva.generate.diffusion.DiffusionGenerator`.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from gva.config import SvdConfig


def image_seed(seed: int, image_id: int) -> int:
    """Per-image seed from (``svd.seed``, image id) only: a stable 63-bit hash, not ``hash()``."""
    digest = hashlib.blake2b(f"gva-svd:{int(seed)}:{int(image_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


#: How :func:`image_seed` derives seeds, in words (recorded in generation.json).
SEED_RULE = "blake2b('gva-svd:{svd.seed}:{image id}') -> 63-bit torch/numpy seed"


class Prompt(NamedTuple):
    """One image's rendered prompt and negative prompt (:mod:`gva.generate.prompts`)."""

    text: str
    negative: str = ""


#: One :class:`Prompt` per image, or None (a generator then uses its own settings' prompt).
Prompts = Sequence[Prompt] | None
#: One extra input per image (:meth:`Generator.image_inputs`: a :class:`Prompt`, a matched clip ...).
Inputs = Sequence[Any] | None


def check_images(images: Any, seeds: Sequence[int] | None = None) -> np.ndarray:
    """Validate a generator input batch; bad input (a caller's bug) raises ``ValueError`` naming it."""
    if not isinstance(images, np.ndarray):
        raise ValueError(f"images must be a numpy array, got {type(images).__name__}")
    if images.dtype != np.uint8:
        raise ValueError(f"images must be uint8, got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must have shape [B,H,W,3], got {list(images.shape)}")
    if images.shape[1] < 2 or images.shape[2] < 2:
        raise ValueError(f"images are too small: {images.shape[1]}x{images.shape[2]}")
    if seeds is not None and len(seeds) != images.shape[0]:
        raise ValueError(f"got {images.shape[0]} images but {len(seeds)} seeds")
    return images


def quantise(clips: np.ndarray) -> np.ndarray:
    """float [0,1] -> uint8, rounding to nearest (as diffusers' own ``numpy_to_pil``)."""
    return np.clip(np.rint(clips * 255.0), 0, 255).astype(np.uint8)


class Generator(ABC):
    """Images -> clips. Subclasses implement :meth:`generate_float` and the three class hooks."""

    #: frames per clip (T)
    frames: int
    #: frame 0 is the input image itself (set exactly after quantisation)
    first_frame_original: bool = False
    #: ``generate`` takes one extra input per image (:meth:`image_inputs`): prompts, imported clips
    takes_inputs: bool = False

    @classmethod
    @abstractmethod
    def from_config(cls, cfg: SvdConfig, device: str, cache_root: str | Path) -> Generator:
        """Build the generator for ``cfg`` on ``device`` (already resolved: ``cpu``, ``cuda[:N]``).

        ``cache_root`` is where a generator may keep built or downloaded files (``data/.cache``).
        Settings the params file cannot check on its own raise :class:`gva.errors.ConfigError`.
        """

    @classmethod
    @abstractmethod
    def cache_settings(cls, cfg: SvdConfig, device: str) -> dict[str, Any]:
        """The settings of ``cfg`` that change this generator's bytes on ``device`` (JSON-able).

        They key the resume cache: list every setting the clips depend on, and nothing else
        (never batch size, chunk size, process count or preview knobs), so that e.g. changing
        ``svd.steps`` does not invalidate a ``motion`` cache. gva's code and library versions
        are added to the key by :mod:`gva.generate.provenance`, not here.
        """

    @classmethod  # noqa: B027 -- an optional hook: empty on purpose, not abstract
    def prepare(cls, cfg: SvdConfig, cache_root: str | Path) -> None:
        """One-time work per machine before the ranks build the generator (e.g. write a model
        directory they all load). Called once per node; the default does nothing."""

    @classmethod
    def image_inputs(cls, cfg: SvdConfig, images: np.ndarray, rows: Sequence[Any], workdir: Path) -> Inputs:
        """One input per curated image (``rows``: its :class:`~gva.data.arrays.IndexRow`), computed
        once per run before generation, for a generator with :attr:`takes_inputs`; None otherwise.
        ``workdir`` is the run's cache directory (keyed by settings, data and code): a place to keep
        a costly result. Runs on every rank, so it must be deterministic."""
        return None

    @classmethod
    def inputs_record(cls, cfg: SvdConfig, rows: Sequence[Any], inputs: Inputs) -> dict[str, Any]:
        """What generation.json records about the inputs (keys merged into it); default nothing."""
        return {}

    @abstractmethod
    def generate_float(self, images: np.ndarray, seeds: Sequence[int], inputs: Inputs = None) -> np.ndarray:
        """uint8 [B,H,W,3] + one seed (and, with :attr:`takes_inputs`, one input) per image ->
        float32 [B,T,H,W,3] in [0,1], before quantisation. Every generator has this signature; one
        without inputs ignores ``inputs`` (None)."""

    def generate(self, images: np.ndarray, seeds: Sequence[int], inputs: Inputs = None) -> np.ndarray:
        """uint8 [B,H,W,3] + one seed (and, with :attr:`takes_inputs`, one input: a :class:`Prompt`,
        a matched clip) per image -> uint8 [B,T,H,W,3] at the input resolution. Generators without
        inputs ignore ``inputs``."""
        images = check_images(images, seeds)
        if inputs is not None and len(inputs) != images.shape[0]:
            raise ValueError(f"got {images.shape[0]} images but {len(inputs)} inputs")
        if images.shape[0] == 0:
            return np.zeros((0, self.frames) + images.shape[1:], dtype=np.uint8)
        clips = quantise(self.generate_float(images, seeds, inputs))
        if self.first_frame_original:
            clips[:, 0] = images  # exact, whatever the float path did
        return clips

    def describe(self) -> dict[str, Any]:
        """Resolved settings (device type, dtype, model ...) for generation.json.

        Content facts only: the same for every rank and every run with the same cache key, so no
        run knobs (batch size ...) and no device index (``cuda``, not ``cuda:1``).
        """
        return {"class": type(self).__name__, "frames": self.frames}
