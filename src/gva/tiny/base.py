"""What every tiny build shares: its model directory and the mixin that makes a generator load it.

* :func:`tiny_model_dir` -- a tiny random pipeline built by a builder function, saved atomically
  under ``<cache>/tiny-<name>/v<version>`` with a stamp (the builder's code and the library
  versions), rebuilt whenever the stamp differs, so the model in it is always the one this code
  builds. Loading it goes through :func:`gva.generate.pipelines.load_pipeline`: the real loading
  path, no download.
* :class:`TinyModel` -- put before a production generator class in the bases of ``tiny-<name>``:
  the same generator code, on the tiny build's directory.
* :func:`loaded_back` -- a pipeline as ``save_pretrained`` -> ``from_pretrained`` gives it back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

from gva.generate.pipelines import is_model_dir, quiet_loading
from gva.generate.provenance import code_hash, library_versions
from gva.io import atomic_path, write_json

log = logging.getLogger(__name__)

TINY_STAMP = "gva-tiny-model.json"


def tiny_stamp(version: int, code_files: Sequence[Path]) -> dict[str, Any]:
    """What a tiny model directory is a function of: its builder's code and the library versions."""
    return {"version": version, "code_hash": code_hash(list(code_files)), "versions": library_versions()}


def tiny_model_dir(name: str, version: int, build: Callable[[], Any], code_files: Sequence[Path],
                   cache_root: str | Path) -> Path:
    """``<cache_root>/<name>/v<version>``: the pipeline ``build()`` returns, saved there on first use.

    Rebuilt (atomically) when its stamp differs from :func:`tiny_stamp`, i.e. when the builder's
    code or a library changed.
    """
    path = Path(cache_root) / name / f"v{version}"
    stamp = tiny_stamp(version, code_files)
    try:
        current = json.loads((path / TINY_STAMP).read_text()) if is_model_dir(str(path)) else None
    except (OSError, ValueError):
        current = None
    if current != stamp:
        log.info("building the tiny random %s pipeline in %s", name, path)
        pipe = build()
        with atomic_path(path) as tmp:
            pipe.save_pretrained(tmp)
            write_json(tmp / TINY_STAMP, stamp)
    return path


def loaded_back(pipe):
    """``pipe`` as loaded back from a ``save_pretrained`` directory, on CPU.

    It then computes exactly what any later ``save_pretrained`` -> ``from_pretrained`` copy
    computes. A freshly built model does not: ``from_pretrained`` leaves the weights as views into
    the memory-mapped safetensors file, at offsets that are not 64-byte aligned, and CPU kernels
    (GEMM, conv) then take other vectorisation paths -- outputs differ by ~1e-7 from the same
    weights in fresh, aligned memory. (Loading also puts every module in eval mode; a constructed
    transformers model starts in training mode with dropout on.)
    """
    import tempfile

    with tempfile.TemporaryDirectory() as path, quiet_loading():
        pipe.save_pretrained(path)
        # the memory maps keep the deleted files readable (POSIX)
        return type(pipe).from_pretrained(path, local_files_only=True).to("cpu")


class TinyModel:
    """Mixin of the ``tiny-<name>`` generators: where the weights come from.

    ``svd.model`` is used only when it names a local pipeline directory; otherwise the model is the
    tiny build's directory (:meth:`tiny_dir`, built once per machine by :meth:`prepare`),
    identified as ``<tiny_name>-v<tiny_version>``. Put it before the generator class in the bases
    and set :attr:`tiny_name`, :attr:`build_files` and :meth:`build_pipeline`.
    """

    #: ``tiny-<name>``: the generator name, the directory under the cache and the model id's stem
    tiny_name: ClassVar[str]
    tiny_version: ClassVar[int] = 1
    #: the builder's source files: the directory's stamp hashes them
    build_files: ClassVar[tuple[Path, ...]] = ()

    @classmethod
    def build_pipeline(cls):
        """The tiny random pipeline (CPU, fp32), the same weights on every call."""
        raise NotImplementedError

    @classmethod
    def tiny_dir(cls, cache_root: str | Path) -> Path:
        """The tiny build's pipeline directory (:func:`tiny_model_dir`), built on first use."""
        return tiny_model_dir(cls.tiny_name, cls.tiny_version, cls.build_pipeline, cls.build_files, cache_root)

    @classmethod
    def model_id(cls, cfg) -> str:
        return str(cfg.model) if is_model_dir(cfg.model) else f"{cls.tiny_name}-v{cls.tiny_version}"

    @classmethod
    def model_path(cls, cfg, cache_root: str | Path) -> str:
        return str(cfg.model) if is_model_dir(cfg.model) else str(cls.tiny_dir(cache_root))

    @classmethod
    def prepare(cls, cfg, cache_root: str | Path) -> None:
        """Build the model directory once per machine, before the ranks load it."""
        cls.model_path(cfg, cache_root)
