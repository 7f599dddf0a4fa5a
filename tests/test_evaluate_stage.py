"""``gva evaluate`` end to end on tiny stores and tiny checkpoints in a temporary directory."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import binomtest
from sklearn import metrics as skm
from torch import nn

from gva.config import config_from_dict
from gva.data.arrays import IndexRow, open_clips, write_array, write_index
from gva.errors import CheckpointError, StoreError
from gva.evaluate.stage import run as run_evaluate
from gva.models.checkpoint import CheckpointMeta, ClassInfo, InflationPlan, TrainingRecord

NAMES = ["goldfish", "tabby cat", "bullfrog"]
WNIDS = ["n01443537", "n02123045", "n01641577"]
TEST_COUNTS = (2, 6, 4)   # unbalanced on purpose: McNemar and the macro averages see it
FRAMES = 2
ARCH = "timm:test_resnet"  # a 0.4M-parameter ResNet: fast, standard layers, inflatable
SIZE = 32


def make_stores(root: Path, frames: int = FRAMES, seed: int = 0) -> None:
    """data/curated (train + test rows) and data/clips whose every frame repeats the image."""
    rng = np.random.default_rng(seed)
    rows, images = [], []
    plan = [("train", c) for c in range(3) for _ in range(2)]
    plan += [("test", c) for c, n in enumerate(TEST_COUNTS) for _ in range(n)]
    for i, (split, c) in enumerate(plan):
        rows.append(IndexRow(100 + i, split, WNIDS[c], NAMES[c], c, f"{split}/{i}.JPEG"))
        base = np.array([50 + 70 * c, 200 - 60 * c, 90])
        images.append(np.clip(base + rng.integers(-40, 40, (16, 16, 3)), 0, 255).astype(np.uint8))
    images = np.stack(images)
    write_array(root / "data/curated/images.npy", images)
    write_index(root / "data/curated/index.csv", rows)
    clips = np.repeat(images[:, None], frames, axis=1)
    write_array(root / "data/clips/clips.npy", clips)
    write_index(root / "data/clips/index.csv", rows)
    (root / "data/clips/generation.json").write_text(json.dumps({"shape": list(clips.shape)}))


def run(cfg, root: Path) -> dict:
    return run_evaluate(cfg, root / "data/curated", root / "data/clips", root / "models/model2d.pt",
                        root / "models/model3d.pt", root / "metrics", root / "plots")


def _meta(kind: str, report: dict | None = None) -> CheckpointMeta:
    return CheckpointMeta(
        kind=kind, arch=ARCH, pretrained=False, classes=[ClassInfo(w, n) for w, n in zip(WNIDS, NAMES)],
        input_size=SIZE, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225], image_size=16,
        frames=FRAMES if kind == "3d" else None,
        inflation=InflationPlan("train2d", report) if kind == "3d" else None,
        training=TrainingRecord(epochs=2, best_epoch=1, selected_on="val",
                                train_time_s=12.5 if kind == "2d" else 30.0))


def _force_class(model: nn.Module, label: int | None) -> None:
    """Make the classifier head answer ``label`` whatever the input (None: leave it random)."""
    if label is None:
        return
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-1.0)
        head.bias[label] = 1.0


def make_checkpoints(root: Path, label2d: int | None, label3d: int | None) -> None:
    from gva.models import build_backbone, inflate_with_report
    from gva.models.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model2d = build_backbone(ARCH, 3, pretrained=False).eval()
    model3d, report = inflate_with_report(model2d, time_kernel=3, init="centre")
    model3d.eval()
    _force_class(model2d, label2d)
    _force_class(model3d, label3d)
    save_checkpoint(root / "models/model2d.pt", model2d, _meta("2d"))
    save_checkpoint(root / "models/model3d.pt", model3d, _meta("3d", report.to_dict()))


def tiny_cfg(**evaluate):
    params = {"bootstrap": 300, "latency_batch_sizes": [1, 2], "latency_repeats": 2,
              "latency_warmup": 1, "device": "cpu", "batch_size": 5, **evaluate}
    return config_from_dict({"data": {"classes": WNIDS}, "evaluate": params})


def _predictions(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = {k: np.array([int(r[k]) for r in rows]) for k in rows[0]
           if k != "class_name" and not k.startswith("top3_")}
    out.update({k: np.array([[int(v) for v in r[k].split()] for r in rows]) for k in rows[0]
                if k.startswith("top3_")})
    return out


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory):
    """2-D always answers class 0, 3-D always class 1: every metric is known in closed form."""
    root = tmp_path_factory.mktemp("eval_const")
    make_stores(root)
    make_checkpoints(root, label2d=0, label3d=1)
    return root, run(tiny_cfg(extra_protocols=["frame0", "frames_mean"]), root)


def test_known_metrics(constant_run):
    root, m = constant_run
    n = sum(TEST_COUNTS)
    labels = np.repeat(np.arange(3), TEST_COUNTS)
    assert json.loads((root / "metrics/metrics.json").read_text()) == m
    assert m["n_test"] == n
    assert m["model2d"]["top1"] == pytest.approx(2 / n)
    assert m["model3d"]["top1"] == pytest.approx(6 / n)
    assert m["model2d"]["top3"] == 1.0                     # 3 classes
    for tag, pred in (("model2d", 0), ("model3d", 1)):
        preds = np.full(n, pred)
        for key, fn in (("precision_macro", skm.precision_score), ("recall_macro", skm.recall_score),
                        ("f1_macro", skm.f1_score)):
            assert m[tag][key] == pytest.approx(fn(labels, preds, average="macro", zero_division=0,
                                                   labels=range(3)))
    d = m["delta"]
    assert d["top1"] == pytest.approx(4 / n)
    assert (d["only_2d_correct"], d["only_3d_correct"]) == (2, 6)
    assert d["mcnemar_p"] == pytest.approx(2 * (1 + 8 + 28) / 256)     # 2 * P(X <= 2 | 8, 1/2)
    assert d["top1_ci95_low"] <= d["top1"] <= d["top1_ci95_high"]
    # unbalanced test set, so balanced top-1 is reported: each model gets exactly one class right
    assert m["model2d"]["balanced_top1"] == m["model3d"]["balanced_top1"] == pytest.approx(1 / 3)
    assert d["balanced_top1"] == pytest.approx(0.0)
    assert "offdiag_mass" not in d and "offdiag_mass" not in m["model2d"]
    # The 2-D model on frame 0 / on all frames (here: copies of the image) answers the same.
    for proto in ("frame0", "frames_mean"):
        assert m[f"model2d_{proto}"]["top1"] == pytest.approx(2 / n)
        assert m[f"delta_{proto}"]["mcnemar_p"] == pytest.approx(d["mcnemar_p"])


def test_cost_and_training_time(constant_run):
    from gva.models import load_checkpoint

    root, m = constant_run
    for tag in ("model2d", "model3d"):
        model, _ = load_checkpoint(root / f"models/{tag}.pt")
        assert m[tag]["params"] == sum(p.numel() for p in model.parameters())
        assert m[tag]["macs"] > 0
        for bs in ("batch1", "batch2"):
            lat = m[tag]["latency_ms"][bs]
            assert 0 < lat["median"] <= lat["p90"]
    assert m["model3d"]["macs"] > FRAMES * m["model2d"]["macs"]   # temporal kernels on T frames
    assert (m["model2d"]["train_time_s"], m["model3d"]["train_time_s"]) == (12.5, 30.0)
    calls = json.loads((root / "metrics/report.json").read_text())["latency"]["calls"]
    assert calls["model3d"]["batch2"] == {"warmup": 1, "repeats": 2}


def test_plot_and_table_files(constant_run):
    root, m = constant_run
    n = sum(TEST_COUNTS)
    cm2d = json.loads((root / "plots/confusion_2d.json").read_text())
    assert len(cm2d) == n and {r["predicted"] for r in cm2d} == {NAMES[0]}
    assert [r["actual"] for r in cm2d] == [NAMES[c] for c in np.repeat(np.arange(3), TEST_COUNTS)]
    cm3d = json.loads((root / "plots/confusion_3d.json").read_text())
    assert {r["predicted"] for r in cm3d} == {NAMES[1]}
    per = json.loads((root / "plots/per_class.json").read_text())
    assert len(per) == 3 * 2 * 3
    rec = next(r for r in per if r["class"] == NAMES[1] and r["model"].startswith("3-D")
               and r["metric"] == "recall")
    assert rec["value"] == 1.0 and rec["support"] == 6 and rec["wnid"] == WNIDS[1]
    table = json.loads((root / "metrics/per_class.json").read_text())
    assert table[NAMES[0]]["model2d"]["recall"] == 1.0
    assert table[NAMES[0]]["model2d"]["precision"] == pytest.approx(2 / n)
    assert set(table[NAMES[2]]) >= {"model2d", "model3d", "model2d_frame0", "model2d_frames_mean"}
    report = json.loads((root / "metrics/report.json").read_text())
    assert report["class_names"] == NAMES
    assert report["confusion"]["3d"] == [[0, 2, 0], [0, 6, 0], [0, 4, 0]]
    # 2-D sent all 6 tabby cats to goldfish, 3-D none: the largest off-diagonal change.
    assert report["largest_confusion_changes"][0] == {
        "actual": NAMES[1], "predicted": NAMES[0], "model2d": 6, "model3d": 0, "change": -6}
    assert len(report["largest_confusion_changes"]) == 4        # cells that changed at all
    # per-class McNemar, 3-D vs 2-D, Holm over the 3 classes: only the tabby cats (6 of 6 only
    # 3-D right) reach p = 2 / 2^6; goldfish 2 of 2 only 2-D right (p = 0.5); bees: nobody right
    paired = [table[name]["model3d_vs_model2d"] for name in NAMES]
    assert [(r["n"], r["only_a"], r["only_b"]) for r in paired] == [(2, 2, 0), (6, 0, 6), (4, 0, 0)]
    assert [r["p"] for r in paired] == pytest.approx([0.5, 0.03125, 1.0])
    assert [r["p_holm"] for r in paired] == pytest.approx([1.0, 0.09375, 1.0])
    assert "model3d_vs_model2d_frame0" in table[NAMES[0]]
    preds = _predictions(root / "metrics/predictions.csv")
    assert (preds["pred_2d"] == 0).all() and (preds["pred_3d"] == 1).all()
    assert (preds["top3_2d"][:, 0] == preds["pred_2d"]).all() and preds["top3_3d"].shape == (n, 3)
    assert all(sorted(row) == [0, 1, 2] for row in preds["top3_3d"].tolist())
    assert list(preds["id"]) == list(range(106, 106 + n))
    for png in ("confusion_2d.png", "confusion_3d.png", "per_class.png"):
        assert (root / "plots" / png).read_bytes()[:4] == b"\x89PNG"


def test_random_models_consistent_with_their_predictions(tmp_path, caplog):
    """Untrained heads: metrics.json must agree with sklearn on predictions.csv; frame 0 and the
    frame mean of clips that repeat the image must reproduce the image protocol exactly."""
    make_stores(tmp_path, seed=1)
    make_checkpoints(tmp_path, label2d=None, label3d=None)
    m = run(tiny_cfg(extra_protocols=["frames_mean", "frame0"], latency_batch_sizes=[1]), tmp_path)
    p = _predictions(tmp_path / "metrics/predictions.csv")
    np.testing.assert_array_equal(p["pred_2d_frame0"], p["pred_2d"])
    assert "frame0 repeats the image protocol" in caplog.text  # frame 0 is the image: said so
    np.testing.assert_array_equal(p["pred_2d_frames_mean"], p["pred_2d"])
    y = p["label"]
    for tag, col in (("model2d", "pred_2d"), ("model3d", "pred_3d")):
        assert m[tag]["top1"] == pytest.approx(skm.accuracy_score(y, p[col]))
        assert m[tag]["f1_macro"] == pytest.approx(
            skm.f1_score(y, p[col], average="macro", labels=range(3), zero_division=0))
        assert list(m[tag]["latency_ms"]) == ["batch1"]
    c2, c3 = p["pred_2d"] == y, p["pred_3d"] == y
    b, c = int((c2 & ~c3).sum()), int((~c2 & c3).sum())
    expected = 1.0 if b + c == 0 else binomtest(c, b + c, 0.5).pvalue
    assert m["delta"]["mcnemar_p"] == pytest.approx(expected)
    assert m["delta"]["top1"] == pytest.approx(c3.mean() - c2.mean())


def test_unpaired_clips_are_refused(tmp_path):
    make_stores(tmp_path)
    make_checkpoints(tmp_path, label2d=0, label3d=1)
    clips = open_clips(tmp_path / "data/clips")
    rows = list(clips.rows)
    i, j = [k for k, r in enumerate(rows) if r.split == "test"][:2]
    rows[i], rows[j] = rows[j], rows[i]      # same ids, different order
    write_index(tmp_path / "data/clips/index.csv", rows)
    with pytest.raises(StoreError, match="do not pair up"):
        run(tiny_cfg(), tmp_path)
    assert not (tmp_path / "metrics").exists()


def test_clip_length_must_match_3d_model(tmp_path):
    make_stores(tmp_path, frames=FRAMES + 1)
    make_checkpoints(tmp_path, label2d=0, label3d=1)
    with pytest.raises(StoreError, match="frames"):
        run(tiny_cfg(), tmp_path)


@pytest.mark.parametrize("shape_change", ["frames", "side"])
def test_malformed_clip_stores_are_refused(tmp_path, shape_change):
    """Clips that disagree with generation.json (T changed by hand) or with the curated size."""
    make_stores(tmp_path)
    make_checkpoints(tmp_path, label2d=0, label3d=1)
    clips = np.array(open_clips(tmp_path / "data/clips").array)
    if shape_change == "frames":
        write_array(tmp_path / "data/clips/clips.npy", np.concatenate([clips, clips], axis=1))
        match = "differs from the .* its generator recorded"
    else:
        small = np.ascontiguousarray(clips[:, :, ::2, ::2])
        write_array(tmp_path / "data/clips/clips.npy", small)
        (tmp_path / "data/clips/generation.json").write_text(json.dumps({"shape": list(small.shape)}))
        match = "curated images are 16x16"
    with pytest.raises(StoreError, match=match):
        run(tiny_cfg(), tmp_path)
    assert not (tmp_path / "metrics").exists()


def test_models_of_other_classes_are_refused(tmp_path):
    make_stores(tmp_path)
    make_checkpoints(tmp_path, label2d=0, label3d=1)
    rows = list(open_clips(tmp_path / "data/clips").rows)
    swapped = [IndexRow(r.id, r.split, "n09999999" if r.label == 2 else r.wnid, r.class_name, r.label, r.source)
               for r in rows]
    for store in ("curated", "clips"):
        write_index(tmp_path / f"data/{store}/index.csv", swapped)
    with pytest.raises(CheckpointError, match="label 2 is 'n09999999'"):
        run(tiny_cfg(), tmp_path)


def evaluate_dvc_yaml() -> str:
    """The real dvc.yaml's evaluate stage and top-level plots (nothing copied by hand)."""
    import yaml

    real = yaml.safe_load((Path(__file__).resolve().parents[1] / "dvc.yaml").read_text())
    return yaml.safe_dump({"stages": {"evaluate": real["stages"]["evaluate"]}, "plots": real["plots"]},
                          sort_keys=False)


def _fake_dvclive(root: Path) -> None:
    """What train2d/train3d leave in dvclive/ (written by dvclive itself, 3 epochs)."""
    from dvclive import Live

    for stage in ("train2d", "train3d"):
        with Live(dir=str(root / "dvclive" / stage), dvcyaml=False, save_dvc_exp=False,
                  report=None) as live:
            for epoch in range(3):
                for key in ("train/loss", "val/loss"):
                    live.log_metric(key, 1.0 / (epoch + 1))
                for key in ("train/top1", "val/top1"):
                    live.log_metric(key, 0.3 * epoch)
                live.next_step()


@pytest.mark.slow
def test_dvc_stage_metrics_and_plots(tmp_path):
    """`dvc repro evaluate` in a fresh git+DVC repo; `dvc metrics show` and `dvc plots show` work."""
    import os
    import shutil
    import subprocess
    import sys

    import yaml

    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    def sh(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    src = Path(__file__).resolve().parents[1] / "src"
    shutil.copytree(src, tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    make_stores(tmp_path)
    make_checkpoints(tmp_path, label2d=0, label3d=1)
    _fake_dvclive(tmp_path)
    (tmp_path / "dvc.yaml").write_text(evaluate_dvc_yaml())
    params = {"data": {"classes": WNIDS},
              "evaluate": {"bootstrap": 200, "latency_batch_sizes": [1], "latency_repeats": 2,
                           "latency_warmup": 1, "device": "cpu"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / ".gitignore").write_text("/data\n/models\n/dvclive\n/dvc_plots\n")
    sh("git", "init", "-q")
    sh(str(bin_dir / "dvc"), "init", "-q")
    sh(str(bin_dir / "dvc"), "config", "core.analytics", "false")
    sh(str(bin_dir / "dvc"), "repro", "evaluate")

    shown = json.loads(sh(str(bin_dir / "dvc"), "metrics", "show", "--json"))
    data = shown[""]["data"]["metrics/metrics.json"]["data"]    # workspace revision
    assert data["model2d"]["top1"] == pytest.approx(2 / 12)
    assert data["model3d"]["top1"] == pytest.approx(6 / 12)
    assert data["delta"]["top1"] == pytest.approx(4 / 12)
    flat = sh(str(bin_dir / "dvc"), "metrics", "show")
    for column in ("model2d.top1", "model3d.top1", "delta.top1", "delta.mcnemar_p",
                   "model3d.latency_ms.batch1.median"):
        assert column in flat

    plots = json.loads(sh(str(bin_dir / "dvc"), "plots", "show", "--json"))
    assert not plots.get("errors"), plots.get("errors")
    rendered = plots["data"]
    for key in ("plots/confusion_2d.json", "plots/confusion_3d.json", "plots/per_class.json",
                "training_loss", "training_top1"):
        (spec,) = rendered[key]
        assert spec["type"] == "vega" and spec["content"]["data"]["values"], key
    per_class = rendered["plots/per_class.json"][0]["content"]
    assert per_class["spec"]["encoding"]["x"]["field"] == "value"     # template anchors filled
    assert "<DVC_METRIC" not in json.dumps(per_class)
    for png in ("plots/confusion_2d.png", "plots/confusion_3d.png", "plots/per_class.png"):
        assert rendered[png][0]["type"] == "image"
    sh(str(bin_dir / "dvc"), "plots", "show", "-o", "dvc_plots")
    assert (tmp_path / "dvc_plots" / "index.html").stat().st_size > 0


def test_bf16_channels_last_inference_is_recorded_and_agrees(tmp_path):
    """evaluate.precision / channels_last: the report says what ran; constant heads answer the same."""
    make_stores(tmp_path)
    make_checkpoints(tmp_path, label2d=0, label3d=1)
    m = run(tiny_cfg(precision="bf16", channels_last=True, latency_batch_sizes=[1]), tmp_path)
    report = json.loads((tmp_path / "metrics/report.json").read_text())
    assert report["execution"]["model3d"] == {"precision": "bf16", "channels_last": True, "compile": False}
    n = sum(TEST_COUNTS)
    assert m["model2d"]["top1"] == pytest.approx(2 / n) and m["model3d"]["top1"] == pytest.approx(6 / n)


def test_models_selected_on_the_test_set_are_flagged(tmp_path, caplog):
    from gva.models.checkpoint import load_checkpoint, save_checkpoint

    make_stores(tmp_path)
    make_checkpoints(tmp_path, label2d=0, label3d=1)
    model, meta = load_checkpoint(tmp_path / "models/model3d.pt")
    meta.training.selected_on = "test"
    save_checkpoint(tmp_path / "models/model3d.pt", model, meta)
    with caplog.at_level("WARNING"):
        m = run(tiny_cfg(latency_batch_sizes=[1]), tmp_path)
    assert "model3d selected on the test set" in m["protocol_warning"]
    assert "MODEL3D SELECTED ON THE TEST SET" in caplog.text


def test_evaluate_threads_are_used_recorded_and_restored(tmp_path):
    """evaluate.threads: the stage runs (and times latency) with that many CPU threads, says so in
    the report, and leaves the process's own setting as it found it."""
    make_stores(tmp_path)
    make_checkpoints(tmp_path, label2d=0, label3d=1)
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    run(tiny_cfg(threads=want, latency_batch_sizes=[1]), tmp_path)
    assert json.loads((tmp_path / "metrics/report.json").read_text())["environment"]["cpu_threads"] == want
    assert torch.get_num_threads() == before
