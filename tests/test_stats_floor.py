"""The statistics floor is torch-free: `gva report` (and gva.stats) load no torch and no stage."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_report_and_stats_import_no_torch_and_no_stage():
    for statement in ("import gva.stats", "import gva.report", "from gva.report import design, folds"):
        loaded = _modules_after(statement)
        assert "torch" not in loaded, statement
        assert not any(m.startswith("gva.evaluate") or m.startswith("gva.train") for m in loaded), statement


def test_one_holm_and_one_metric_list():
    import gva.report.inference as inference
    import gva.report.stats as report_stats
    import gva.stats as floor
    import gva.stats.paired as paired
    assert inference.holm is paired.holm
    import gva.stats.bootstrap as bootstrap
    assert report_stats.METRIC_KEYS is floor.METRICS and bootstrap.METRICS is floor.METRICS
