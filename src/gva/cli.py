"""``gva <stage>``: a thin shell that loads params.yaml and calls the library.

Each stage function takes the whole :class:`gva.config.Config` and reads only the sections it
declares as params in dvc.yaml.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from gva.config import ConfigError, load_config

# stage name -> "module:function"; imported lazily so `gva curate` never imports diffusers.
STAGES = {
    "curate": "gva.data.curate:run",
    "svd_generate": "gva.generate.stage:run",
    "train2d": "gva.train:run_train2d",
    "inflate": "gva.models.stage:run_inflate",
    "train3d": "gva.train:run_train3d",
    "evaluate": "gva.evaluate:run",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "report" in argv:  # `gva [-v] report ...`: needs no params file, it reads finished experiments
        i = argv.index("report")
        if all(a in ("-v", "--verbose") for a in argv[:i]):
            from gva.report import main as report_main

            return report_main(argv[i + 1:])
    parser = argparse.ArgumentParser(prog="gva", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        sub.add_parser(name, help=f"run the {name} stage")
    _add_predict_parser(sub)
    sub.add_parser("report", help="results table over experiments (gva report --help)", add_help=False)
    args, unknown = parser.parse_known_args(argv)
    if args.command == "report":  # reached only with options before it that report has no use for
        parser.error("gva report takes no --params: put its own options after it (gva report --help)")
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.command == "predict":
        return _predict(args)
    try:
        cfg = load_config(args.params)
        module, func = STAGES[args.command].split(":")
        getattr(importlib.import_module(module), func)(cfg)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as exc:
        # Bad input: one clear line, no traceback. Bugs (other exceptions) keep their traceback.
        print(f"gva {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_predict_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files end to end (image -> clip -> 3-D model)",
                       description="Generate each image's clip with the run's own generator settings and "
                                   "classify it; prints the top-k classes and a per-stage latency breakdown.")
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--run", default=".", metavar="DIR",
                       help="a pipeline run: DIR/params.yaml and DIR/models/ (default: .)")
    where.add_argument("--checkpoint", metavar="PATH", help="a model file; settings from --params")
    p.add_argument("--model", choices=["3d", "2d"], default="3d", help="3d (default) or the 2-D model alone")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="one JSON object per image on stdout")


def _predict(args: argparse.Namespace) -> int:
    """Exit 0 if every file was classified, 1 if any failed, 2 if the model could not be loaded."""
    import json
    from pathlib import Path

    from tqdm import tqdm

    from gva.predict import Predictor, expand_inputs

    run = Path(args.run)
    params = Path(args.params) if args.checkpoint or args.params != "params.yaml" else run / "params.yaml"
    checkpoint = Path(args.checkpoint) if args.checkpoint else run / "models" / f"model{args.model}.pt"
    try:
        predictor = Predictor(load_config(params), checkpoint, args.model, args.device)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"gva predict: error: {exc}", file=sys.stderr)
        return 2
    files = expand_inputs(args.inputs)
    failed = 0
    bar = lambda it: tqdm(it, desc="predict", unit="img", disable=len(files) < 2, file=sys.stderr)
    for pred in predictor.predict_files(files, args.top_k, args.batch_size, progress=bar):
        failed += not pred.ok
        if args.json:
            print(json.dumps(pred.to_json()), flush=True)
        else:
            print(pred.to_text(), file=sys.stdout if pred.ok else sys.stderr, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
