"""``gva grid``'s command line: options -> :func:`gva.grid.plan` / :func:`gva.grid.paper_plan` ->
checked -> :func:`gva.grid.queue`. What a grid is, names, caching: :mod:`gva.grid`."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gva import grid, presets, protocol
from gva.errors import ConfigError
from gva.grid import LOO, NOTES, check, paper_plan, plan, queue, set_params


def _words(text: str) -> list[str]:
    return text.replace(",", " ").split()


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(w) for w in _words(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers, got {text!r}") from None
    if any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"seeds are >= 0, got {text!r}")
    return seeds


def _count(flag: str, low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} is an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{flag} must be at least {low}, got {value}")
        return value
    return parse


def _limit(text: str) -> int | None:
    return None if text.lower() in ("null", "none", "") else _count("--limit", 1)(text)


def _existing_path(kind: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        # absolute: queued experiments run in .dvc/tmp/exps/<tmp>, where a relative path means nothing
        try:
            return str(Path(text).resolve(strict=True))
        except (OSError, RuntimeError):
            raise argparse.ArgumentTypeError(f"{text}: no such {kind} directory") from None
    return parse


def _queue_options(p: argparse.ArgumentParser, jobs: bool) -> None:
    if jobs:
        p.add_argument("--jobs", type=_count("--jobs", 1), default=1,
                       help="dvc queue workers, one per 2 CPU cores at most (default 1: they share this "
                            "checkout's generation cache through GVA_CACHE_DIR)")
    p.add_argument("--no-start", dest="start", action="store_false",
                   help="only queue; start later with `dvc queue start -j N`")
    p.add_argument("--skip-existing", action="store_true",
                   help="leave out names that already exist as experiments or are queued / running / done "
                        "(to finish a grid that was cut short, or reorder one)")
    p.add_argument("--wait", action="store_true", help="after starting, block until the queue is empty")
    p.add_argument("--dry-run", action="store_true",
                   help="print the `dvc exp run --queue` calls instead of making them")


def _notes() -> str:
    """The paragraphs of this module's docstring named in :data:`NOTES`, as plain text."""
    text = "\n\n".join(par for par in (grid.__doc__ or "").split("\n\n") if par.startswith(NOTES))
    return re.sub(r":\w+:`([^`]+)`", r"\1", text).replace("``", "`")


def grid_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gva grid", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="gva grid DATA_DIR [options] [-- extra dvc exp run args, e.g. -S train.lr=0.02]\n"
              "       gva grid paper DATA_DIR CLIPS_DIR [options] [-- extra]  (gva grid paper --help)",
        description="Queue and run a grid of DVC experiments: generator x seed (x fold, x protocol variant), "
                    "each with its own 2-D baseline, plus the train2d.frames=all control for the --control "
                    "generators; `gva report` summarises it. Defaults: the from-scratch CPU preset "
                    "(params/grid-scratch.yaml).",
        epilog=_notes())
    p.add_argument("data_dir", metavar="DATA_DIR", type=_existing_path("data"),
                   help="the images (data.source): a directory or zip; made absolute")
    p.add_argument("--generators", type=_words, default=["repeat", "motion"], metavar='"G ..."',
                   help="svd.generator values (default: \"repeat motion\"): repeat, motion, svd, cogvideox, ltx, "
                        "wan, i2vgen (the model ones need their weights in the Hugging Face cache or svd.model; "
                        "tiny-<name> runs anywhere); cogvideox gets 480x720 (its default model's fixed size), "
                        "cogvideox/ltx/wan bf16 (generate.i2v.I2VFamily)")
    p.add_argument("--control", type=_words, default=["motion"], metavar='"G ..."',
                   help="generators that also get the train2d.frames=all control (default: \"motion\"; \"\": none)")
    p.add_argument("--no-first", dest="first", action="store_false",
                   help="queue only those controls, not the train2d.frames=first experiments")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2], metavar='"S ..."',
                   help="train.seed values (default: \"0 1 2\")")
    p.add_argument("--vary-all", action="store_true",
                   help="each seed also sets svd.seed and data.seed (generation and the train/val split vary "
                        "too, so intervals over seeds cover them)")
    p.add_argument("--folds", type=_count("--folds", 2), metavar="K",
                   help="cross-fitting: every experiment runs as K, data.fold 0..K-1 of data.folds=K (named "
                        "<name>-f<k>); `gva report` pools them, so every image is a test image")
    p.add_argument("--limit", type=_limit, default=grid.FROM_BASE, metavar="N|null",
                   help="data.limit_per_class, replacing the base's (null: the whole split; default: the "
                        "base's, else null)")
    p.add_argument("--epochs2d", type=_count("--epochs2d", 1), help="train2d.epochs (default: the base's, 10)")
    p.add_argument("--epochs3d", type=_count("--epochs3d", 1), help="train3d.epochs (default: the base's, 2)")
    p.add_argument("--preset", choices=protocol.PRESETS, default="gva",
                   help="every run under this protocol preset (`gva protocol --help`): reference = the reference "
                        "code's protocol; shift = frame 0 generated, 2-D also scored on frame 0 and all frames "
                        "(3-D gain vs 2-D domain shift: run it with --control on the same generators)")
    p.add_argument("--audit", action="store_true",
                   help="protocol audit instead: per generator and seed, gva's protocol, the reference protocol, "
                        "and the reference with each --loo knob set back to gva's")
    p.add_argument("--loo", type=_words, default=list(LOO), metavar='"K ..."',
                   help=f"the leave-one-out knobs of --audit (default: \"{' '.join(LOO)}\"; "
                        f"known: {', '.join(protocol.KNOB_NAMES)})")
    p.add_argument("--base", default="grid-scratch", metavar="PRESET",
                   help="the settings every experiment starts from: a preset of params/ or a YAML file "
                        "(default: grid-scratch; `gva preset --help`)")
    _queue_options(p, jobs=True)
    return p


def paper_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="gva grid paper", formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="gva grid paper DATA_DIR CLIPS_DIR [options] [-- extra dvc exp run args]",
        description="Queue the paper-table experiment (issue 24), declared before any run: R1-R5 x seeds in "
                    "the CPU regime of params/paper.yaml, one queue worker.",
        epilog="runs per seed s (train.seed = data.seed = s), seed-major:\n"
               "  r1-svd-s<s>         gva's protocol, the reference SVD clips; 2-D also scored on SVD frame 0\n"
               "                      and on the frame average (evaluate.extra_protocols)\n"
               "  r2-repeat-s<s>      static clips in the SVD clips' geometry and codec (repeat,\n"
               "                      svd.geometry=reference 1024x576, svd.codec=h264)\n"
               "  r3-static-s<s>      generated but static: SVD frame 0 repeated (reference-static)\n"
               "  r4-ref-s<s>         the reference protocol (ImageNet init included) on the SVD clips, its\n"
               "                      geometry and codec already in them; 2-D with flip + shift\n"
               "  r5-svd-all-s<s>     2-D trained on the images plus the SVD frames (train2d.frames=all) ...\n"
               "  r5-repeat-all-s<s>  ... and plus r2's frames; only their 2-D models are compared\n"
               "                      (train3d.epochs=1)\n"
               "--exploratory TAG: not the declared design -- only r1, as x-TAG-r1-svd-s<s>, with the extra "
               "args\n(e.g. `--exploratory store64 -- -S data.image_size=64`).\n"
               "Afterwards: dvc exp show --json > reports/paper/exps.json && gva report --exp-json ... "
               "(docs/results.md).")
    p.add_argument("data_dir", metavar="DATA_DIR", type=_existing_path("data"),
                   help="tiny-imagenet-10 in the official layout (test = the 500 official val images)")
    p.add_argument("clips_dir", metavar="CLIPS_DIR", type=_existing_path("clips"),
                   help="the reference run's SVD clips (svd.generator: reference)")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2, 3, 4], metavar='"S ..."',
                   help="default: \"0 1 2 3 4\"")
    p.add_argument("--exploratory", metavar="TAG", help="queue only r1, as x-TAG-r1-svd-s<s>")
    _queue_options(p, jobs=False)
    return p


def _pretrained(params: Mapping[str, Any], overrides: Sequence[str]) -> bool:
    return bool(presets.apply(params, overrides).get("model", {}).get("pretrained", True))


def main(argv: list[str] | None = None) -> int:
    """``gva grid ...`` / ``gva grid paper ...``: plan, check and queue a grid (module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    paper = bool(own) and own[0] == "paper"
    parser = paper_parser() if paper else grid_parser()
    args = parser.parse_args(own[1:] if paper else own)
    try:
        params = presets.read_params("params.yaml")
        if paper:
            if args.exploratory is not None and not args.exploratory.strip():
                parser.error("--exploratory needs a tag")
            experiments = paper_plan(args.data_dir, args.clips_dir, base=presets.load("paper", params),
                                     seeds=args.seeds, exploratory=args.exploratory, extra=extra)
        else:
            base = presets.load(args.base, params)
            experiments = plan(args.data_dir, base=base, generators=args.generators, control=args.control,
                               first=args.first, seeds=args.seeds, vary_all=args.vary_all, folds=args.folds,
                               limit=args.limit, epochs2d=args.epochs2d, epochs3d=args.epochs3d,
                               preset=args.preset, audit=args.audit, loo=args.loo,
                               pretrained=_pretrained(params, [*base, *set_params(extra)]), extra=extra)
        check(experiments, params)
    except (ConfigError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    try:
        queue(experiments, jobs=getattr(args, "jobs", 1), start=args.start, wait=args.wait,
              skip_existing=args.skip_existing, dry_run=args.dry_run)
    except subprocess.CalledProcessError as exc:
        print(f"{parser.prog}: error: `{shlex.join(map(str, exc.cmd))}` exited with {exc.returncode}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
