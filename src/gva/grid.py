"""Grids of DVC experiments: planned in Python, queued through DVC, summarised by ``gva report``.

    gva grid DATA_DIR [options] [-- extra dvc exp run args]
    gva grid paper DATA_DIR CLIPS_DIR [--seeds "0 1 2 3 4"] [--exploratory TAG] [...] [-- extra]

(``bash scripts/grid.sh`` and ``bash scripts/paper.sh`` are these two commands.) :func:`plan` and
:func:`paper_plan` are pure: they return the :class:`Experiment` list -- names and ordered ``-S``
overrides -- that :func:`queue` then hands to ``dvc exp run --queue`` one by one, before
``dvc queue start``. Every experiment is checked against :mod:`gva.config` before anything is
queued, so a typo in an extra ``-S`` fails once, naming the key, not once per experiment.

What an experiment is made of, in order (the later ``-S`` wins):

* ``gva grid``: ``data.source`` (absolute: queued experiments run in ``.dvc/tmp/exps/<tmp>``) and
  ``data.limit_per_class``; the ``--base`` preset (``params/grid-scratch.yaml``: resnet18 from
  scratch; :mod:`gva.presets`), with ``--limit``, ``--epochs2d`` / ``--epochs3d`` replacing its
  values when given (without ``--limit``: the base's limit, else null); the
  protocol preset's overrides (:mod:`gva.protocol`; the knobs that need ImageNet weights left out
  when the base trains from scratch); ``svd.generator`` and what its default model needs
  (:func:`generator_overrides`: ``Family.native_size``, ``Family.dtype``); ``train2d.frames``;
  the seeds; the fold; the extra args.
* ``gva grid paper``: ``data.source``, the ``params/paper.yaml`` regime, the run's own settings
  (:data:`PAPER_RUNS`), the seeds, the extra args.

Names: ``<generator>-<first|all>[-<preset>]-s<seed>[-f<fold>]`` (the protocol preset when not
gva; ``--audit``: ``<generator>-<gva|ref|ref-no-KNOB>-s<seed>``); the paper's ``r1-svd-s<s>`` ...
``r5-repeat-all-s<s>`` and ``x-<tag>-r1-svd-s<s>``. Queued seed-major, so a grid cut short still
has complete seeds; ``--skip-existing`` leaves out names that exist as experiments or are queued,
running or done in DVC's queue (read through DVC's Python API: :func:`existing_names`), to finish
a grid that was cut short or reorder one.

Caching: queued experiments run in temporary workspaces; with one worker (``--jobs 1``) they share
this checkout's generation cache (``GVA_CACHE_DIR`` is set to ``$PWD/data/.cache`` unless set), so
the folds of a seed and every configuration with the same clips generate them once. Several
workers keep a cache each (or share the one ``GVA_CACHE_DIR`` names: a run removes only the
unfinished chunk files of killed runs, never one a live run is writing). While a grid runs, leave ``src/`` alone: queued experiments import gva from this
checkout (an editable install), while DVC hashes the code snapshot they were queued with.

Afterwards: ``dvc exp show --json > exps.json && gva report --exp-json exps.json --out reports``.
Stopping: ``dvc queue remove --queued``, then ``dvc queue kill <running name>`` (``dvc queue stop
--kill`` SIGKILLs DVC's task only: the stage it was running goes on as an orphan; ``pgrep -f
gva.cli``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, Final

from gva import presets, protocol
from gva.errors import ConfigError

#: The leave-one-out knobs of ``--audit`` unless ``--loo`` says otherwise.
LOO = ("geometry", "select", "bn_drop")
#: ``dvc queue`` states whose names count as existing for ``--skip-existing`` (not Failed).
EXISTING_STATES = ("Queued", "Running", "Success")
TARGET = "dvc.yaml"   # leaves out data.dvc (the official download): data.source is local
#: The paragraphs of this docstring that ``gva grid --help`` shows.
NOTES = ("Names:", "Caching:", "Afterwards:", "Stopping:")


class _FromBase(Enum):
    TOKEN = "the base preset's"


#: :func:`plan`'s ``limit`` when none was given: the base preset's ``data.limit_per_class``, else null.
FROM_BASE: Final = _FromBase.TOKEN


@dataclass(frozen=True)
class Experiment:
    """One queued experiment: its name and its ``-S`` overrides in order, then the extra args."""

    name: str
    overrides: tuple[str, ...]
    extra: tuple[str, ...] = ()

    def dvc_args(self) -> list[str]:
        """``exp run --queue -n NAME -S k=v ... EXTRA dvc.yaml``: the ``dvc`` call that queues it."""
        sets = [a for o in self.overrides for a in ("-S", o)]
        return ["exp", "run", "--queue", "-n", self.name, *sets, *self.extra, TARGET]

    def all_overrides(self) -> list[str]:
        """Its overrides, then those of the extra args' ``-S`` / ``--set-param``."""
        return [*self.overrides, *set_params(self.extra)]


def set_params(args: Sequence[str]) -> list[str]:
    """The ``key=value`` of every ``-S`` / ``--set-param`` in ``dvc exp run`` args."""
    out = []
    for i, arg in enumerate(args):
        if arg in ("-S", "--set-param") and i + 1 < len(args):
            out.append(args[i + 1])
        elif arg.startswith("--set-param="):
            out.append(arg.split("=", 1)[1])
        elif arg.startswith("-S") and len(arg) > 2:
            out.append(arg[2:].lstrip("="))
    return out


def _set(overrides: list[str], key: str, value: Any) -> list[str]:
    """``overrides`` with ``key`` set to ``value``: in place where it is already set, else appended."""
    item = f"{key}={protocol.format_value(value)}"
    out = [item if o.partition("=")[0] == key else o for o in overrides]
    return out if item in out else [*out, item]


def generator_overrides(name: str) -> list[str]:
    """What generator ``name``'s default model needs beyond a grid's common settings: the canvas
    it is fixed to (``Family.native_size``: cogvideox 480x720) and the dtype it is meant for
    (``Family.dtype``: cogvideox, ltx, wan bf16). Nothing for the others, nor for the tiny builds
    (their own sizes); an unknown generator is a :class:`ConfigError`."""
    from gva.generate.registry import generator_class

    family = getattr(generator_class(name), "family", None)
    if family is None or family.name != name:
        return []
    out = []
    native, dtype = getattr(family, "native_size", None), getattr(family, "dtype", None)  # I2VFamily's facts
    if native:
        height, width = native
        out += [f"svd.height={height}", f"svd.width={width}"]
    if dtype:
        out.append(f"svd.dtype={dtype}")
    return out


def protocol_overrides(preset: str, without: Iterable[str] = (), pretrained: bool = True) -> list[str]:
    """``gva protocol PRESET [--without ...] [--from-scratch] --lines`` as a list."""
    return presets.lines(protocol.overrides(preset, tuple(without), pretrained=pretrained))


def plan(data_dir: str, *, base: Sequence[str] = (), generators: Sequence[str] = ("repeat", "motion"),
         control: Sequence[str] = ("motion",), first: bool = True, seeds: Sequence[int] = (0, 1, 2),
         vary_all: bool = False, folds: int | None = None, limit: int | None | _FromBase = FROM_BASE,
         epochs2d: int | None = None, epochs3d: int | None = None, preset: str = "gva",
         audit: bool = False, loo: Sequence[str] = LOO, pretrained: bool = False,
         extra: Sequence[str] = ()) -> list[Experiment]:
    """The experiments of a grid, in queue order (seed-major, then generator, then variant, then
    fold). ``base``: the base preset's overrides (:func:`gva.presets.load`); ``limit``, ``epochs2d``,
    ``epochs3d``: replace the base's values (``limit`` None: the whole split; :data:`FROM_BASE`, the
    default: the base's limit, else null); ``pretrained``: whether
    it starts from ImageNet weights (else the protocol knobs that need them are left out);
    ``control``: generators that also get the ``train2d.frames=all`` control; ``first=False``:
    only those controls; ``audit``: per generator and seed, gva's protocol, the reference protocol
    and the reference with each ``loo`` knob set back to gva's (``preset`` is then unused);
    ``folds``: every experiment as ``folds`` runs, ``data.fold`` 0..K-1 (``-f<k>``). ``generators``,
    ``control`` and ``loo`` may be space-separated strings, as the command line takes them."""
    generators, control, loo = (x.split() if isinstance(x, str) else x for x in (generators, control, loo))
    if isinstance(limit, _FromBase):   # the base's limit wins over the leading null
        common = [f"data.source={data_dir}", "data.limit_per_class=null", *base]
    else:                              # an explicit limit replaces the base's
        common = [f"data.source={data_dir}", f"data.limit_per_class={protocol.format_value(limit)}",
                  *(o for o in base if o.partition("=")[0] != "data.limit_per_class")]
    if epochs2d is not None:
        common = _set(common, "train2d.epochs", epochs2d)
    if epochs3d is not None:
        common = _set(common, "train3d.epochs", epochs3d)
    protocol.overrides(preset, tuple(loo) if audit else ())   # unknown presets and knobs: fail first
    runs: list[Experiment] = []
    for seed in seeds:
        seed_args = [f"train.seed={seed}"] + ([f"svd.seed={seed}", f"data.seed={seed}"] if vary_all else [])
        for gen in generators:
            # (name stem, train2d.frames, protocol preset, knobs set back to gva's)
            variants: list[tuple[str, str, str, tuple[str, ...]]]
            if audit:
                variants = [(f"{gen}-gva", "first", "gva", ()), (f"{gen}-ref", "first", "reference", ()),
                            *((f"{gen}-ref-no-{k.replace('_', '-')}", "first", "reference", (k,)) for k in loo)]
            else:
                tag = "" if preset == "gva" else f"-{preset}"
                variants = []
                if first:
                    variants.append((f"{gen}-first{tag}", "first", preset, ()))
                if gen in control:
                    variants.append((f"{gen}-all{tag}", "all", preset, ()))
            for stem, frames, proto, without in variants:
                overrides = [*common, *protocol_overrides(proto, without, pretrained), f"svd.generator={gen}",
                             *generator_overrides(gen), f"train2d.frames={frames}", *seed_args]
                name = f"{stem}-s{seed}"
                if folds is None:
                    runs.append(Experiment(name, tuple(overrides), tuple(extra)))
                    continue
                for k in range(folds):
                    runs.append(Experiment(f"{name}-f{k}", (*overrides, f"data.folds={folds}", f"data.fold={k}"),
                                           tuple(extra)))
    return runs


#: The paper-table experiment's scoring: 2-D also on generated frame 0 and on the frame average.
PAPER_SCORES = ("evaluate.extra_protocols=[frame0,frames_mean]",)
#: The runs of the paper-table experiment (issue 24), declared before any run: name stem -> what it
#: adds to the regime, ``{clips}`` standing for CLIPS_DIR. r2's static clips take the reference
#: protocol's geometry and codec knobs (the SVD clips' 1024x576 and H.264); r4 is the reference
#: protocol with those two left out (already in the clips), its 2-D model trained with flip +
#: shift as the reference's was; r5 compares 2-D models only (train3d.epochs=1).
PAPER_RUNS: dict[str, tuple[str, ...]] = {
    "r1-svd": ("svd.generator=reference", "svd.model={clips}", *PAPER_SCORES),
    "r2-repeat": ("svd.generator=repeat",
                  *presets.lines({**protocol.knob("geometry").reference, **protocol.knob("codec").reference}),
                  *PAPER_SCORES),
    "r3-static": ("svd.generator=reference-static", "svd.model={clips}", *PAPER_SCORES),
    "r4-ref": ("svd.generator=reference", "svd.model={clips}",
               *protocol_overrides("reference", ("geometry", "codec")), "train.augment=true"),
    "r5-svd-all": ("svd.generator=reference", "svd.model={clips}", *PAPER_SCORES,
                   "train2d.frames=all", "train3d.epochs=1"),
    "r5-repeat-all": ("svd.generator=repeat",
                      *presets.lines({**protocol.knob("geometry").reference, **protocol.knob("codec").reference}),
                      *PAPER_SCORES, "train2d.frames=all", "train3d.epochs=1"),
}


def paper_plan(data_dir: str, clips_dir: str, *, base: Sequence[str] = (), seeds: Sequence[int] = (0, 1, 2, 3, 4),
               exploratory: str | None = None, extra: Sequence[str] = ()) -> list[Experiment]:
    """The paper-table experiment, seed-major: per seed s (train.seed = data.seed = s) every run of
    :data:`PAPER_RUNS` as ``<stem>-s<s>``; ``exploratory=TAG``: not the declared design, only r1,
    as ``x-TAG-r1-svd-s<s>``. ``base``: the regime (``params/paper.yaml``)."""
    runs: list[Experiment] = []
    stems = ["r1-svd"] if exploratory else list(PAPER_RUNS)
    for seed in seeds:
        for stem in stems:
            own = [o.replace("{clips}", clips_dir) for o in PAPER_RUNS[stem]]
            name = f"x-{exploratory}-{stem}-s{seed}" if exploratory else f"{stem}-s{seed}"
            overrides = [f"data.source={data_dir}", *base, *own, f"train.seed={seed}", f"data.seed={seed}"]
            runs.append(Experiment(name, tuple(overrides), tuple(extra)))
    return runs


# ---------------------------------------------------------------- queueing ---------------------

def names_from(listed: Mapping[str, Iterable[tuple[str | None, Any]]],
               status: Iterable[Mapping[str, Any]]) -> set[str]:
    """Existing names from ``Experiments.ls(all_commits=True)`` (baseline -> [(name, rev)]) and
    ``celery_queue.status()`` (dicts with name and status; Failed ones do not count)."""
    names = {name for exps in listed.values() for name, _ in exps if name}
    names |= {e["name"] for e in status if e.get("name") and e.get("status") in EXISTING_STATES}
    return names


def existing_names(root: str | Path = ".") -> set[str]:
    """Names of this repository's experiments (every commit's) and of its queue's queued, running
    and finished tasks: ``dvc exp list --all-commits --name-only`` and ``dvc queue status``,
    through DVC's Python API."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return names_from(repo.experiments.ls(all_commits=True), repo.experiments.celery_queue.status())


def queue_busy(root: str | Path = ".") -> bool:
    """Whether DVC's queue still has queued or running tasks."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        return any(e.get("status") in ("Queued", "Running") for e in repo.experiments.celery_queue.status())


def pending(experiments: Sequence[Experiment], existing: Iterable[str]) -> tuple[list[Experiment], list[Experiment]]:
    """(to queue, to skip): the experiments whose names are not / are in ``existing``."""
    existing = set(existing)
    return [e for e in experiments if e.name not in existing], [e for e in experiments if e.name in existing]


def check(experiments: Sequence[Experiment], params: Mapping[str, Any]) -> None:
    """Every experiment's overrides (extra ``-S`` included) applied to ``params`` pass
    :mod:`gva.config`; the first that does not is a :class:`ConfigError` naming it and the key."""
    names = [e.name for e in experiments]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"experiment names repeat: {', '.join(dupes)}")
    for e in experiments:
        presets.check(e.all_overrides(), params, f"experiment {e.name}")


def cache_env(jobs: int, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The environment for DVC: with one worker, ``GVA_CACHE_DIR`` is this checkout's cache
    (absolute) unless already set, so queued experiments share it; several workers: unchanged."""
    from gva.paths import DEFAULT_CACHE_DIR

    out = dict(os.environ if env is None else env)
    if jobs == 1 and not out.get("GVA_CACHE_DIR"):
        out["GVA_CACHE_DIR"] = str((cwd or Path.cwd()) / DEFAULT_CACHE_DIR)
    return out


def run_dvc(args: Sequence[str], env: Mapping[str, str]) -> None:
    """``dvc ARGS`` (the ``dvc`` on PATH); a failure raises ``CalledProcessError``."""
    subprocess.run(["dvc", *args], check=True, env=dict(env))


def queue(experiments: Sequence[Experiment], *, jobs: int = 1, start: bool = True, wait: bool = False,
          skip_existing: bool = False, dry_run: bool = False,
          dvc: Callable[[Sequence[str], Mapping[str, str]], None] | None = None,
          existing: Callable[[], set[str]] | None = None, busy: Callable[[], bool] | None = None,
          sleep: Callable[[float], None] = time.sleep, out: Callable[[str], None] = print) -> int:
    """Queue ``experiments`` (leaving out existing names with ``skip_existing``), then start the
    queue with ``jobs`` workers unless ``start`` is false, then with ``wait`` block until it is
    empty. ``dry_run``: print the ``dvc`` calls instead. Returns how many were queued.
    ``dvc``, ``existing``, ``busy``: default :func:`run_dvc`, :func:`existing_names`, :func:`queue_busy`."""
    dvc, existing, busy = dvc or run_dvc, existing or existing_names, busy or queue_busy
    todo, skipped = pending(experiments, existing()) if skip_existing else (list(experiments), [])
    skipped_names = {e.name for e in skipped}
    env = cache_env(jobs)
    for e in experiments:
        if e.name in skipped_names:
            out(f"skip {e.name} (exists)")
        elif dry_run:
            out(shlex.join(["dvc", *e.dvc_args()]))
        else:
            out(f"queue {e.name}")
            dvc(e.dvc_args(), env)
    if dry_run or not start:
        return len(todo)
    dvc(["queue", "start", "-j", str(jobs)], env)
    if wait:
        while busy():
            sleep(30)
        dvc(["queue", "status"], env)
    return len(todo)
