"""What decides a clip's bytes besides its settings and image: gva's code and library versions.

The resume cache (``data/.cache/svd/<key>``) keys committed chunks by :func:`key_record`:

* ``settings`` -- the generator's cache-relevant settings (:meth:`Generator.cache_settings`);
* ``curated_hash`` -- the curated images and each row's id and class, not its split
  (:func:`gva.generate.stage.clip_data_hash`);
* ``code_hash`` -- gva's generation code for this generator (:func:`code_files`): every module of
  ``gva.generate`` that serves all generators (the stage, the runner, the base class ...) plus
  ``gva/data/arrays.py`` (reads the curated store) and ``gva/device.py`` (which CUDA kernels run),
  and of the modules that serve only some generators, those the generator's class hierarchy lives
  in and the ones they import. Another family's module is left out, so that adding or editing a
  generator does not throw away the clips of the others (29 GPU-hours for the reference run).
  Each file counts by its syntax tree without docstrings, so comment, docstring and formatting
  edits keep the key while any code edit changes it;
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


def generation_modules() -> list[Path]:
    """Every module of ``gva.generate``."""
    return sorted((PACKAGE_DIR / "generate").rglob("*.py"))


def imported_names(path: str | Path, module: str) -> set[str]:
    """Fully qualified names the module ``module`` (source file ``path``) imports, at any nesting
    level (function-level imports too); ``from a import b`` gives both ``a`` and ``a.b`` (b may be
    a submodule); relative imports are resolved against ``module``'s package."""
    path = Path(path)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def imported_modules(path: str | Path) -> set[Path]:
    """The ``gva.generate`` module files that ``path`` (one of them) imports, at module level or
    inside functions (:func:`imported_names`)."""
    base = PACKAGE_DIR / "generate"
    module = ".".join(("gva", "generate", *Path(path).resolve().relative_to(base.resolve()).with_suffix("").parts))
    out: set[Path] = set()
    for name in imported_names(path, module):
        if name.startswith("gva.generate."):
            candidate = base.joinpath(*name.split(".")[2:]).with_suffix(".py")
            if candidate.is_file():
                out.add(candidate.resolve())
    return out


def code_files(own: Iterable[str | Path] | None = None,
               specific: Iterable[str | Path] = ()) -> list[Path]:
    """The source files whose code decides one generator's clip bytes.

    ``specific``: the modules of ``gva.generate`` that serve only some generators (see
    :func:`gva.generate.registry.code_files_of`); ``own``: those of them this generator's classes
    live in. The result is every other module of ``gva.generate``, ``own`` and the specific modules
    they import (transitively), and :data:`EXTRA_CODE`. ``own=None``: all of ``gva.generate``.
    """
    modules = [p.resolve() for p in generation_modules()]
    if own is not None:
        specific_set = {Path(p).resolve() for p in specific}
        keep = {Path(p).resolve() for p in own}
        todo = list(keep)
        while todo:
            for dep in imported_modules(todo.pop()) & specific_set:
                if dep not in keep:
                    keep.add(dep)
                    todo.append(dep)
        modules = [p for p in modules if p not in specific_set or p in keep]
    return modules + [PACKAGE_DIR / rel for rel in EXTRA_CODE]


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


def key_record(settings: dict[str, Any], curated_hash: str,
               files: Iterable[str | Path] | None = None) -> dict[str, Any]:
    """Everything the cache key hashes: settings, data, code (``files``, default all of
    :func:`code_files`) and library versions (``key.json``)."""
    files = code_files() if files is None else [Path(p) for p in files]
    return {"settings": settings, "curated_hash": curated_hash, "code_hash": code_hash(files),
            "code_files": [_display(Path(p)) for p in files], "versions": library_versions()}


def cache_key(record: dict[str, Any]) -> str:
    """The cache directory name for a :func:`key_record` (16 hex digits)."""
    blob = json.dumps(record, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()
