"""``gva grid`` queues what the bash grids queued: the same experiments, names and settings.

``tests/data/grid_queue.json`` holds every ``dvc`` call that ``scripts/grid.sh`` and
``scripts/paper.sh`` made, as bash scripts (commit 43d505c), for the option sets of :data:`CASES`,
recorded through a stub ``dvc`` on PATH (``python tests/test_grid_equivalence.py --record``
re-records it from the scripts as they are now). The paper grid is half-way through and resumes
with ``--skip-existing``, so its names and settings must not move. Checked here:

* the scripts as they are now make the recorded calls;
* :func:`gva.grid.plan` / :func:`gva.grid.paper_plan`, called directly, give the recorded
  experiments: the same names in the same order, the same ``-S`` overrides (the same multiset, each
  key's values in the same order, so the later one wins alike), the same other arguments in the
  same order, and the params.yaml DVC writes for the experiment (``dvc.utils.hydra.apply_overrides``,
  what ``dvc exp run -S`` runs) byte-identical. The overrides of a preset file come in the file's
  order (nested YAML, grouped by section), not the scripts' arrays' order: that changes no value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gva import grid, presets

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "grid_queue.json"
UNSET = "<unset>"

#: case -> (script, its options). Data and clips directories are made by the test.
CASES: dict[str, tuple[str, list[str]]] = {
    "paper": ("paper.sh", ["--no-start"]),
    "paper-start": ("paper.sh", ["--seeds", "3"]),
    "paper-exploratory": ("paper.sh", ["--seeds", "0 1", "--exploratory", "store64", "--no-start",
                                       "--", "-S", "data.image_size=64"]),
    "grid-default": ("grid.sh", ["--no-start"]),
    "grid-audit-folds": ("grid.sh", ["--audit", "--generators", "repeat motion", "--seeds", "0 1", "--loo",
                                     "geometry bn_drop", "--folds", "2", "--vary-all", "--no-start"]),
    "grid-models-shift": ("grid.sh", ["--generators", "svd cogvideox ltx wan i2vgen tiny-cogvideox", "--control",
                                      "svd", "--seeds", "0", "--preset", "shift", "--no-start",
                                      "--", "-S", "svd.dtype=fp32"]),
    "grid-controls-jobs2": ("grid.sh", ["--generators", "repeat motion", "--control", "repeat motion",
                                        "--no-first", "--seeds", "2 0", "--limit", "100", "--epochs2d", "5",
                                        "--epochs3d", "1", "--jobs", "2"]),
    "grid-reference": ("grid.sh", ["--preset", "reference", "--generators", "motion", "--control", "",
                                   "--seeds", "0", "--no-start"]),
    "grid-vary-all-results": ("grid.sh", ["--generators", "repeat motion", "--control", "repeat motion",
                                          "--vary-all", "--seeds", "0 4", "--limit", "100", "--epochs2d", "10",
                                          "--epochs3d", "1", "--jobs", "1", "--", "-S", "train.image_size=32"]),
}


def _plan(case: str) -> tuple[list[grid.Experiment], int, bool]:
    """(experiments, jobs, start) of each case, from gva.grid's pure functions called directly."""
    scratch, paper = presets.load("grid-scratch"), presets.load("paper")
    d, c = "DATA_DIR", "CLIPS_DIR"
    return {
        "paper": (grid.paper_plan(d, c, base=paper), 1, False),
        "paper-start": (grid.paper_plan(d, c, base=paper, seeds=[3]), 1, True),
        "paper-exploratory": (grid.paper_plan(d, c, base=paper, seeds=[0, 1], exploratory="store64",
                                              extra=["-S", "data.image_size=64"]), 1, False),
        "grid-default": (grid.plan(d, base=scratch), 1, False),
        "grid-audit-folds": (grid.plan(d, base=scratch, audit=True, generators=["repeat", "motion"], seeds=[0, 1],
                                       loo=["geometry", "bn_drop"], folds=2, vary_all=True), 1, False),
        "grid-models-shift": (grid.plan(d, base=scratch,
                                        generators="svd cogvideox ltx wan i2vgen tiny-cogvideox".split(),
                                        control=["svd"], seeds=[0], preset="shift",
                                        extra=["-S", "svd.dtype=fp32"]), 1, False),
        "grid-controls-jobs2": (grid.plan(d, base=scratch, generators=["repeat", "motion"],
                                          control=["repeat", "motion"], first=False, seeds=[2, 0], limit=100,
                                          epochs2d=5, epochs3d=1), 2, True),
        "grid-reference": (grid.plan(d, base=scratch, preset="reference", generators=["motion"], control=[],
                                     seeds=[0]), 1, False),
        "grid-vary-all-results": (grid.plan(d, base=scratch, generators=["repeat", "motion"],
                                            control=["repeat", "motion"], vary_all=True, seeds=[0, 4], limit=100,
                                            epochs2d=10, epochs3d=1, extra=["-S", "train.image_size=32"]), 1, True),
    }[case]


def script_calls(tmp: Path, script: str, options: list[str]) -> list[list[str]]:
    """Run ``scripts/<script>`` with a recording ``dvc`` on PATH, from the repository root; every
    call as ``[GVA_CACHE_DIR or <unset>, *args]``, paths replaced by DATA_DIR, CLIPS_DIR, ROOT."""
    bin_dir, log = tmp / "bin", tmp / "calls"
    bin_dir.mkdir()
    stub = bin_dir / "dvc"
    stub.write_text(f'#!/usr/bin/env bash\n{{ printf "%s\\0" "${{GVA_CACHE_DIR-{UNSET}}}" "$@"; printf "\\n"; }} '
                    f'>> {log}\nexit 0\n')
    stub.chmod(0o755)
    gva = shutil.which("gva") or str(Path(sys.executable).parent / "gva")
    (bin_dir / "gva").symlink_to(gva)
    data, clips = tmp / "data", tmp / "clips"
    data.mkdir()
    clips.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "GVA_CACHE_DIR"}
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    dirs = [str(data)] + ([str(clips)] if script == "paper.sh" else [])
    r = subprocess.run(["bash", str(ROOT / "scripts" / script), *dirs, *options], env=env, cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    calls = [c.rstrip("\0").split("\0") for c in log.read_text().split("\0\n") if c.strip("\0\n")]
    subst = [(str(data.resolve()), "DATA_DIR"), (str(clips.resolve()), "CLIPS_DIR"), (str(ROOT), "ROOT")]

    def norm(word: str) -> str:
        for path, name in subst:
            word = word.replace(path, name)
        return word
    return [[norm(w) for w in call] for call in calls]


def plan_calls(case: str) -> list[list[str]]:
    """The calls gva.grid.queue makes for the case's plan (one worker: GVA_CACHE_DIR = ROOT's cache)."""
    experiments, jobs, start = _plan(case)
    cache = "ROOT/data/.cache" if jobs == 1 else UNSET
    calls = [[cache, *e.dvc_args()] for e in experiments]
    return calls + ([[cache, "queue", "start", "-j", str(jobs)]] if start else [])


def _split(args: list[str]) -> tuple[list[str], list[str]]:
    """(-S values, the other arguments) of one dvc call."""
    sets, other, i = [], [], 0
    while i < len(args):
        if args[i] == "-S":
            sets.append(args[i + 1])
            i += 2
        else:
            other.append(args[i])
            i += 1
    return sets, other


def _params_yaml(tmp: Path, sets: list[str]) -> bytes:
    from dvc.utils.hydra import apply_overrides

    path = tmp / "params.yaml"
    shutil.copyfile(ROOT / "params.yaml", path)
    apply_overrides(path, sets)
    return path.read_bytes()


def assert_same_queue(got: list[list[str]], want: list[list[str]], tmp: Path) -> None:
    """Same calls in the same order; for ``exp run`` calls the same settings (module docstring)."""
    name = lambda c: c[c.index("-n") + 1] if "-n" in c else " ".join(c[1:])  # noqa: E731
    assert [name(c) for c in got] == [name(c) for c in want]
    for g, w in zip(got, want):
        assert g[0] == w[0], f"{name(w)}: GVA_CACHE_DIR {g[0]} != {w[0]}"
        (gs, go), (ws, wo) = _split(g[1:]), _split(w[1:])
        assert go == wo, name(w)
        assert Counter(gs) == Counter(ws), f"{name(w)}: {sorted((Counter(gs) - Counter(ws)).elements())} vs " \
                                           f"{sorted((Counter(ws) - Counter(gs)).elements())}"
        for key in {s.split("=", 1)[0] for s in ws}:
            per_key = lambda sets, key=key: [s for s in sets if s.split("=", 1)[0] == key]  # noqa: E731
            assert per_key(gs) == per_key(ws), f"{name(w)}: {key}"
        if ws:
            assert _params_yaml(tmp, gs) == _params_yaml(tmp, ws), name(w)


def _golden() -> dict[str, list[list[str]]]:
    return {case: v["calls"] for case, v in json.loads(GOLDEN.read_text())["cases"].items()}


@pytest.mark.parametrize("case", CASES)
def test_the_plan_queues_what_the_bash_scripts_queued(case, tmp_path):
    assert_same_queue(plan_calls(case), _golden()[case], tmp_path)


@pytest.mark.parametrize("case", CASES)
def test_the_scripts_queue_what_they_queued(case, tmp_path):
    script, options = CASES[case]
    assert_same_queue(script_calls(tmp_path, script, options), _golden()[case], tmp_path)


def test_the_recording_covers_every_name_of_the_paper_design():
    names = [c[c.index("-n") + 1] for c in _golden()["paper"]]
    assert names == [f"{stem}-s{s}" for s in range(5)
                     for stem in ("r1-svd", "r2-repeat", "r3-static", "r4-ref", "r5-svd-all", "r5-repeat-all")]
    assert [c[c.index("-n") + 1] for c in _golden()["paper-exploratory"]] == ["x-store64-r1-svd-s0",
                                                                              "x-store64-r1-svd-s1"]


def test_the_comparison_catches_a_changed_value_and_a_moved_override(tmp_path):
    want = plan_calls("grid-reference")
    changed = [c[:] for c in want]
    changed[0][changed[0].index("train.lr=0.01")] = "train.lr=0.02"
    with pytest.raises(AssertionError):
        assert_same_queue(changed, want, tmp_path)
    moved = [c[:] for c in want]   # two different keys swapped: no value changes
    i = moved[0].index("svd.generator=motion")
    moved[0][i - 2], moved[0][i] = moved[0][i], moved[0][i - 2]
    assert moved != want
    assert_same_queue(moved, want, tmp_path)
    twice = [c[:] for c in want]   # the same key twice, in the other order: the other value wins
    twice[0][-1:-1] = ["-S", "train.lr=0.02", "-S", "train.lr=0.01"]
    swapped = [c[:] for c in want]
    swapped[0][-1:-1] = ["-S", "train.lr=0.01", "-S", "train.lr=0.02"]
    with pytest.raises(AssertionError):
        assert_same_queue(swapped, twice, tmp_path)
    renamed = [c[:] for c in want]
    renamed[0][renamed[0].index("-n") + 1] = "motion-first-s1"
    with pytest.raises(AssertionError):
        assert_same_queue(renamed, want, tmp_path)


def dump(recorded: str, cases: dict) -> str:
    """The recording as JSON, one call a line."""
    lines = ["{", f' "recorded": {json.dumps(recorded)},', ' "cases": {']
    for i, (case, calls) in enumerate(cases.items()):
        script, options = CASES[case]
        lines.append(f'  {json.dumps(case)}: {{"script": {json.dumps(script)}, "options": {json.dumps(options)}, '
                     f'"calls": [')
        lines += [f"   {json.dumps(c)}{',' if j < len(calls) - 1 else ''}" for j, c in enumerate(calls)]
        lines.append("  ]}" + ("," if i < len(cases) - 1 else ""))
    return "\n".join([*lines, " }", "}"]) + "\n"


def record() -> None:
    """Re-record tests/data/grid_queue.json from the scripts as they are now."""
    import tempfile

    cases = {}
    for case, (script, options) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            cases[case] = script_calls(Path(tmp), script, options)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True).stdout.strip()
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(dump(f"scripts/grid.sh and scripts/paper.sh at {head}, through a stub dvc "
                           f"(tests/test_grid_equivalence.py --record)", cases))


if __name__ == "__main__":
    if sys.argv[1:] == ["--record"]:
        record()
