"""gva report on protocol-audit grids: variants, the frame0 double reading, each knob's share,
and the 3-D gain vs 2-D domain shift split."""

from __future__ import annotations

import json

import pytest

from gva.protocol import overrides
from gva.report import Run, aggregate, write_report
from gva.report.audit import audit_rows, is_audit, shift_rows


def _metrics(t2: float, t3: float, t2_frame0: float | None = None, t2_mean: float | None = None) -> dict:
    def delta(a: float, b: float) -> dict:
        return {"top1": b - a, "top1_ci95_low": b - a - 0.05, "top1_ci95_high": b - a + 0.05,
                "mcnemar_p": 0.5, "only_2d_correct": 10, "only_3d_correct": 12, "top3": 0.0, "f1_macro": 0.0}
    m = {"n_test": 500, "model2d": {"top1": t2, "top3": 0.8, "f1_macro": t2},
         "model3d": {"top1": t3, "top3": 0.8, "f1_macro": t3}, "delta": delta(t2, t3)}
    if t2_frame0 is not None:
        m["model2d_frame0"] = {"top1": t2_frame0, "top3": 0.7, "f1_macro": t2_frame0}
        m["delta_frame0"] = delta(t2_frame0, t3)
    if t2_mean is not None:
        m["model2d_frames_mean"] = {"top1": t2_mean, "top3": 0.7, "f1_macro": t2_mean}
        m["delta_frames_mean"] = delta(t2_mean, t3)
    return m


def _run(name: str, gen: str, seed: int, preset: str, without: tuple = (), **metrics) -> Run:
    params = {"svd.generator": gen, "train.seed": seed, "model.pretrained": False,
              **overrides(preset, without, pretrained=False)}
    return Run(name, params, _metrics(**metrics))


def _grid() -> list[Run]:
    """repeat, 2 seeds: the reference protocol's gap comes from frame-0 scoring (2-D drops 0.2 on
    frame 0) and geometry; select and the rest carry nothing."""
    runs = []
    for seed in (0, 1):
        e = 0.01 * seed
        runs += [
            _run(f"gva-s{seed}", "repeat", seed, "gva", t2=0.50 + e, t3=0.50 + e),
            _run(f"ref-s{seed}", "repeat", seed, "reference", t2=0.50 + e, t3=0.45 + e, t2_frame0=0.25 + e),
            _run(f"ref-no-geometry-s{seed}", "repeat", seed, "reference", ("geometry",),
                 t2=0.50 + e, t3=0.49 + e, t2_frame0=0.49 + e),
            _run(f"ref-no-select-s{seed}", "repeat", seed, "reference", ("select",),
                 t2=0.50 + e, t3=0.45 + e, t2_frame0=0.25 + e),
        ]
    return runs


def test_variants_frame0_read_both_ways_and_shares():
    runs = _grid()
    assert is_audit(runs) and not is_audit([r for r in runs if r.name.startswith("gva")])
    rows = {r.variant: r for r in audit_rows(runs)}
    # the reference run gives two rows: scored on frame 0 (reference) and on the image (LOO frame0)
    ref = rows["reference protocol"]
    assert ref.delta.values == pytest.approx([0.20, 0.20]) and ref.top1_2d.values == pytest.approx([0.25, 0.26])
    no_frame0 = rows["reference, gva's frame0"]
    assert no_frame0.delta.values == pytest.approx([-0.05, -0.05])
    assert no_frame0.share.values == pytest.approx([0.25, 0.25])   # frame-0 scoring carried +0.25
    assert rows["reference, gva's geometry"].share.values == pytest.approx([0.20, 0.20])
    assert rows["reference, gva's select"].share.values == pytest.approx([0.0, 0.0])
    assert rows["gva protocol"].delta.values == pytest.approx([0.0, 0.0])
    assert rows["gva protocol"].share.values == pytest.approx([0.20, 0.20])
    # applicable knobs: the from-scratch grid never turns on `init`, so it is not in any name
    assert not any("init" in v for v in rows)
    assert list(rows)[0] == "reference protocol"  # most knobs first


def test_groups_split_by_generator_not_by_protocol_params():
    runs = _grid() + [_run(r.name.replace("s", "m", 1), "motion", r.params["train.seed"], "gva", t2=0.4, t3=0.41)
                      for r in _grid() if r.name.startswith("gva")]
    groups = {r.group for r in audit_rows(runs)}
    assert groups == {"svd.generator=repeat", "svd.generator=motion"}
    labels = {c.label for c in aggregate(runs)}
    assert "svd.generator=repeat, protocol: reference protocol" in labels
    assert all("svd.geometry" not in label for label in labels)


def test_shift_rows_split_the_reported_delta():
    runs = [Run(f"svd-s{s}", {"svd.generator": "svd", "train.seed": s, **overrides("shift")},
                _metrics(t2=0.6, t3=0.62 + 0.01 * s, t2_frame0=0.4, t2_mean=0.5)) for s in (0, 1, 2)]
    (row,) = shift_rows(aggregate(runs))
    assert row.reported.values == pytest.approx([0.22, 0.23, 0.24])
    assert row.gain.values == pytest.approx([0.02, 0.03, 0.04])
    assert row.shift.values == pytest.approx([0.2, 0.2, 0.2])
    assert row.shift_mean.values == pytest.approx([0.1, 0.1, 0.1])
    for a, b, c in zip(row.reported.values, row.gain.values, row.shift.values):
        assert a == pytest.approx(b + c)


def test_written_report_has_audit_and_shift_sections(tmp_path):
    runs = _grid()
    write_report(runs, tmp_path)
    md = (tmp_path / "results.md").read_text()
    assert "## Protocol audit" in md and "| svd.generator=repeat | reference protocol | 2 |" not in md
    assert "| all runs | reference protocol | 2 | 0.255 ± 0.007 | 0.455 ± 0.007 | +0.200 ± 0.000 |" in md
    assert "## 3-D gain vs 2-D domain shift" in md
    assert "WARNING" in md or all("protocol_warning" not in r.metrics for r in runs)
    data = json.loads((tmp_path / "results.json").read_text())
    assert {r["variant"] for r in data["audit"]} >= {"reference protocol", "gva protocol"}
    assert data["shift"]
