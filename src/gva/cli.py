"""``gva <stage>``, ``gva predict|report|protocol|preset|grid``: a thin shell over the library.

Each stage function takes the whole :class:`gva.config.Config` and reads only the sections it
declares as params in dvc.yaml. Errors: a :class:`gva.errors.GvaError` (bad params, bad input, a
run that cannot go on, a full disk) prints one line ``gva <command>: error: ...`` and exits 2
(``-v`` adds the traceback); anything else is a bug and keeps Python's traceback (exit 1).

Several processes: ``svd_generate`` / ``train2d`` / ``train3d`` with ``svd.processes`` /
``train.processes`` > 1 start themselves under PyTorch's elastic launcher (what ``torchrun
--standalone`` does), one process per rank; under an outside launcher (``torchrun --nnodes 2 ...
-m gva.cli train2d``, ``accelerate launch``) they just join its group. A failing rank prints its
own one-line error; the launcher's summary is cut to one line too.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable

from gva.config import Config, load_config
from gva.errors import ConfigError, GvaError, NoSpaceError
from gva.io import NO_SPACE

# stage name -> "module:function"; imported lazily so `gva curate` never imports diffusers.
STAGES = {
    "curate": "gva.data.curate:run",
    "svd_generate": "gva.generate.stage:run",
    "extra_frames": "gva.data.frames:run",
    "train2d": "gva.train.stage:run_train2d",
    "inflate": "gva.models.stage:run_inflate",
    "train3d": "gva.train.stage:run_train3d",
    "evaluate": "gva.evaluate.stage:run",
}
# stages that can run as several processes -> the param giving how many
PROCESSES: dict[str, Callable[[Config], int]] = {
    "svd_generate": lambda cfg: cfg.svd.processes,
    "train2d": lambda cfg: cfg.train.processes,
    "train3d": lambda cfg: cfg.train.processes,
}
USER_ERROR = 2
# commands with their own argument parser -> their module (each has main(argv) -> exit code)
OWN_COMMANDS = {"report": "gva.report", "protocol": "gva.protocol", "preset": "gva.presets", "grid": "gva.grid_cli"}
# stages (and gva predict) that write into the cache directory (gva.paths.CACHE_DIR)
USES_CACHE = ("curate", "svd_generate", "train2d", "train3d", "predict")   # training: its epoch states


def check_cache_dir() -> None:
    """The cache directory (``GVA_CACHE_DIR``, default data/.cache) is a directory or can be made
    one: a file at it or above it is a :class:`ConfigError` naming it."""
    from gva import paths

    name = "GVA_CACHE_DIR" if os.environ.get("GVA_CACHE_DIR") else "the cache directory"
    for p in (paths.CACHE_DIR, *paths.CACHE_DIR.parents):
        if p.exists():
            if not p.is_dir():
                where = paths.CACHE_DIR if p == paths.CACHE_DIR else f"{paths.CACHE_DIR} ({p} is a file)"
                raise ConfigError(f"{name} {where}: not a directory")
            return


def _fail(command: str, exc: BaseException, verbose: bool) -> int:
    if verbose:
        traceback.print_exception(exc)
    print(f"gva {command}: error: {exc}", file=sys.stderr)
    return USER_ERROR


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for command, module in OWN_COMMANDS.items():  # need no --params: they parse their own options
        if command in argv:
            i = argv.index(command)
            if all(a in ("-v", "--verbose") for a in argv[:i]):
                return importlib.import_module(module).main(argv[i + 1:])
    parser = argparse.ArgumentParser(prog="gva", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging; tracebacks for user errors too")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        sub.add_parser(name, help=f"run the {name} stage")
    _add_predict_parser(sub)
    sub.add_parser("report", help="results table over experiments (gva report --help)", add_help=False)
    sub.add_parser("protocol", help="dvc exp run overrides of the reference protocol (gva protocol --help)",
                   add_help=False)
    sub.add_parser("preset", help="dvc exp run overrides of a preset file of params/ (gva preset --help)",
                   add_help=False)
    sub.add_parser("grid", help="plan and queue a grid of DVC experiments (gva grid --help)", add_help=False)
    args, unknown = parser.parse_known_args(argv)
    if args.command in OWN_COMMANDS:  # reached only with options before it
        parser.error(f"gva {args.command} takes no --params: put its own options after it "
                     f"(gva {args.command} --help)")
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "predict":
        return _predict(args)
    try:
        if args.command in USES_CACHE:
            check_cache_dir()
        cfg = load_config(args.params)
        processes = PROCESSES.get(args.command, lambda _: 1)(cfg)
        if processes > 1 and "WORLD_SIZE" not in os.environ:
            return _launch(args.command, processes, argv)
        module, func = STAGES[args.command].split(":")
        getattr(importlib.import_module(module), func)(cfg)
    except GvaError as exc:
        return _fail(args.command, exc, args.verbose)
    except OSError as exc:   # a full disk where no atomic output caught it (a library writing its own file)
        if exc.errno not in NO_SPACE:
            raise
        return _fail(args.command, NoSpaceError(exc.filename or "an output"), args.verbose)
    return 0


def _launch(command: str, processes: int, argv: list[str]) -> int:
    """Run ``gva <argv>`` as ``processes`` ranks on this machine (torchrun --standalone)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    launcher = get_args_parser().parse_args(
        ["--standalone", "--nproc-per-node", str(processes), "--module", "gva.cli", *argv])
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # its summary: ours
    try:
        run(launcher)
    except ChildFailedError as exc:
        rank, first = exc.get_first_failure()
        # each rank already printed its own one-line error (or traceback, for a bug)
        print(f"gva {command}: error: {len(exc.failures)} of {processes} processes failed; the first "
              f"was rank {rank} (exit code {first.exitcode}), its error is printed above",
              file=sys.stderr)
        return USER_ERROR if first.exitcode == USER_ERROR else 1
    return 0


def _add_predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files end to end (image -> clip -> 3-D model)",
                       description="Generate each image's clip with the run's own generator settings and "
                                   "classify it; prints the top-k classes and a per-stage latency breakdown.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                   help="image files, or folders of them (searched recursively); standard input is not read")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--run", default=".", metavar="DIR",
                       help="a pipeline run: DIR/params.yaml and DIR/models/ (default: .)")
    where.add_argument("--checkpoint", metavar="PATH", help="a model file; settings from --params")
    p.add_argument("--model", choices=["3d", "2d"], default="3d", help="3d (default) or the 2-D model alone")
    p.add_argument("--top-k", type=_positive("--top-k"), default=3)
    p.add_argument("--batch-size", type=_positive("--batch-size"), default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="one JSON object per image on stdout")


def _positive(flag: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{flag} must be an integer, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{flag} must be at least 1, got {value}")
        return value
    return parse


def _predict(args: argparse.Namespace) -> int:
    """Exit 0 if every file was classified, 1 if any failed, 2 if nothing could be tried (the model
    or run cannot be loaded, or the inputs hold no image file)."""
    import json
    from pathlib import Path

    from tqdm import tqdm

    from gva.predict import Predictor, expand_inputs

    run = Path(args.run)
    params = Path(args.params) if args.checkpoint or args.params != "params.yaml" else run / "params.yaml"
    checkpoint = Path(args.checkpoint) if args.checkpoint else run / "models" / f"model{args.model}.pt"
    try:
        check_cache_dir()
        files = expand_inputs(args.inputs)
        predictor = Predictor(load_config(params), checkpoint, args.model, args.device)
    except GvaError as exc:
        return _fail("predict", exc, args.verbose)
    failed = 0
    bar = tqdm(total=len(files), desc="predict", unit="img", disable=len(files) < 2, file=sys.stderr)
    try:
        with bar:
            for pred in predictor.predict_files(files, args.top_k, args.batch_size, progress=_ticking(bar)):
                failed += not pred.ok
                if args.json:
                    line, stream = json.dumps(pred.to_json()), sys.stdout
                else:
                    line, stream = pred.to_text(), (sys.stdout if pred.ok else sys.stderr)
                bar.write(line, file=stream)  # above the bar, never onto its line
    except GvaError as exc:
        return _fail("predict", exc, args.verbose)
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        return _fail("predict", NoSpaceError(exc.filename or "an output"), args.verbose)
    return 1 if failed else 0


def _ticking(bar) -> Callable:
    def progress(items):
        for item in items:
            yield item
            bar.update(1)
    return progress


if __name__ == "__main__":
    sys.exit(main())
