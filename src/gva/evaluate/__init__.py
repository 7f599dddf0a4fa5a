"""The evaluate stage: accuracy, per-class scores, cost and the paired 3-D vs 2-D comparison.

``metrics`` (top-k, P/R/F1, confusion), ``stats`` (paired bootstrap, McNemar), ``cost``
(parameters, MACs, latency), ``plots`` (dvc plots data, PNG figures), ``stage`` (``gva evaluate``).
"""

from gva.evaluate.stage import run

__all__ = ["run"]
