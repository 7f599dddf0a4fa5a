"""What decides a clip's bytes besides its settings and image: gva's code and library versions.

The resume cache (``data/.cache/svd/<key>``) keys committed chunks by :func:`key_record`:

* ``settings`` -- the generator's cache-relevant settings (:meth:`Generator.cache_settings`);
* ``curated_hash`` -- the curated store's bytes;
* ``code_hash`` -- gva's generation code (:func:`code_files`): every module of ``gva.generate``
  plus ``gva/data/arrays.py`` (reads the curated store) and ``gva/device.py`` (which CUDA kernels
  run). Each file counts by its syntax tree without docstrings, so comment, docstring and
  formatting edits keep the key while any code edit changes it;
* ``versions`` -- Python (major.minor: the syntax-tree format follows it) and the libraries whose
  version can change a clip: torch (with its build tag and CUDA version), diffusers,
  transformers, numpy, pillow (the same set for every generator).

A code or library change therefore gives a new key and regeneration, never a resume from chunks
another code made. The chunks under a key were all made under that key's code and versions, so
``key.json`` beside them is their provenance.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any, Iterable

#: The gva package directory (src/gva).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: gva modules outside gva.generate whose code can change clip bytes (relative to PACKAGE_DIR).
EXTRA_CODE = ("data/arrays.py", "device.py")
#: Distributions whose versions can change clip bytes (importlib.metadata names).
LIBRARIES = ("torch", "diffusers", "transformers", "numpy", "pillow")


def code_files() -> list[Path]:
    """The source files whose code decides clip bytes: ``gva/generate/**/*.py`` + :data:`EXTRA_CODE`."""
    files = sorted((PACKAGE_DIR / "generate").rglob("*.py"))
    return files + [PACKAGE_DIR / rel for rel in EXTRA_CODE]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def normalised_source(path: str | Path) -> str:
    """A module's code without comments, docstrings or layout (its docstring-free syntax tree)."""
    tree = _strip_docstrings(ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path)))
    return ast.dump(tree, annotate_fields=True, include_attributes=False)


def code_hash(files: Iterable[str | Path] | None = None) -> str:
    """Hex digest of ``files`` (default :func:`code_files`): each file's name and normalised code."""
    h = hashlib.blake2b(digest_size=16)
    for path in (code_files() if files is None else files):
        path = Path(path)
        h.update(f"{path.name}\0{normalised_source(path)}\0".encode())
    return h.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Python major.minor, the :data:`LIBRARIES` versions installed (None: not installed) and the
    CUDA version torch was built for (None: a CPU build). Imports torch."""
    import torch

    out: dict[str, str | None] = {"python": ".".join(platform.python_version_tuple()[:2])}
    for pkg in LIBRARIES:
        try:
            out[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            out[pkg] = None
    out["torch"] = torch.__version__  # with the build tag (+cu130, +cpu) the metadata may lack
    out["torch_cuda"] = torch.version.cuda
    return out


def _display(path: Path) -> str:
    try:
        return path.resolve().relative_to(PACKAGE_DIR.parent).as_posix()  # gva/generate/base.py
    except ValueError:
        return path.name


def key_record(settings: dict[str, Any], curated_hash: str) -> dict[str, Any]:
    """Everything the cache key hashes: settings, data, code and library versions (``key.json``)."""
    files = code_files()
    return {"settings": settings, "curated_hash": curated_hash, "code_hash": code_hash(files),
            "code_files": [_display(Path(p)) for p in files], "versions": library_versions()}


def cache_key(record: dict[str, Any]) -> str:
    """The cache directory name for a :func:`key_record` (16 hex digits)."""
    blob = json.dumps(record, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()
