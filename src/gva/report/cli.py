"""``gva report``'s command line: arguments -> runs -> :func:`gva.report.render.write_report`."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys

from gva.errors import GvaError
from gva.report.collect import (
    attach_predictions,
    dvc_exp_show,
    parse_json,
    read_exp_json,
    run_from_path,
    runs_from_exp_show,
)
from gva.report.compare import DEFAULT_BOOTSTRAP, DEFAULT_MARGIN, REFERENCE_GENERATOR
from gva.report.render import write_report
from gva.report.stats import SEED_KEY

EXIT_USAGE = 2   # unusable input, as everywhere in the gva command line


def main(argv: list[str] | None = None) -> int:
    """``gva report [--exp-json FILE | --from-dvc [REPO] | --runs DIR_OR_METRICS...] [--out DIR]
    [--repo-root DIR]``.

    Exit 0 on success. Unusable input — a :class:`~gva.errors.GvaError` (such as a
    :class:`ReportError`: a malformed file, no finished runs), an ``OSError`` (a missing file)
    or a failed ``dvc exp show`` — exits 2 with exactly one line ``gva report: error: ...`` on
    stderr; bad arguments exit 2 with argparse's usage message. Any other exception is a bug
    and keeps its traceback."""
    parser = argparse.ArgumentParser(prog="gva report", description=_DESCRIPTION)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--exp-json", metavar="FILE",
                     help="output of `dvc exp show --json` ('-' = stdin)")
    src.add_argument("--from-dvc", metavar="REPO", nargs="?", const=".",
                     help="run `dvc exp show --json` in REPO (default: .)")
    src.add_argument("--runs", metavar="PATH", nargs="+",
                     help="run directories (params.yaml + metrics/metrics.json) or metrics.json files")
    parser.add_argument("--out", default="reports", help="output directory (default: reports)")
    parser.add_argument("--seed-key", default=SEED_KEY, help=f"param that varies over seeds "
                                                              f"(default: {SEED_KEY})")
    parser.add_argument("--include-workspace", action="store_true",
                        help="also count the workspace row of `dvc exp show` (usually a duplicate)")
    parser.add_argument("--title", default="gva results")
    parser.add_argument("--repo-root", default=".", metavar="DIR",
                        help="absolute paths among the params (data.source ...) are shown "
                             "relative to DIR (default: the current directory)")
    parser.add_argument("--predictions", metavar="DIR",
                        help="per-run predictions.csv store (DIR/<run>.csv): read from there, else from "
                             "the run's revision (git, or DVC's cache or remote) and saved there (for the "
                             "comparisons section)")
    parser.add_argument("--equivalence-margin", type=float, default=DEFAULT_MARGIN, metavar="M",
                        help=f"TOST margin for Δ top-1 (default {DEFAULT_MARGIN})")
    parser.add_argument("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, metavar="N",
                        help=f"two-level bootstrap replicates (default {DEFAULT_BOOTSTRAP})")
    parser.add_argument("--primary", metavar="NAME", help="the comparison declared primary (its full name)")
    parser.add_argument("--design", metavar="FILE",
                        help="a design file of declared comparisons and their Holm families "
                             "(gva.report.design; e.g. reports/paper/design.yaml): computed first, with "
                             "forest.png, in place of the automatic comparisons")
    parser.add_argument("--reference-results", metavar="DIR",
                        help="with --design: the reference run's evaluation_results folder, shown beside "
                             "the design's per-class block and its paper's table")
    parser.add_argument("--ignore-param", action="append", default=[], metavar="KEY",
                        help="a param that does not tell configurations apart (repeatable), e.g. one a "
                             "later commit added: runs differing only in it count as one configuration")
    parser.add_argument("--reference-generator", default=REFERENCE_GENERATOR, metavar="NAME",
                        help="the svd.generator every other generator is compared with, configuration "
                             f"by configuration (default {REFERENCE_GENERATOR}: clips that repeat the image)")
    args = parser.parse_args(argv)
    # warnings (a comparison left out, ...) as one line each on stderr
    logging.basicConfig(level=logging.WARNING, format="gva report: warning: %(message)s")
    if args.equivalence_margin <= 0 or args.bootstrap < 100:
        parser.error("--equivalence-margin must be > 0 and --bootstrap at least 100")
    try:
        notes: list[str] = []
        design = None
        if args.design:
            from gva.report.design import load_design
            design = load_design(args.design)
            if args.primary:
                parser.error("--primary and --design: the design declares which comparisons are primary")
        elif args.reference_results:
            parser.error("--reference-results needs --design (its per_class and table blocks)")
        if args.runs:
            runs = [run_from_path(p) for p in args.runs]
        else:
            if args.exp_json == "-":
                source = "<stdin>"
                data = parse_json(sys.stdin.read(), source)
            elif args.exp_json:
                source = args.exp_json
                data = read_exp_json(source)
            else:
                source = f"`dvc exp show --json` in {args.from_dvc}"
                data = dvc_exp_show(args.from_dvc)
            runs, notes = runs_from_exp_show(data, include_workspace=args.include_workspace,
                                             source=source)
            repo = args.from_dvc or args.repo_root
            runs, missing = attach_predictions(runs, repo, args.predictions)
            if any(r.predictions is not None for r in runs):
                notes += missing
        results = write_report(runs, args.out, notes, args.seed_key, args.title, args.repo_root,
                               args.equivalence_margin, args.bootstrap, args.primary,
                               args.reference_generator, args.ignore_param, design,
                               args.reference_results)
    except (GvaError, OSError, subprocess.CalledProcessError) as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"gva report: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    print(f"gva report: {len(runs)} runs, {len(results)} configurations -> {args.out}/results.md")
    return 0



_DESCRIPTION = "gva report: experiments over seeds -> one results table (Markdown) and PNG plots."

__all__ = ["main", "EXIT_USAGE"]
