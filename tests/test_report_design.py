"""gva report --design: declared comparisons by family, Holm within a family, duplicates counted once,
the paper's value beside its estimate, a forest plot, byte-identical rebuilds, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gva.errors import ReportError
from gva.report import Run, main, write_report
from gva.report.design import declared_comparisons, load_design

N = 400
REPO = Path(__file__).resolve().parents[1]

DESIGN = """\
seed_key: train.seed
alpha: 0.05
margin: 0.02
families:
  - name: P
    title: "P: primary"
    primary: true
    holm: false
    comparisons:
      - name: "A: 3-D − 2-D on frame 0"
        a: a:pred_2d_frame0
        b: a:pred_3d
        paper: 0.2
      - name: "3-D of A − 3-D of B"
        a: b:pred_3d
        b: a:pred_3d
  - name: S
    title: "S: secondary"
    comparisons:
      - name: "A: 3-D − 2-D"
        a: a:pred_2d
        b: a:pred_3d
      - name: "A: 3-D − 2-D again"
        a: a:pred_2d
        b: a:pred_3d
      - name: "B: 3-D − 2-D"
        a: b:pred_2d
        b: b:pred_3d
"""


def _run(stem: str, seed: int, acc: dict[str, float], rng_seed: int) -> Run:
    rng = np.random.default_rng(rng_seed)
    labels = np.arange(N) % 10
    preds = {"id": np.arange(N), "label": labels}
    for col, p in acc.items():
        right = rng.random(N) < p
        preds[col] = np.where(right, labels, (labels + 1 + rng.integers(0, 9, N)) % 10)
    top1 = {c: float(np.mean(preds[c] == labels)) for c in acc}
    metrics = {"n_test": N, **{f"model{c[5:]}": {"top1": v, "top3": 0.9, "f1_macro": v} for c, v in top1.items()},
               **{f"delta{c[7:]}": {"top1": top1["pred_3d"] - top1[c], "top1_ci95_low": -1, "top1_ci95_high": 1,
                                    "mcnemar_p": 0.5, "top3": 0.0, "f1_macro": 0.0}
                  for c in ("pred_2d", "pred_2d_frame0")}}
    return Run(f"{stem}-s{seed}", {"svd.generator": stem, "train.seed": seed}, metrics, predictions=preds)


def _runs(seeds=range(5)) -> list[Run]:
    out = []
    for s in seeds:
        out.append(_run("a", s, {"pred_2d": 0.6, "pred_2d_frame0": 0.4, "pred_3d": 0.7}, 10 + s))
        out.append(_run("b", s, {"pred_2d": 0.6, "pred_2d_frame0": 0.6, "pred_3d": 0.6}, 20 + s))
    return out


@pytest.fixture
def design(tmp_path):
    path = tmp_path / "design.yaml"
    path.write_text(DESIGN)
    return load_design(path)


def test_declared_comparisons_by_family(design):
    rows, notes = declared_comparisons(design, _runs(), n_boot=300)
    assert not notes
    by = {r.name: r for r in rows}
    assert list(by) == ["A: 3-D − 2-D on frame 0", "3-D of A − 3-D of B", "A: 3-D − 2-D",
                        "A: 3-D − 2-D again", "B: 3-D − 2-D"]
    paper = by["A: 3-D − 2-D on frame 0"]
    assert paper.primary and paper.paper == 0.2 and paper.verdict.kind == "difference"
    # not adjusted in P; Holm in S over two distinct tests: the duplicate is marked and not counted
    assert paper.p_holm == paper.p and paper.n_tests == 1
    again = by["A: 3-D − 2-D again"]
    assert again.duplicate_of == "A: 3-D − 2-D" and again.p_holm == by["A: 3-D − 2-D"].p_holm
    assert by["A: 3-D − 2-D"].n_tests == 2 and by["B: 3-D − 2-D"].p_holm >= by["B: 3-D − 2-D"].p
    # b − a across two configurations, paired seed by seed
    cross = by["3-D of A − 3-D of B"]
    runs = {r.name: r for r in _runs()}
    expected = np.mean([np.mean(runs[f"a-s{s}"].predictions["pred_3d"] == runs[f"a-s{s}"].predictions["label"])
                        - np.mean(runs[f"b-s{s}"].predictions["pred_3d"] == runs[f"b-s{s}"].predictions["label"])
                        for s in range(5)])
    assert cross.fit.estimate == pytest.approx(expected) and cross.seeds == [0, 1, 2, 3, 4]


def test_missing_seeds_and_runs_are_said(design):
    runs = [r for r in _runs() if r.name != "b-s4"]
    rows, notes = declared_comparisons(design, runs, n_boot=200)
    cross = {r.name: r for r in rows}["3-D of A − 3-D of B"]
    assert cross.seeds == [0, 1, 2, 3]
    assert any("seeds 4 finished on one side only" in n for n in notes)
    rows, notes = declared_comparisons(design, [r for r in _runs() if r.name.startswith("a-")], n_boot=200)
    assert "3-D of A − 3-D of B" not in {r.name for r in rows}
    assert any("no finished seed with predictions for both b and a" in n for n in notes)
    # B's comparison is declared in S but not computable yet: it still counts in S's Holm family
    a = {r.name: r for r in rows}["A: 3-D − 2-D"]
    assert a.n_tests == 2 and a.p_holm == pytest.approx(min(1.0, 2 * a.p))


def test_equal_counts_on_other_images_are_not_duplicates():
    from gva.report.compare import compare, decide
    from gva.stats.bootstrap import PairedSeed
    labels = np.zeros(60, dtype=np.int64)
    right_a = np.r_[np.ones(30), np.zeros(30)].astype(bool)
    right_b = np.r_[np.ones(40), np.zeros(20)].astype(bool)
    rows = []
    for name, shift in (("first", 0), ("second", 3)):   # the same differences, on other images
        a, b = np.roll(right_a, shift), np.roll(right_b, shift)
        pair = PairedSeed(labels, np.where(a, 0, 1), np.where(b, 0, 1))
        rows.append(compare(name, name, [pair], [0], 0.02, n_boot=50))
    assert rows[0].fit.estimate == rows[1].fit.estimate
    decide(rows)
    assert rows[1].duplicate_of is None and rows[0].n_tests == rows[1].n_tests == 2


def test_report_with_a_design_is_reproducible(tmp_path, design):
    for out in ("one", "two"):
        write_report(_runs(), tmp_path / out, n_boot=300, design=design)
    for name in ("results.md", "results.json", "forest.png"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    md = (tmp_path / "one" / "results.md").read_text()
    assert md.index("## Declared comparisons") < md.index("## Accuracy per configuration")
    assert "### P: primary (primary)" in md and "Holm within the family (2 tests)" in md
    assert "the paper reports +0.200" in md and "(= A: 3-D − 2-D)" in md
    assert "## Comparisons: intervals over seeds and test images" not in md   # the design replaces them
    data = json.loads((tmp_path / "one" / "results.json").read_text())
    assert [c["family"] for c in data["declared"]["comparisons"]] == ["P", "P", "S", "S", "S"]
    assert data["declared"]["comparisons"][0]["delta_top1"]["method"].startswith("crossed random effects")


@pytest.mark.parametrize("text,match", [
    ("families: []", "non-empty 'families'"),
    ("families:\n  - name: X\n    comparisons:\n      - name: c\n        a: nocolon\n        b: a:pred_3d",
     r"families\[0\].comparisons\[0\].a: expected '<run stem>:<predictions column>'"),
    ("families:\n  - name: X\n    comparisons:\n      - name: c\n        a: a:top3_2d\n        b: a:pred_3d",
     "must be a pred_\\* column"),
    ("families:\n  - name: X\n    comparisons:\n      - {name: c, a: 'a:pred_2d', b: 'a:pred_3d'}\n"
     "      - {name: c, a: 'a:pred_2d', b: 'a:pred_3d'}", "declared twice"),
    ("alpha: 2\nfamilies:\n  - name: X\n    comparisons:\n      - {name: c, a: 'a:pred_2d', b: 'a:pred_3d'}",
     "alpha must be 0.05"),
    (":\n  - [", "not YAML"),
])
def test_bad_design_files_are_clear_errors(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ReportError, match=match) as info:
        load_design(path)
    assert str(path) in str(info.value)


def test_cli_design_and_primary_exclude_each_other(tmp_path, capsys):
    path = tmp_path / "design.yaml"
    path.write_text(DESIGN)
    with pytest.raises(SystemExit):
        main(["--runs", str(tmp_path), "--design", str(path), "--primary", "x"])
    assert main(["--runs", str(tmp_path / "nothing"), "--design", str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml: cannot read the design" in capsys.readouterr().err


def test_the_paper_design_file_loads():
    design = load_design(REPO / "reports" / "paper" / "design.yaml")
    assert [f.name for f in design.families] == ["P1", "P2", "S"]
    assert [f.holm for f in design.families] == [False, False, True]
    assert design.families[0].comparisons[0].paper == 0.216
    assert design.table is not None and [r.stem for r in design.table.rows] == ["r4-ref", "r1-svd", "r1-svd", "r2-repeat"]


PER_CLASS = """
per_class:
  stem: a
  models:
    - {name: "2-D on frame 0", column: pred_2d_frame0, reference: model2d}
    - {name: "3-D", column: pred_3d, reference: model3d}
"""


def _reference_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "evaluation_results"
    folder.mkdir()
    rows = ["class,precision,recall,f1,model"] + [f"{c},0.5,0.5,{c / 10:.1f},{m}" for m in ("model2d", "model3d")
                                                   for c in range(10)]
    (folder / "per_class_metrics.csv").write_text("\n".join(rows) + "\n")
    for m in ("model2d", "model3d"):
        matrix = np.eye(10, dtype=int) * 40 + 1
        (folder / f"{m}_confusion.csv").write_text(",".join(map(str, range(10))) + "\n" +
                                                   "\n".join(",".join(map(str, r)) for r in matrix) + "\n")
    return folder


def test_per_class_block_beside_the_reference(tmp_path):
    from sklearn.metrics import f1_score
    path = tmp_path / "design.yaml"
    path.write_text(DESIGN + PER_CLASS)
    design = load_design(path)
    runs = _runs(range(2))
    write_report(runs, tmp_path / "out", n_boot=200, design=design, reference_results=_reference_folder(tmp_path))
    md = (tmp_path / "out" / "results.md").read_text()
    assert "### Per class: a beside the reference run" in md
    assert "| class | 2-D on frame 0: gva | reference | 3-D: gva | reference |" in md
    a = [r for r in runs if r.name.startswith("a-")]
    f1 = np.mean([f1_score(r.predictions["label"], r.predictions["pred_3d"], average=None) for r in a], axis=0)
    row = next(line for line in md.splitlines() if line.startswith("| 3 "))
    assert row.split(" | ")[3] == f"{f1[3]:.3f}" and row.split(" | ")[4].rstrip(" |") == "0.300"
    assert "Confusion, 3-D (reference; rows: true class, columns: predicted):" in md
    with pytest.raises(ReportError, match="cannot read the reference results"):
        write_report(runs, tmp_path / "x", n_boot=200, design=design, reference_results=tmp_path / "absent")


REFERENCE_RESULTS = REPO.parent / "shared" / "reference-run" / "evaluation_results"


@pytest.mark.skipif(not REFERENCE_RESULTS.is_dir(), reason="../shared/reference-run is absent")
def test_reads_the_reference_runs_own_results():
    from gva.report.perclass import read_reference
    for model, top1 in (("model2d", 0.542), ("model3d", 0.758)):
        f1, confusion = read_reference(REFERENCE_RESULTS, model, 10)
        assert confusion.sum() == 500 and np.trace(confusion) / 500 == pytest.approx(top1)
        assert ((0 < f1) & (f1 < 1)).all()


TABLE = """
table:
  title: "The paper's table"
  reference: "the paper"
  rows:
    - {name: "A on frame 0", stem: a, model2d: pred_2d_frame0, model3d: pred_3d}
    - {name: "C, not run", stem: c, model2d: pred_2d, model3d: pred_3d}
"""


def _with_top3(runs: list[Run]) -> list[Run]:
    """Each pred_* column gets a top3_* column: the prediction, then the two next labels."""
    for r in runs:
        assert r.predictions is not None
        for col in [c for c in r.predictions if c.startswith("pred_")]:
            p = r.predictions[col]
            r.predictions["top3_" + col[5:]] = np.stack([p, (p + 1) % 10, (p + 2) % 10], axis=1)
    return runs


def test_paper_table_beside_the_reference(tmp_path):
    path = tmp_path / "design.yaml"
    path.write_text(DESIGN + TABLE)
    design = load_design(path)
    runs = _with_top3(_runs(range(3)))
    folder = _reference_folder(tmp_path)
    for m, (t1, t3) in {"model2d": (0.542, 0.778), "model3d": (0.758, 0.904)}.items():
        (folder / f"{m}_metrics.json").write_text(json.dumps({"top1": t1, "top3": t3}))
    write_report(runs, tmp_path / "out", n_boot=200, design=design, reference_results=folder)
    md = (tmp_path / "out" / "results.md").read_text()
    assert md.index("## The paper's table") < md.index("## Declared comparisons")
    assert "| the paper | 1 run | 0.542 | 0.758 | 0.778 | 0.904 |" in md
    assert "| C, not run | 0 | – | – | – | – |" in md
    a = [r.predictions for r in runs if r.name.startswith("a-")]
    top1_2d = np.mean([np.mean(p["pred_2d_frame0"] == p["label"]) for p in a])
    top3_3d = np.mean([np.mean((p["top3_3d"] == p["label"][:, None]).any(1)) for p in a])
    row = next(line for line in md.splitlines() if line.startswith("| A on frame 0 |")).split(" | ")
    assert row[1] == "3" and row[2].startswith(f"{top1_2d:.3f} [") and row[5].startswith(f"{top3_3d:.3f} [")
    table = json.loads((tmp_path / "out" / "results.json").read_text())["declared"]["table"]
    cell = table["rows"][0]["model2d_top1"]
    assert cell["mean"] == pytest.approx(top1_2d) and cell["low"] < cell["mean"] < cell["high"]
    write_report(runs[:2], tmp_path / "one", n_boot=200, design=design, reference_results=folder)  # one seed
    single = json.loads((tmp_path / "one" / "results.json").read_text())["declared"]["table"]["rows"][0]
    assert single["seeds"] == 1 and table["reference"]["model3d_top3"] == 0.904
    for r in runs:
        del r.predictions["top3_3d"]
    with pytest.raises(ReportError, match=r"a-s0: no predictions column 'top3_3d'"):
        write_report(runs, tmp_path / "x", n_boot=200, design=design)


@pytest.mark.parametrize("block, match", [
    ("table: {rows: []}", "table needs a non-empty 'rows' list"),
    ("table: {rows: [{name: x, stem: a, model2d: pred_2d}]}", r"table.rows\[0\] needs string"),
    ("table: {rows: [{name: x, stem: a, model2d: pred_2d, model3d: top3_3d}]}", r"table.rows\[0\]: model2d and model3d must be pred_\* columns"),
])
def test_bad_table_blocks_are_clear_errors(tmp_path, block, match):
    path = tmp_path / "design.yaml"
    path.write_text(DESIGN + block + "\n")
    with pytest.raises(ReportError, match=f"design.yaml: {match}"):
        load_design(path)


@pytest.mark.skipif(not REFERENCE_RESULTS.is_dir(), reason="../shared/reference-run is absent")
def test_reads_the_paper_numbers_from_the_reference_results():
    from gva.report.papertable import read_reference
    assert read_reference(REFERENCE_RESULTS) == {("model2d", "top1"): 0.542, ("model3d", "top1"): 0.758,
                                                 ("model2d", "top3"): 0.778, ("model3d", "top3"): 0.904}


def test_an_mde_of_one_or_more_reads_none_detectable():
    from gva.report.inference import mde_text, verdict
    assert mde_text(0.0614) == "±0.061" and mde_text(3.188) == "≥ 1: none detectable"
    v = verdict(0.016, -0.610, 0.642, 0.803, 3.188, 0.02, 0.475, label="R1 − R3")
    assert v.kind == "inconclusive" and v.text.endswith("no detectable difference (MDE ≥ 1: none detectable)")
