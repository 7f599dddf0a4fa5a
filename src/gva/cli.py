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
    parser = argparse.ArgumentParser(prog="gva", description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in STAGES:
        sub.add_parser(name, help=f"run the {name} stage")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = load_config(args.params)
        module, func = STAGES[args.command].split(":")
        getattr(importlib.import_module(module), func)(cfg)
    except (ConfigError, ValueError, FileNotFoundError, RuntimeError) as exc:
        # Bad input: one clear line, no traceback. Bugs (other exceptions) keep their traceback.
        print(f"gva {args.command}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
