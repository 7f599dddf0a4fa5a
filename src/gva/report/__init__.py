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
* :mod:`gva.stats.bootstrap` — the two-level bootstrap over seeds and test images (a cross-check);
* :mod:`gva.report.inference` — TOST, Holm (re-exported from :mod:`gva.stats.paired`), verdicts;
* :mod:`gva.report.compare` — the comparisons section built from the runs' predictions;
* :mod:`gva.report.design` — comparisons declared in a design file (``--design``), by family;
* :mod:`gva.report.build` — the :class:`~gva.report.build.Report` value: everything computed once;
* :mod:`gva.report.render` — Markdown, ``results.json``, the plots, :func:`write_report`;
* :mod:`gva.report.cli` — :func:`main`, the ``gva report`` command line.
"""

from gva.errors import ReportError
from gva.report.build import Report, build_report, display_path, display_paths, ignore_params
from gva.report.cli import main
from gva.report.collect import (
                                METRICS_FILE,
                                Run,
                                attach_predictions,
                                dvc_exp_show,
                                flatten,
                                parse_json,
                                read_exp_json,
                                run_from_path,
                                runs_from_exp_show,
)
from gva.report.render import (
                                FIXED_KEYS,
                                METRIC_LABELS,
                                MODEL_LABELS,
                                plot_delta,
                                plot_metrics,
                                render_markdown,
                                results_json,
                                write_report,
)
from gva.report.stats import (
                                IGNORED_KEYS,
                                METRIC_KEYS,
                                MODELS,
                                SEED_KEY,
                                ConfigResult,
                                Summary,
                                aggregate,
                                control_pairs,
                                format_value,
                                lockstep_seeds,
                                metric_value,
                                varying_keys,
)

__all__ = [
    "main", "ReportError",
    # collect
    "METRICS_FILE", "Run", "flatten", "runs_from_exp_show", "run_from_path", "parse_json",
    "read_exp_json", "dvc_exp_show",
    # stats
    "SEED_KEY", "METRIC_KEYS", "MODELS", "IGNORED_KEYS", "Summary", "ConfigResult", "lockstep_seeds",
    "format_value", "varying_keys", "metric_value", "aggregate", "control_pairs",
    # render
    "METRIC_LABELS", "MODEL_LABELS", "FIXED_KEYS", "display_path", "display_paths", "ignore_params",
    "Report", "build_report", "render_markdown", "results_json", "plot_metrics", "plot_delta", "write_report",
    "attach_predictions",
]
