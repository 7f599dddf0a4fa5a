"""What decides a clip's bytes besides its settings and image: gva's code and library versions.

The resume cache (``data/.cache/svd/<key>``) keys committed chunks by :func:`key_record`:

* ``settings`` -- the generator's cache-relevant settings (:meth:`Generator.cache_settings`);
* ``curated_hash`` -- the curated images and each row's id and class, not its split
  (:func:`gva.generate.stage.clip_data_hash`);
* ``generator_class`` -- the class the generator's name resolves to (its registry entry);
* ``code_hash`` -- the code that can change this generator's clips (:func:`generator_code_files`):
  the stage (``stage.py``) and the generator's class hierarchy, every module of ``gva.generate``
  and ``gva.tiny`` those import -- transitively, imports inside functions included -- and
  ``gva/data/arrays.py`` (reads the curated store), ``gva/data/video.py`` (decodes the reference
  run's MP4s, writes the previews) and ``gva/device.py`` (which CUDA kernels run).
  So the runner, the base class, the factory and the protocol wrapper count for every generator,
  ``pipelines.py`` for the diffusers ones and the importer, ``i2v.py`` and ``prompts.py`` for the
  text-conditioned ones, a family module and its tiny build only for their own generators. What only names or lists
  generators (:data:`NAMING`: the registry, the package's re-exports) counts for none: adding a
  generator (a module and its registry line) or editing another family keeps every other
  generator's key and clips (29 GPU-hours for the reference run). Each file counts by its syntax
  tree without docstrings, so comment, docstring and formatting edits keep the key while any code
  edit changes it;
* ``versions`` -- Python (major.minor: the syntax-tree format follows it) and the libraries whose
  version can change a clip: torch (with its build tag and CUDA version), diffusers,
  transformers, numpy, pillow, av (PyAV with its bundled FFmpeg and libx264: the ``svd.codec:
  h264`` round trip, the reference run's MP4 decoding) and scipy (the reference importer's
  assignment) -- the same set for every generator.

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
from collections.abc import Iterable
from pathlib import Path
from typing import Any

#: The gva package directory (src/gva).
PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: The gva packages whose modules can decide clip bytes (relative to PACKAGE_DIR): the generation
#: code and the tiny builds.
SCOPE = ("generate", "tiny")
#: Modules that only name or list generators: part of no key, and their imports are not followed.
NAMING = ("generate/__init__.py", "generate/registry.py")
#: The stage, which every generator's clips go through (with what it imports).
STAGE = "generate/stage.py"
#: gva modules outside SCOPE whose code can change clip bytes (relative to PACKAGE_DIR).
EXTRA_CODE = ("data/arrays.py", "data/video.py", "device.py")
#: Distributions whose versions can change clip bytes (importlib.metadata names): ``av`` is PyAV,
#: whose wheels bundle the FFmpeg and libx264 that encode and decode the MP4s.
LIBRARIES = ("torch", "diffusers", "transformers", "numpy", "pillow", "av", "scipy")


def scope_modules() -> list[Path]:
    """Every module of the :data:`SCOPE` packages."""
    return sorted(p for package in SCOPE for p in (PACKAGE_DIR / package).rglob("*.py"))


def _naming() -> set[Path]:
    return {(PACKAGE_DIR / rel).resolve() for rel in NAMING}


def module_file(name: str) -> Path | None:
    """``gva.generate.svd`` -> its source file (a module or a package's ``__init__``) if it lies in
    :data:`SCOPE`, else None."""
    parts = name.split(".")
    if len(parts) < 2 or parts[0] != "gva" or parts[1] not in SCOPE:
        return None
    base = PACKAGE_DIR.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def module_name(path: str | Path) -> str:
    """A source file under PACKAGE_DIR -> its module name (a package's ``__init__``: the package)."""
    rel = Path(path).resolve().relative_to(PACKAGE_DIR.resolve()).with_suffix("")
    parts = ("gva", *rel.parts)
    return ".".join(parts[:-1] if rel.name == "__init__" else parts)


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
    """The :data:`SCOPE` module files that ``path`` (one of them) imports, at module level or inside
    functions (:func:`imported_names`), with the package ``__init__`` files such an import runs;
    :data:`NAMING` modules left out."""
    out: set[Path] = set()
    for name in imported_names(path, module_name(path)):
        parts = name.split(".")
        for i in range(2, len(parts) + 1):  # importing a.b.c runs a/b/__init__.py first
            found = module_file(".".join(parts[:i]))
            if found is not None:
                out.add(found.resolve())
    return out - _naming()


def code_files(roots: Iterable[str | Path] | None = None) -> list[Path]:
    """The source files whose code decides the clips made through ``roots`` (module files).

    :data:`STAGE` and ``roots``, the :data:`SCOPE` modules they import, transitively
    (:func:`imported_modules`: never through a :data:`NAMING` module), then :data:`EXTRA_CODE`.
    ``roots=None``: every SCOPE module but the NAMING ones.
    """
    naming = _naming()
    if roots is None:
        modules = [p.resolve() for p in scope_modules() if p.resolve() not in naming]
    else:
        keep = {(PACKAGE_DIR / STAGE).resolve(), *(Path(p).resolve() for p in roots)} - naming
        todo = list(keep)
        while todo:
            for dep in imported_modules(todo.pop()):
                if dep not in keep:
                    keep.add(dep)
                    todo.append(dep)
        modules = sorted(keep)
    return modules + [PACKAGE_DIR / rel for rel in EXTRA_CODE]


def class_files(cls: type) -> list[Path]:
    """The :data:`SCOPE` modules the classes of ``cls``'s hierarchy are defined in."""
    return sorted({f.resolve() for c in cls.__mro__ if (f := module_file(c.__module__)) is not None})


def generator_code_files(cls: type) -> list[Path]:
    """The source files whose code decides the clips of generator class ``cls``: :func:`code_files`
    rooted at its hierarchy's modules (:func:`class_files`)."""
    return code_files(class_files(cls))


def class_ref(cls: type) -> str:
    """``module:Class`` -- what a generator's registry entry resolves to."""
    return f"{cls.__module__}:{cls.__qualname__}"


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


def key_record(settings: dict[str, Any], curated_hash: str, files: Iterable[str | Path] | None = None,
               generator_class: str | None = None) -> dict[str, Any]:
    """Everything the cache key hashes: settings, data, the generator's class (:func:`class_ref`),
    code (``files``, default all of :func:`code_files`) and library versions (``key.json``)."""
    files = code_files() if files is None else [Path(p) for p in files]
    return {"settings": settings, "curated_hash": curated_hash, "generator_class": generator_class,
            "code_hash": code_hash(files), "code_files": [_display(Path(p)) for p in files],
            "versions": library_versions()}


def cache_key(record: dict[str, Any]) -> str:
    """The cache directory name for a :func:`key_record` (16 hex digits)."""
    blob = json.dumps(record, sort_keys=True)
    return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()
