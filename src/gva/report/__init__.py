"""``gva report``: experiments over seeds -> one results table (Markdown) and PNG plots.

Input is either the output of ``dvc exp show --json`` (a file, or run here with ``--from-dvc``)
or pipeline run directories / ``metrics.json`` files (each with its ``params.yaml`` in the run
root). Every finished run contributes one :class:`Run`: its flattened params and the evaluate
stage's ``metrics/metrics.json`` (``model2d.*``, ``model3d.*``, ``delta.*``).

Runs are grouped into *configurations*: all params that differ between runs, except the seed
(``train.seed`` by default), name a configuration. Per configuration and model the report gives
mean ± sample standard deviation over seeds of top-1, top-3 and macro-F1; per configuration the
paired 3-D minus 2-D top-1 difference with a t-interval over seeds, each seed's own
paired-bootstrap 95 % interval and exact McNemar p-value (both from ``gva evaluate``); where a
configuration has a ``train2d.frames=all`` twin (the "2-D on generated frames" control), the
control's 2-D model is compared with the baseline's seed by seed. With the runs' predictions,
the comparisons section adds intervals over seeds *and* test images, MDE, TOST, Holm and verdicts
for these and for each generator against ``--reference-generator`` (default ``repeat``).

Output (``--out``, default ``reports/``): ``results.md``, ``results.json``, ``metrics.png`` and
``delta_top1.png``. The same inputs give byte-identical outputs: runs, configurations and keys
are sorted, no timestamps, PNG metadata stripped, and absolute paths among the params (such as
``data.source``) are shown relative to ``--repo-root`` (default: the current directory).

The package, by job:

* :mod:`gva.report.collect` — reading runs (``dvc exp show --json``, run directories);
* :mod:`gva.report.stats` — grouping into configurations, summaries and intervals over seeds;
* :mod:`gva.report.audit` — protocol-audit rows and the 3-D gain vs 2-D domain shift split;
* :mod:`gva.stats.crossed` — seeds (or seed x fold models) and images as crossed random effects:
  Δ's interval, p, TOST and MDE with Satterthwaite's degrees of freedom (what verdicts use);
* :mod:`gva.report.inference` — two-level bootstrap (a cross-check), TOST, Holm, verdicts;
* :mod:`gva.report.compare` — the comparisons section built from the runs' predictions;
* :mod:`gva.report.design` — comparisons declared in a design file (``--design``), by family;
* :mod:`gva.report.render` — Markdown, ``results.json``, the plots, :func:`write_report`;
* here — :func:`main`, the ``gva report`` command line.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys

from gva.errors import GvaError, ReportError
from gva.report.collect import (METRICS_FILE, Run, attach_predictions, dvc_exp_show, flatten,
                                parse_json, read_exp_json, run_from_path, runs_from_exp_show)
from gva.report.compare import DEFAULT_BOOTSTRAP, DEFAULT_MARGIN, REFERENCE_GENERATOR
from gva.report.render import (FIXED_KEYS, METRIC_LABELS, MODEL_LABELS, display_path,
                               display_paths, plot_delta, plot_metrics, render_markdown,
                               results_json, write_report)
from gva.report.stats import (IGNORED_KEYS, METRIC_KEYS, MODELS, SEED_KEY, ConfigResult, Summary,
                              aggregate, control_pairs, format_value, lockstep_seeds, metric_value,
                              varying_keys)

EXIT_USAGE = 2   # unusable input, as everywhere in the gva command line


def main(argv: list[str] | None = None) -> int:
    """``gva report [--exp-json FILE | --from-dvc [REPO] | --runs DIR_OR_METRICS...] [--out DIR]
    [--repo-root DIR]``.

    Exit 0 on success. Unusable input — a :class:`~gva.errors.GvaError` (such as a
    :class:`ReportError`: a malformed file, no finished runs), an ``OSError`` (a missing file)
    or a failed ``dvc exp show`` — exits 2 with exactly one line ``gva report: error: ...`` on
    stderr; bad arguments exit 2 with argparse's usage message. Any other exception is a bug
    and keeps its traceback."""
    parser = argparse.ArgumentParser(prog="gva report", description=__doc__.splitlines()[0])
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
                             "the design's per-class block")
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
            parser.error("--reference-results needs --design (its per_class block)")
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


__all__ = [
    "main", "ReportError",
    # collect
    "METRICS_FILE", "Run", "flatten", "runs_from_exp_show", "run_from_path", "parse_json",
    "read_exp_json", "dvc_exp_show",
    # stats
    "SEED_KEY", "METRIC_KEYS", "MODELS", "IGNORED_KEYS", "Summary", "ConfigResult", "lockstep_seeds",
    "format_value", "varying_keys", "metric_value", "aggregate", "control_pairs",
    # render
    "METRIC_LABELS", "MODEL_LABELS", "FIXED_KEYS", "display_path", "display_paths",
    "render_markdown", "results_json", "plot_metrics", "plot_delta", "write_report",
]
