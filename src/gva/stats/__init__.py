"""The statistics floor: numpy and scipy only, used by ``gva evaluate`` and ``gva report`` alike.

* :mod:`gva.stats.paired` — one pair of models on one test set: the paired bootstrap interval,
  McNemar's exact test (overall and per class) and Holm's adjustment;
* :mod:`gva.stats.crossed` — many seeds (or seed x fold models) on shared test images: the
  crossed random-effects model behind the report's intervals, tests, TOST and MDE.

Nothing here imports torch or a stage, so ``import gva.report`` stays light
(``tests/test_stats_floor.py`` checks ``sys.modules``). The package imports no submodule, so a stage
depends only on the one it uses (``dvc.yaml``).
"""

#: The metrics every report and comparison speaks of, in this order.
METRICS = ("top1", "top3", "f1_macro")

__all__ = ["METRICS"]
