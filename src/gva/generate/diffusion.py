"""The one diffusers generator: loading, settings, cache key and batching for every model family.

A family is data (:class:`Family`: its diffusers pipeline class, default hub model, canvas step,
components kept in fp32) plus a subclass of :class:`DiffusionGenerator` that lists the ``svd``
params its call consumes (:attr:`DiffusionGenerator.SETTINGS`), describes itself and makes one
pipeline call (:meth:`DiffusionGenerator._call`). Everything else is here, the same for all:

* **loading** -- ``svd.model`` (a hub id or a local directory; null: the family's default) through
  :func:`gva.generate.pipelines.load_pipeline`, in ``svd.dtype`` on a GPU and fp32 on the CPU;
  ``tiny-<name>`` swaps in a locally built directory (:class:`gva.tiny.base.TinyModel`);
* **settings** -- constructor keywords, cache settings and ``describe()`` read the one list;
* **batches** -- :meth:`~DiffusionGenerator.generate_float` cuts the images (and their inputs) into
  calls of ``batch_size``; a clip depends only on its image, its seed and the settings, because
  each image gets its own CPU ``torch.Generator`` inside the call.

Families: :mod:`~gva.generate.svd` (Stable Video Diffusion) and :mod:`~gva.generate.i2v` (the
text-conditioned image-to-video pipelines: :mod:`~gva.generate.cogvideox`, :mod:`~gva.generate.ltx`,
:mod:`~gva.generate.wan`, :mod:`~gva.generate.i2vgen`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gva.config import SvdConfig
from gva.errors import ConfigError
from gva.generate import pipelines
from gva.generate.base import Generator, Inputs, check_images
from gva.generate.pipelines import device_type, resolve_dtype
from gva.paths import CACHE_DIR


@dataclass(frozen=True, kw_only=True)
class Family:
    """What a diffusers model family is, as data."""

    name: str                    # the svd.generator value (tiny build: tiny-<name>)
    pipeline: str                # diffusers pipeline class
    default_model: str           # svd.model when it is null
    multiple: int                # svd.height and svd.width must be multiples of this
    fp32_components: tuple = ()  # components kept in fp32 under a half svd.dtype (as the model card loads them)


class DiffusionGenerator(Generator):
    """A diffusers pipeline of :attr:`family`, called on ``batch_size`` images at a time.

    ``settings`` are the :attr:`SETTINGS` keywords (defaults: :class:`SvdConfig`'s); ``batch_size``
    is a run knob (clips do not depend on it); ``model_name`` identifies the weights in
    :meth:`describe`, ``model_path`` is what was loaded.
    """

    family: ClassVar[Family]
    #: The ``svd`` params the pipeline call consumes, listed once: constructor keywords,
    #: :meth:`call_settings` (the cache key's) and describe().
    SETTINGS: ClassVar[tuple[str, ...]]
    # the settings every family's SETTINGS lists (set from them in __init__)
    steps: int
    height: int
    width: int
    fps: int
    first_frame_original: bool

    def __init__(self, pipe, *, batch_size: int = 4, model_name: str = "?", model_path: str | None = None,
                 **settings: Any):
        unknown = sorted(set(settings) - set(self.SETTINGS))
        if unknown:
            raise TypeError(f"unknown {type(self).__name__} setting(s): {', '.join(unknown)}")
        defaults = SvdConfig()
        values = {k: settings.get(k, getattr(defaults, k)) for k in self.SETTINGS}
        self.check_canvas(values["height"], values["width"])
        if values["first_frame"] not in ("original", "generated"):
            raise ConfigError(f"svd.first_frame must be original or generated, got {values['first_frame']!r}")
        for k, v in values.items():
            setattr(self, k, v)
        self.pipe = pipe
        self.pipe.set_progress_bar_config(disable=True)
        self.batch_size = batch_size
        self.model_name = model_name
        # the loaded path, on the instance, shadows the classmethod model_path(cfg, cache_root)
        self.model_path = model_path if model_path is not None else model_name  # type: ignore[method-assign,assignment]
        self.setup()

    def setup(self) -> None:
        """Family work once the settings and the pipeline are in place (a hook; default nothing)."""

    @property
    def first_frame(self) -> str:
        """``svd.first_frame``; stored as :attr:`first_frame_original`."""
        return "original" if self.first_frame_original else "generated"

    @first_frame.setter
    def first_frame(self, value: str) -> None:
        self.first_frame_original = value == "original"

    @classmethod
    def check_canvas(cls, height: int, width: int) -> None:
        """The family's VAE and patching need sides that are multiples of ``family.multiple``."""
        m = cls.family.multiple
        if height % m or width % m:
            raise ConfigError(f"svd.height and svd.width must be multiples of {m} for {cls.family.name}, "
                              f"got {height}x{width}")

    # --- the model: what `<family>` and `tiny-<family>` differ in ------------------------------

    @classmethod
    def model_id(cls, cfg: SvdConfig) -> str:
        """What identifies the weights in the cache key and in describe(): ``svd.model`` or the default."""
        return cfg.model or cls.family.default_model

    @classmethod
    def model_path(cls, cfg: SvdConfig, cache_root: str | Path) -> str:
        """What :func:`gva.generate.pipelines.load_pipeline` loads: the model id (a hub id or a directory)."""
        return cls.model_id(cfg)

    # --- the Generator hooks ------------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: SvdConfig, device: str, cache_root: str | Path = CACHE_DIR) -> DiffusionGenerator:
        """Load the pipeline for ``cfg`` on ``device`` (dtype: :func:`resolve_dtype`)."""
        cls.check_canvas(cfg.height, cfg.width)
        path = cls.model_path(cfg, cache_root)
        pipe = pipelines.load_pipeline(cls.family.pipeline, path, device, resolve_dtype(cfg.dtype, device),
                                       f"tiny-{cls.family.name}")
        for name in cls.family.fp32_components:
            getattr(pipe, name).float()
        return cls.from_pipeline(pipe, cfg, cls.model_id(cfg), path)

    @classmethod
    def from_pipeline(cls, pipe, cfg: SvdConfig, model_name: str, model_path: str | None = None):
        """The generator around an already built ``pipe`` with ``cfg``'s settings and batch size."""
        return cls(pipe, batch_size=cfg.batch_size, model_name=model_name, model_path=model_path,
                   **{k: getattr(cfg, k) for k in cls.SETTINGS})

    @classmethod
    def call_settings(cls, cfg: SvdConfig) -> dict[str, Any]:
        """The call's settings that change the clips (default: :attr:`SETTINGS` as ``cfg`` has them)."""
        return {k: getattr(cfg, k) for k in cls.SETTINGS}

    @classmethod
    def cache_settings(cls, cfg: SvdConfig, device: str) -> dict[str, Any]:
        """The model, the seed, the call's settings, and the device type and dtype (their floats differ).

        A canvas the VAE cannot represent is refused here already, before the stage reads any data.
        """
        cls.check_canvas(cfg.height, cfg.width)
        return {"model": cls.model_id(cfg), "seed": cfg.seed, **cls.call_settings(cfg),
                "device": device_type(device), "dtype": resolve_dtype(cfg.dtype, device)}

    def weights(self, module) -> dict[str, str]:
        """Device type and dtype of ``module``'s weights (for describe())."""
        p = next(module.parameters())
        return {"device": device_type(str(p.device)), "dtype": str(p.dtype).replace("torch.", "")}

    # --- generation ---------------------------------------------------------------------------

    def call_inputs(self, n: int, inputs: Inputs) -> Inputs:
        """The per-image inputs of ``n`` images for the calls (a hook: e.g. default prompts)."""
        return inputs

    def generate_float(self, images: np.ndarray, seeds: Sequence[int], inputs: Inputs = None) -> np.ndarray:
        images = check_images(images, seeds)
        inputs = self.call_inputs(images.shape[0], inputs)
        step = self.batch_size
        out = [self._call(images[i:i + step], list(seeds[i:i + step]),
                          None if inputs is None else list(inputs[i:i + step]))
               for i in range(0, images.shape[0], step)]
        return np.concatenate(out) if out else np.zeros((0, self.frames) + images.shape[1:], np.float32)

    @abstractmethod
    def _call(self, images: np.ndarray, seeds: list[int], inputs: list[Any] | None) -> np.ndarray:
        """One pipeline call on at most ``batch_size`` images, one seed (and input) each ->
        float32 [B,T,H,W,3] in [0,1] at the images' size."""
