"""The documentation is checked, not trusted: README.md, CHANGELOG.md and docs/*.md.

1. Links: every relative link (and ``#anchor``) resolves to a file of the repository and, for an
   anchor, to a heading of the target file under GitHub's slug rules (the rendered text, lower
   case, punctuation other than ``-`` and ``_`` dropped, spaces to hyphens; repeated headings get
   ``-1``, ``-2``, ...).
2. Commands: every ``gva ...``, ``dvc ...``, ``bash scripts/...``, ``python benchmarks/...`` and
   ``pytest tests/...`` command quoted in a fenced code block (shell continuations joined, comments
   dropped, ``$(...)``, ``&&``, ``|`` and ``;`` split) names a subcommand that exists, with flags it
   accepts: ``gva <sub>``'s flags appear in ``gva <sub> --help`` (``gva protocol`` is run: it only
   prints; ``gva preset NAME`` loads the preset); ``dvc`` commands go through DVC's own argument
   parser; a script's ``--option`` appears in the script's code, or in the help of the ``gva grid``
   command a wrapper script execs; every ``-S key=value`` names a key of params.yaml.
3. Layout: the README's tree lists every top-level module and subpackage of src/gva, and
   docs/development.md's tree every module; every path either tree names exists.

Everything is parsed in-process: no network, no subprocess, a few seconds.
"""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import unicodedata
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 200          # issue 27: a README a newcomer reads in five minutes
# Outputs of the paper-table experiment (scripts/paper.sh, reports/paper/design.yaml), still
# running: links to them may exist before the files do, and are checked as usual once they do.
PENDING = {"reports/paper/forest.png", "reports/paper/results.md"}
SHELL_INFO = {"", "bash", "sh", "shell", "console"}


# ---------------------------------------------------------------- Markdown ---------------------

def fenced_blocks(text: str) -> list[tuple[str, str, int]]:
    """(info string, body, first line number) of every fenced code block."""
    blocks, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = re.match(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if m:
            fence, info, start = m.group(1), m.group(2), i + 1
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                i += 1
            blocks.append((info, "\n".join(lines[start:i]), start + 1))
        i += 1
    return blocks


def prose(text: str, keep_code_spans: bool = False) -> str:
    """The text with fenced blocks blanked (line numbers kept) and, unless ``keep_code_spans``,
    inline code removed (a heading's code counts in its anchor, so anchors keep it)."""
    out, fence = [], None
    for line in text.split("\n"):
        m = re.match(r"^\s*(`{3,}|~{3,})", line)
        if fence is None and m:
            fence = m.group(1)
            out.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            out.append("")
        else:
            out.append(line if keep_code_spans else re.sub(r"(`+)(?:(?!\1).)+?\1", "", line))
    return "\n".join(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's Markdown text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # links and images: their text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").strip().lower()
    keep = (c for c in text if c in " -" or unicodedata.category(c)[0] in "LMN"
            or unicodedata.category(c) == "Pc")
    return "".join(keep).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    text = prose(path.read_text(encoding="utf-8"), keep_code_spans=True)
    for line in text.split("\n"):
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            base = slug(m.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
        out.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", line))
    return out


def links(path: Path) -> list[tuple[int, str]]:
    found = []
    for n, line in enumerate(prose(path.read_text(encoding="utf-8")).split("\n"), 1):
        for m in re.finditer(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", line):
            found.append((n, m.group(1)))
        m = re.match(r"^\s*\[[^\]]+\]:\s*(\S+)", line)
        if m:
            found.append((n, m.group(1)))
    return found


def test_docs_exist():
    for name in ("README.md", "CHANGELOG.md", "docs/install.md", "docs/experiments.md",
                 "docs/data.md", "docs/generators.md", "docs/models.md", "docs/evaluation.md",
                 "docs/statistics.md", "docs/protocol.md", "docs/results.md",
                 "docs/benchmarks.md", "docs/development.md"):
        assert (ROOT / name).is_file(), name


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail to docs/ (at most {README_MAX_LINES})"


def test_every_doc_is_in_the_readme_index():
    linked = {target.split("#")[0] for _, target in links(ROOT / "README.md")}
    missing = [f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in linked]
    assert not missing, f"docs not linked from README.md: {missing}"


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(path):
    bad = []
    for line, target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):           # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        rel = dest.relative_to(ROOT).as_posix() if dest.is_relative_to(ROOT) else None
        if rel is None:
            bad.append(f"{line}: {target}: outside the repository")
        elif not dest.exists():
            if rel not in PENDING:
                bad.append(f"{line}: {target}: no such file")
        elif anchor:
            if dest.suffix != ".md":
                bad.append(f"{line}: {target}: an anchor into a non-Markdown file")
            elif anchor not in anchors(dest):
                bad.append(f"{line}: {target}: no heading #{anchor} in {rel}")
    assert not bad, f"{path.relative_to(ROOT)}:\n" + "\n".join(bad)


def test_doc_references_in_code_and_config_resolve():
    """params.yaml and dvc.yaml comments, scripts, code and tests point into docs/ by path and anchor."""
    files = [ROOT / "params.yaml", *(ROOT / "params").glob("*.yaml"), ROOT / "dvc.yaml", ROOT / ".ci" / "run",
             *(ROOT / "scripts").glob("*.sh"), *(ROOT / "src").rglob("*.py"),
             *(ROOT / "benchmarks").glob("*.py"), *(ROOT / "tests").glob("*.py")]
    bad = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
            for m in re.finditer(r"\bdocs/([\w-]+\.md)(?:#([\w-]+))?", line):
                target = ROOT / "docs" / m.group(1)
                where = f"{path.relative_to(ROOT)}:{n}: {m.group(0)}"
                if not target.is_file():
                    bad.append(f"{where}: no such doc")
                elif m.group(2) and m.group(2) not in anchors(target):
                    bad.append(f"{where}: no such heading")
    assert not bad, "\n".join(bad)


def test_slug_rules():
    assert slug("Generation: `svd_generate` → `data/clips/`") == "generation-svd_generate--dataclips"
    assert slug("Where a 2-D → 3-D gap can come from") == "where-a-2-d--3-d-gap-can-come-from"
    assert slug("The reference run's clips: `svd.generator: reference`") == \
        "the-reference-runs-clips-svdgenerator-reference"


# ---------------------------------------------------------------- commands ---------------------

def _split_top(text: str, seps: tuple[str, ...]) -> list[str]:
    """Split at separators outside quotes, brackets and parentheses."""
    parts, cur, quote, depth, i = [], "", None, 0, 0
    while i < len(text):
        c = text[i]
        if quote:
            cur += c
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            cur += c
        elif c in "[(":
            depth += 1
            cur += c
        elif c in "])":
            depth -= 1
            cur += c
        else:
            sep = next((s for s in seps if depth == 0 and text.startswith(s, i)), None)
            if sep:
                parts.append(cur)
                cur = ""
                i += len(sep)
                continue
            cur += c
        i += 1
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def _strip_comment(line: str) -> str:
    quote = None
    for i, c in enumerate(line):
        if quote:
            if c == quote:
                quote = None
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _substitutions(line: str) -> tuple[str, list[str]]:
    """``$(...)`` replaced by a marker; the inner commands returned."""
    inner = []
    while (start := line.find("$(")) >= 0:
        depth, j = 0, start + 1
        while j < len(line):
            depth += {"(": 1, ")": -1}.get(line[j], 0)
            if depth == 0:
                break
            j += 1
        inner.append(line[start + 2:j])
        line = f"{line[:start]}__SUBST{len(inner) - 1}__{line[j + 1:]}"
    return line, inner


def commands() -> list[tuple[str, str]]:
    """(where, command) for every command of interest in a shell code block."""
    found = []
    for path in DOCS:
        for info, body, first in fenced_blocks(path.read_text(encoding="utf-8")):
            if info not in SHELL_INFO:
                continue
            logical, start = "", None
            for k, raw in enumerate(body.split("\n")):
                line = _strip_comment(raw).rstrip()
                start = first + k if start is None else start
                if line.endswith("\\"):
                    logical += line[:-1] + " "
                    continue
                logical += line
                text, inner = _substitutions(logical.strip())
                for part in [*_split_top(text, ("&&", "||", ";", "|")), *inner]:
                    part = re.sub(r"__SUBST(\d+)__", lambda m, inner=inner: f"$({inner[int(m.group(1))]})", part)
                    part = re.sub(r"^\$\s+", "", part)
                    if re.match(r"(gva|dvc|bash scripts/|scripts/|python benchmarks/|python -m pytest|pytest)\b", part):
                        found.append((f"{path.relative_to(ROOT)}:{start}", part))
                logical, start = "", None
    return found


COMMANDS = commands()


def tokens(command: str) -> list[str]:
    words = shlex.split(command)
    out, skip = [], False
    for w in words:
        if skip:
            skip = False
        elif w in (">", ">>", "<", "2>", "&>"):
            skip = True
        elif not re.match(r"^\d?>&?\d?$", w):
            out.append(w)
    return out


def params_keys() -> set[str]:
    params = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
    keys = set()

    def walk(node, prefix):
        for k, v in node.items():
            keys.add(prefix + k)
            if isinstance(v, dict):
                walk(v, prefix + k + ".")
    walk(params, "")
    return keys


PARAMS = params_keys()


def check_set_params(words: list[str]) -> list[str]:
    bad = []
    for i, w in enumerate(words):
        value = words[i + 1] if w in ("-S", "--set-param") and i + 1 < len(words) else None
        if value is not None:
            key = value.split("=", 1)[0]
            if "=" not in value or key not in PARAMS:
                bad.append(f"-S {value}: no key {key!r} in params.yaml")
    return bad


def _run_captured(fn, *args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            rc = fn(*args)
            rc = rc if isinstance(rc, int) else 0      # DVC's parser returns its namespace
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # noqa: BLE001 -- DVC's parser raises its own error type
            rc, _ = 2, out.write(f"{type(exc).__name__}: {exc}")
    return rc or 0, out.getvalue()


_HELP: dict[str, str] = {}


def gva_help(sub: str) -> str:
    """``gva <sub> --help``; ``sub`` may be several words (``grid paper``)."""
    if sub not in _HELP:
        from gva import cli
        _HELP[sub] = _run_captured(cli.main, [*sub.split(), "--help"])[1]
    return _HELP[sub]


def flag_in(flag: str, text: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text) is not None


def flags(words: list[str]) -> list[str]:
    out = []
    for w in words:
        w = w.strip("[]")
        if w == "--" or not re.match(r"^--?[A-Za-z]", w):
            continue
        out.append(w.split("=", 1)[0])
    return out


def protocol_expansion(command: str) -> list[str] | None:
    """The overrides ``gva protocol ...`` prints (it has no side effects)."""
    words = tokens(command)
    if words[:2] != ["gva", "protocol"]:
        return None
    from gva import protocol
    rc, out = _run_captured(protocol.main, words[2:])
    return shlex.split(out) if rc == 0 else None


def check_gva(command: str) -> list[str]:
    from gva import cli
    words = tokens(command)[1:]
    while words and words[0] in ("-v", "--verbose", "--params"):
        words = words[2:] if words[0] == "--params" else words[1:]
    subs = {*cli.STAGES, "predict", *cli.OWN_COMMANDS}
    if words in (["--help"], ["-h"]):
        return []
    if not words or words[0] not in subs:
        return [f"gva: no subcommand in {subs}"]
    sub, rest = words[0], words[1:]
    if sub == "grid" and rest[:1] == ["paper"]:
        sub, rest = "grid paper", rest[1:]
    own = rest[:rest.index("--")] if "--" in rest else rest
    bad = [f"gva {sub}: {f} not in `gva {sub} --help`" for f in flags(own) if not flag_in(f, gva_help(sub))]
    if "--" in rest:
        bad += check_set_params(rest[rest.index("--") + 1:])
    if sub == "preset" and own and not own[0].isupper():
        from gva import presets
        from gva.errors import ConfigError
        name = own[0]
        try:
            presets.load(ROOT / "params" / f"{name}.yaml" if "/" not in name else ROOT / name, ROOT / "params.yaml")
        except ConfigError as exc:
            bad.append(f"gva preset {name}: {exc}")
    if sub == "protocol" and not any(w.startswith("[") or w.isupper() for w in rest):
        from gva import protocol
        rc, out = _run_captured(protocol.main, rest)
        if rc != 0:
            bad.append(f"gva protocol {' '.join(rest)}: exit {rc}: {out.strip()}")
        else:
            bad += check_set_params(shlex.split(out) if "-S" in out else
                                    [x for line in out.split() for x in ("-S", line)])
    return bad


def check_dvc(command: str, inner: list[str]) -> list[str]:
    from dvc.cli import parse_args
    words = []
    for w in tokens(command)[1:]:
        m = re.fullmatch(r"__SUBST(\d+)__", w)
        expansion = protocol_expansion(inner[int(m.group(1))]) if m else None
        words += expansion if expansion is not None else ([] if m else [w])
    synopsis = any(w.startswith("[") or w in ("...", "…") for w in words)
    if synopsis:   # a usage line: the subcommand must exist
        positional = []
        for w in words:
            if w.startswith("-") or w.startswith("["):
                break
            positional.append(w)
        words = positional + ["--help"]
    rc, out = _run_captured(parse_args, words)
    bad = [] if rc == 0 or (synopsis and "usage:" in out) else [f"dvc {' '.join(words)}: {out.strip()[-300:]}"]
    return bad + check_set_params(words)


def _script_code(path: Path) -> str:
    return "\n".join(_strip_comment(line) for line in path.read_text(encoding="utf-8").split("\n"))


def check_script(command: str) -> list[str]:
    words = tokens(command)
    if words[0] == "bash":
        words = words[1:]
    script = ROOT / words[0]
    if not script.is_file():
        return [f"{words[0]}: no such script"]
    code = _script_code(script)
    for m in re.finditer(r"\bexec gva (grid(?: paper)?)\b", code):   # a wrapper: its command's options
        code += "\n" + gva_help(m.group(1))
    rest = words[1:]
    own = rest[:rest.index("--")] if "--" in rest else rest
    bad = [f"{words[0]}: {f} is not among its options" for f in flags(own)
           if f.startswith("--") and not flag_in(f, code)]
    return bad + check_set_params(rest)


def check_python(command: str) -> list[str]:
    words = tokens(command)
    if words[:3] == ["python", "-m", "pytest"] or words[0] == "pytest":
        return [f"{w}: no such test file" for w in words
                if re.match(r"tests/", w) and not (ROOT / w.split("::")[0]).exists()]
    script = ROOT / words[1]
    if not script.is_file():
        return [f"{words[1]}: no such benchmark"]
    code = _script_code(script)
    return [f"{words[1]}: {f} not among its options" for f in flags(words[2:])
            if f.startswith("--") and not flag_in(f, code)]


@pytest.mark.parametrize("where,command", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_parses(where, command):
    line, inner = _substitutions(command)
    if command.startswith("gva"):
        bad = check_gva(command)
    elif command.startswith("dvc"):
        bad = check_dvc(line, inner)
    elif re.match(r"(bash )?scripts/", command):
        bad = check_script(command)
    else:
        bad = check_python(command)
    assert not bad, f"{where}: {command}\n" + "\n".join(bad)


def test_commands_are_found():
    """The extraction itself: the README's main commands are among those checked."""
    quoted = " ".join(c for _, c in COMMANDS)
    for must in ("bash scripts/repro.sh --offline", "bash scripts/test.sh", "dvc exp run -S svd.steps=25",
                 "dvc metrics diff", "gva report", "gva predict"):
        assert must in quoted, must


def test_ci_runs_the_readmes_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = _script_code(ROOT / ".ci" / "run")
    assert "bash scripts/test.sh" in readme
    assert re.search(r"^\s*bash scripts/test\.sh\b", ci, re.M), ".ci/run must run the README's `bash scripts/test.sh`"


def test_checks_catch_mistakes():
    assert check_gva("gva report --no-such-flag")
    assert check_gva("gva nonsense")
    assert check_dvc("dvc exp frobnicate", [])
    assert check_dvc("dvc exp run -S svd.no_such_knob=1", [])
    assert check_script("bash scripts/grid.sh DATA_DIR --no-such-option")
    assert not check_script("bash scripts/grid.sh DATA_DIR --folds 3 -- -S train.image_size=32")
    assert check_script("bash scripts/paper.sh DATA_DIR CLIPS_DIR --folds 3")   # gva grid's, not paper's
    assert not check_script("bash scripts/paper.sh DATA_DIR CLIPS_DIR --exploratory x -- -S data.image_size=64")
    assert check_gva("gva grid DATA_DIR --no-such-option")
    assert check_gva("gva grid DATA_DIR -- -S train.no_such_knob=1")
    assert not check_gva("gva grid paper DATA_DIR CLIPS_DIR --exploratory x --dry-run")
    assert check_gva("gva preset no-such-preset")
    assert not check_gva("gva preset offline --lines")
    assert _split_top("a && b | c; d", ("&&", "||", ";", "|")) == ["a", "b", "c", "d"]
    assert _split_top("gva predict [--run DIR | --checkpoint PATH]", ("|",)) == \
        ["gva predict [--run DIR | --checkpoint PATH]"]


# ---------------------------------------------------------------- layout -----------------------

def tree_after(path: Path, heading_slug: str) -> list[str]:
    """The paths of the first fenced block after the heading: one name per line, indented by
    two spaces a level, directories ending in ``/``; what follows the name is its description."""
    text = path.read_text(encoding="utf-8")
    lines, found = text.split("\n"), False
    for i, line in enumerate(lines):
        m = re.match(r"^#{1,6}\s+(.*)$", line)
        if m and slug(m.group(1)) == heading_slug:
            found = True
        if found and re.match(r"^\s*```", line):
            body = []
            for rest in lines[i + 1:]:
                if re.match(r"^\s*```", rest):
                    break
                body.append(rest)
            break
    else:
        raise AssertionError(f"{path.name}: no heading #{heading_slug} followed by a code block")
    paths, stack = [], []
    for line in body:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip(" "))
        assert indent % 2 == 0, f"{path.name}: odd indentation: {line!r}"
        depth, name = indent // 2, line.split()[0]
        stack = stack[:depth]
        assert len(stack) == depth, f"{path.name}: {name} is indented below no directory"
        paths.append("".join(stack) + name)
        if name.endswith("/"):
            stack.append(name)
    return paths


def gva_files() -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / "src" / "gva").rglob("*.py")
            if "__pycache__" not in p.parts}


def test_readme_layout_matches_src():
    listed = tree_after(ROOT / "README.md", "layout")
    missing = [p for p in listed if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"README layout names paths that do not exist: {missing}"
    top = {p.relative_to(ROOT).as_posix() + ("/" if p.is_dir() else "")
           for p in (ROOT / "src" / "gva").iterdir()
           if (p.suffix == ".py" and p.name != "__init__.py") or (p / "__init__.py").is_file()}
    assert not top - set(listed), f"README layout lacks: {sorted(top - set(listed))}"


def test_development_layout_lists_every_module():
    listed = tree_after(ROOT / "docs" / "development.md", "code-layout")
    missing = [p for p in listed if not (ROOT / p.rstrip("/")).exists()]
    assert not missing, f"docs/development.md layout names paths that do not exist: {missing}"
    unlisted = gva_files() - set(listed)
    assert not unlisted, f"docs/development.md layout lacks: {sorted(unlisted)}"
