"""dvc.yaml's deps follow the code: every gva module a stage's command imports is listed.

For every stage of the real dvc.yaml, the module its command runs (``gva <stage>`` -> ``cli.STAGES``)
is followed through every ``import`` inside the package (function-level ones too, since a stage
runs them) and each module file reached must lie under one of the stage's ``deps``, minus the
documented shared plumbing. A forgotten dep would let DVC reuse a stale output after a code change.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from gva import cli
from gva.generate import registry
from gva.generate.provenance import imported_names

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
# Shared plumbing that does not decide what a stage computes (dvc.yaml's header says why).
PLUMBING = {"gva/__init__.py", "gva/config.py", "gva/cli.py", "gva/errors.py", "gva/io.py",
            "gva/paths.py", "gva/device.py", "gva/distributed.py"}


def module_file(name: str) -> Path | None:
    """``gva.a.b`` -> its source file (a module or a package's __init__), None if not in gva."""
    if name != "gva" and not name.startswith("gva."):
        return None
    base = SRC.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def imports_of(path: Path) -> set[str]:
    """Fully qualified names a module imports, at any nesting level
    (:func:`gva.generate.provenance.imported_names`); the generator registry also imports, lazily,
    the modules its entries name (:func:`gva.generate.registry.entry_modules`)."""
    parts = path.relative_to(SRC).with_suffix("").parts
    names = imported_names(path, ".".join(parts[:-1] if path.name == "__init__.py" else parts))
    if path == SRC / "gva" / "generate" / "registry.py":
        names |= set(registry.entry_modules())
    return names


def closure(module: str) -> set[Path]:
    """Every gva source file importing ``module`` executes: parents' __init__ files included."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            path = module_file(".".join(parts[:i]))
            if path is not None and path not in seen:
                seen.add(path)
                todo.extend(imports_of(path))
    return seen


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT)
    return any(rel == Path(d) or Path(d) in rel.parents for d in deps)


def inert(path: Path) -> bool:
    """A module of nothing but a docstring (e.g. a package's __init__) cannot change a result."""
    body = ast.parse(path.read_text()).body
    return all(isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant) for n in body)


def stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(stages()))
def test_stage_deps_cover_the_code_it_imports(stage):
    spec = stages()[stage]
    cmd = spec["cmd"].split()
    assert cmd[:2] == ["gva", stage], f"{stage}: command {spec['cmd']!r} is not `gva {stage}`"
    module = cli.STAGES[stage].split(":")[0]
    deps = [d if isinstance(d, str) else next(iter(d)) for d in spec.get("deps", [])]
    files = closure(module)
    assert module_file(module) in files
    missing = sorted(str(p.relative_to(SRC)) for p in files
                     if str(p.relative_to(SRC)) not in PLUMBING and not covered(p, deps) and not inert(p))
    assert not missing, f"dvc.yaml stage {stage!r} imports {missing} but does not list them in deps"


def test_every_cli_stage_is_in_dvc_yaml_and_back():
    assert set(stages()) == set(cli.STAGES)


def test_the_checker_follows_the_registrys_lazy_entries():
    """The tiny builds are imported only through the registry's entries, and svd_generate lists them."""
    files = {str(p.relative_to(SRC)) for p in closure("gva.generate.stage")}
    assert {"gva/tiny/svd.py", "gva/tiny/tokenizers.py", "gva/generate/ltx.py"} <= files
    assert covered(SRC / "gva/tiny/svd.py", stages()["svd_generate"]["deps"])


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    # the closure of the evaluate stage reaches the inflation code only through checkpoint loading
    files = {str(p.relative_to(SRC)) for p in closure("gva.evaluate.stage")}
    assert "gva/models/inflate.py" in files and "gva/data/loader.py" in files
    assert not covered(SRC / "gva/models/inflate.py", ["src/gva/evaluate"])
