"""``gva evaluate``: score the 2-D and the 3-D model on the paired test set and compare them.

The 2-D model sees the original ``test`` images (data/curated), the 3-D model the generated
``test`` clips (data/clips) of the same images in the same order, so every test image gives one
paired outcome. Optional extra protocols (``evaluate.extra_protocols``) score the 2-D model on
frame 0 of the generated clip (``frame0``, the reference code's protocol; it differs from the
image only with ``svd.first_frame: generated``, and a warning says so otherwise) or on every frame
with the logits averaged (``frames_mean``); each is compared with the 3-D model the same way.

Writes (all atomically):
  metrics/metrics.json      scalar metrics per model and the paired comparison (a dvc metric)
  metrics/per_class.json    per-class precision/recall/F1/support of every protocol, by class name
  metrics/report.json       confusion matrices, the largest confusion changes, run details
  metrics/predictions.csv   per-sample predictions of every protocol, for paired re-analysis
  plots/confusion_2d.json, plots/confusion_3d.json   {"actual","predicted"} records (dvc plots)
  plots/per_class.json      per-class precision/recall/F1 of both models, long format (dvc plots,
                            template src/gva/evaluate/templates/per_class.json)
  plots/confusion_2d.png, plots/confusion_3d.png, plots/per_class.png   README figures
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from gva.config import Config, EvaluateConfig, to_dict
from gva.data.arrays import Store, open_clips, open_images
from gva.data.loader import to_model_input
from gva.device import cpu_threads, device_name, resolve_device
from gva.errors import CheckpointError, StoreError
from gva.evaluate import plots
from gva.evaluate.cost import count_macs, count_parameters, measure_latency
from gva.evaluate.metrics import ClassificationReport, classification_report
from gva.execution import Execution, FastInference
from gva.io import atomic_path, write_json
from gva.models.checkpoint import CheckpointMeta, load_checkpoint
from gva.paths import CLIPS_DIR, CURATED_DIR, METRICS_DIR, MODEL2D, MODEL3D, PLOTS_DIR
from gva.stats.paired import mcnemar_exact, paired_bootstrap_diff, per_class_mcnemar

log = logging.getLogger(__name__)


MODEL_LABELS = {"2d": "2-D on images", "3d": "3-D on generated clips"}
PROTOCOLS = {
    "image": "2-D model on the original test images",
    "clip": "3-D model on the generated test clips",
    "frame0": "2-D model on frame 0 of the generated test clips (reference code's protocol)",
    "frames_mean": "2-D model on every generated frame, logits averaged over frames",
}


@dataclass
class TestSet:
    """The paired test split: row ``i`` of ``images`` and of ``clips`` is the same source image."""

    images: np.ndarray        # uint8 [N,H,W,3] (memory-mapped store, indexed by ``rows``)
    clips: np.ndarray         # uint8 [N,T,H,W,3]
    rows: np.ndarray          # positions of the test rows in both stores
    labels: np.ndarray        # [n_test]
    ids: np.ndarray           # [n_test]
    wnids: dict[int, str]     # label -> wnid
    names: dict[int, str]     # label -> class name (from the store)




def load_test_set(images: Store, clips: Store) -> TestSet:
    """Select the ``test`` rows and check the two stores pair up row for row."""
    rows = images.split_indices("test")
    if rows.size == 0:
        raise StoreError("data/curated has no test rows")
    if len(images.rows) != len(clips.rows):
        raise StoreError(f"data/clips has {len(clips.rows)} rows but data/curated has "
                         f"{len(images.rows)}; the clips must be regenerated")
    for i in rows:
        a, b = images.rows[i], clips.rows[i]
        if (a.id, a.split, a.label) != (b.id, b.split, b.label):
            raise StoreError(f"row {i}: image (id={a.id}, split={a.split}, label={a.label}) and clip "
                             f"(id={b.id}, split={b.split}, label={b.label}) do not pair up")
    return TestSet(
        images=images.array, clips=clips.array, rows=rows,
        labels=images.labels[rows], ids=images.ids[rows],
        wnids={r.label: r.wnid for r in images.rows},
        names={r.label: r.class_name for r in images.rows},
    )


def _check_meta(meta2d: CheckpointMeta, meta3d: CheckpointMeta, test: TestSet) -> list[str]:
    """Both checkpoints must agree with each other and with the data; returns class names."""
    if meta2d.kind != "2d" or meta3d.kind != "3d":
        raise CheckpointError(f"expected a 2d and a 3d checkpoint, got kinds {meta2d.kind!r} and {meta3d.kind!r}")
    if meta2d.wnids != meta3d.wnids:
        raise CheckpointError("model2d and model3d were trained on different class lists")
    for label, wnid in test.wnids.items():
        if label >= meta2d.num_classes or meta2d.wnids[label] != wnid:
            known = meta2d.wnids[label] if label < meta2d.num_classes else "no such label"
            raise CheckpointError(f"label {label} is {wnid!r} in the data but the models know {known}")
    if meta3d.frames is not None and meta3d.frames != test.clips.shape[1]:
        raise StoreError(f"model3d was trained on {meta3d.frames}-frame clips, data/clips has "
                         f"{test.clips.shape[1]} frames")
    return meta2d.class_names


def unique_names(names: list[str], wnids: dict[int, str]) -> list[str]:
    """Class names as plot labels; duplicates get their wnid appended so no two classes merge."""
    out = []
    for k, name in enumerate(names):
        out.append(f"{name} ({wnids.get(k, k)})" if names.count(name) > 1 else name)
    return out


def _inputs(batch: np.ndarray, meta: CheckpointMeta) -> torch.Tensor:
    return to_model_input(torch.from_numpy(np.ascontiguousarray(batch)), meta.input_size, meta.mean, meta.std)


@torch.inference_mode()
def predict(model: nn.Module, meta: CheckpointMeta, source: np.ndarray, rows: np.ndarray, protocol: str,
            batch_size: int, device: torch.device) -> np.ndarray:
    """Logits [n, C] of ``model`` on ``source[rows]`` under ``protocol`` (see ``PROTOCOLS``)."""
    out = []
    for start in tqdm(range(0, len(rows), batch_size), desc=f"evaluate {protocol}", unit="batch",
                      leave=False):
        batch = source[rows[start:start + batch_size]]   # fancy indexing copies out of the mmap
        if protocol in ("image", "clip"):
            logits = model(_inputs(batch, meta).to(device))
        elif protocol == "frame0":
            logits = model(_inputs(batch[:, 0], meta).to(device))
        elif protocol == "frames_mean":
            b, t = batch.shape[:2]
            flat = batch.reshape(b * t, *batch.shape[2:])
            logits = model(_inputs(flat, meta).to(device)).reshape(b, t, -1).mean(dim=1)
        else:
            raise ValueError(f"unknown protocol {protocol!r}")
        out.append(logits.float().cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def model_cost(model: nn.Module, meta: CheckpointMeta, source: np.ndarray, rows: np.ndarray,
               cfg: EvaluateConfig, device: torch.device) -> tuple[dict, dict]:
    """Parameters, MACs per sample, per-sample latency per batch size, training time.

    Returns the metrics and, for the report, how many warm-up and timed calls each latency took.
    """
    need = max(cfg.latency_batch_sizes, default=1)
    samples = _inputs(source[rows[:need]], meta)       # real test inputs, cycled if fewer
    plain = model.model if isinstance(model, FastInference) else model   # MACs do not depend on precision
    cost: dict = {"params": count_parameters(plain),
                  "macs": count_macs(plain, samples[:1].to(device))}
    latency, calls = {}, {}
    for bs in cfg.latency_batch_sizes:
        lat = measure_latency(model, samples, bs, cfg.latency_warmup, cfg.latency_repeats, device,
                              budget_s=cfg.latency_budget_s)
        latency[f"batch{bs}"] = lat.summary()
        calls[f"batch{bs}"] = {"warmup": lat.warmup, "repeats": lat.repeats}
        if lat.repeats < cfg.latency_repeats:
            log.warning("latency at batch %d: %d of %d repeats within evaluate.latency_budget_s=%s",
                        bs, lat.repeats, cfg.latency_repeats, cfg.latency_budget_s)
    if latency:
        cost["latency_ms"] = latency
    cost["train_time_s"] = float(meta.training.train_time_s)
    return cost, calls


def compare(base: ClassificationReport, base_correct: np.ndarray, other: ClassificationReport,
            other_correct: np.ndarray, cfg: EvaluateConfig) -> dict:
    """``other`` minus ``base``: top-1 with a paired bootstrap interval, McNemar, top-3, macro-F1
    (and balanced top-1 on an unbalanced test set)."""
    boot = paired_bootstrap_diff(base_correct, other_correct, resamples=cfg.bootstrap,
                                 seed=cfg.seed, confidence=0.95)
    mc = mcnemar_exact(base_correct, other_correct)
    return {
        "top1": boot.delta,
        "top1_ci95_low": boot.low,
        "top1_ci95_high": boot.high,
        "mcnemar_p": mc.p_value,
        "only_2d_correct": mc.only_a,
        "only_3d_correct": mc.only_b,
        "top3": other.top3 - base.top3,
        "f1_macro": other.f1_macro - base.f1_macro,
        **({} if base.balanced and other.balanced
           else {"balanced_top1": base.balanced_error - other.balanced_error}),
    }


def largest_confusion_changes(cm2d: np.ndarray, cm3d: np.ndarray, names: list[str],
                              top: int = 10) -> list[dict]:
    """Off-diagonal cells whose count changed most between the models (3-D minus 2-D)."""
    diff = cm3d - cm2d
    np.fill_diagonal(diff, 0)
    order = np.argsort(-np.abs(diff), axis=None, kind="stable")[:top]
    out = []
    for flat in order:
        i, j = np.unravel_index(flat, diff.shape)
        if diff[i, j] == 0:
            break
        out.append({"actual": names[i], "predicted": names[j], "model2d": int(cm2d[i, j]),
                    "model3d": int(cm3d[i, j]), "change": int(diff[i, j])})
    return out


def _write_predictions(path: Path, test: TestSet, names: list[str],
                       logits: dict[str, np.ndarray]) -> None:
    """One row per test image: top-1 per model (``pred_<model>``) and its three best classes, best
    first (``top3_<model>``, space-separated), so ``gva report`` can resample top-1, top-3 and
    macro-F1 over seeds and images."""
    k = min(3, next(iter(logits.values())).shape[1])
    # stable: ties keep the lower class first, as argmax does
    ranked = {m: np.argsort(-v, axis=1, kind="stable")[:, :k] for m, v in logits.items()}
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "label", "class_name", *[f"pred_{m}" for m in logits],
                        *([f"top3_{m}" for m in logits] if k == 3 else [])])
            for i in range(len(test.labels)):
                w.writerow([int(test.ids[i]), int(test.labels[i]), names[int(test.labels[i])],
                            *[int(r[i, 0]) for r in ranked.values()],
                            *([" ".join(map(str, r[i])) for r in ranked.values()] if k == 3 else [])])


def run(cfg: Config, curated_dir: str | Path = CURATED_DIR, clips_dir: str | Path = CLIPS_DIR,
        model2d_path: str | Path = MODEL2D, model3d_path: str | Path = MODEL3D,
        metrics_dir: str | Path = METRICS_DIR, plots_dir: str | Path = PLOTS_DIR) -> dict:
    """Evaluate the 2-D and 3-D models on the paired test split; returns metrics.json's content.

    ``evaluate.threads`` sets torch's CPU threads for the stage (latency is measured with them)."""
    with cpu_threads(cfg.evaluate.threads):
        return _run(cfg, curated_dir, clips_dir, model2d_path, model3d_path, metrics_dir, plots_dir)


@dataclass
class _Evaluation:
    """What the steps of :func:`_run` pass along: the test set, both models and their checkpoints."""

    test: Any
    model2d: Any
    model3d: Any
    meta2d: Any
    meta3d: Any
    names: list
    device: Any


def _run(cfg: Config, curated_dir: str | Path, clips_dir: str | Path, model2d_path: str | Path,
         model3d_path: str | Path, metrics_dir: str | Path, plots_dir: str | Path) -> dict:
    """The stage as steps: 1. load the test set and both models; 2. predict (2-D on the images, 3-D
    on the clips, 2-D under each extra protocol); 3. metrics, cost and the paired comparisons;
    4. the dvc plots data and figures; 5. report.json, predictions.csv, metrics.json."""
    ecfg = cfg.evaluate
    metrics_dir, plots_dir = Path(metrics_dir), Path(plots_dir)
    ev = _load(ecfg, curated_dir, clips_dir, model2d_path, model3d_path)                 # 1
    logits = _predict_all(ev, ecfg)                                                      # 2
    reports = {k: classification_report(v, ev.test.labels) for k, v in logits.items()}
    correct = {k: v.argmax(axis=1) == ev.test.labels for k, v in logits.items()}
    metrics, latency_calls = _metrics(ev, ecfg, reports, correct)                       # 3
    wnids = [ev.test.wnids.get(k, "") for k in range(len(ev.names))]
    _write_plots(ev, reports, correct, logits, wnids, metrics_dir, plots_dir)           # 4
    write_json(metrics_dir / "report.json", _report(ev, ecfg, logits, reports, wnids, latency_calls))  # 5
    _write_predictions(metrics_dir / "predictions.csv", ev.test, ev.names, logits)
    write_json(metrics_dir / "metrics.json", metrics)
    d = metrics["delta"]
    log.info("top-1 2-D %.4f, 3-D %.4f, delta %+.4f [%.4f, %.4f], McNemar p=%.3g",
             metrics["model2d"]["top1"], metrics["model3d"]["top1"], d["top1"],
             d["top1_ci95_low"], d["top1_ci95_high"], d["mcnemar_p"])
    return metrics


def _load(ecfg: Any, curated_dir: str | Path, clips_dir: str | Path, model2d_path: str | Path,
          model3d_path: str | Path) -> _Evaluation:
    """Step 1: the paired test set and both models, on the device, wrapped for fast inference."""
    device = resolve_device(ecfg.device, "evaluate.device")
    torch.manual_seed(ecfg.seed)  # evaluation is deterministic; seeded in case a model is not
    for path in map(Path, (model2d_path, model3d_path)):
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint not found (run train2d/train3d first)")
    images = open_images(curated_dir)
    test = load_test_set(images, open_clips(clips_dir, image_size=images.array.shape[1]))
    model2d, meta2d = load_checkpoint(model2d_path, map_location="cpu")
    model3d, meta3d = load_checkpoint(model3d_path, map_location="cpu")
    names = unique_names(_check_meta(meta2d, meta3d, test), test.wnids)
    execution = Execution.resolve(ecfg.precision, ecfg.channels_last, ecfg.compile, device, "evaluate")
    model2d = FastInference(model2d.to(device).eval(), execution, clips=False)
    model3d = FastInference(model3d.to(device).eval(), execution, clips=True)
    if execution.compile:
        model2d.compile_on(_inputs(test.images[test.rows[:2]], meta2d).to(device), "evaluate model2d")
        model3d.compile_on(_inputs(test.clips[test.rows[:2]], meta3d).to(device), "evaluate model3d")
    log.info("evaluating %d paired test samples on %s", len(test.rows), device)

    return _Evaluation(test, model2d, model3d, meta2d, meta3d, names, device)


def _predict_all(ev: _Evaluation, ecfg: Any) -> dict:
    """Step 2: logits of the 2-D model on the images, the 3-D model on the clips, and the 2-D model
    under every ``evaluate.extra_protocols``."""
    test, model2d, model3d, meta2d, meta3d, device = ev.test, ev.model2d, ev.model3d, ev.meta2d, ev.meta3d, ev.device
    logits = {
        "2d": predict(model2d, meta2d, test.images, test.rows, "image", ecfg.batch_size, device),
        "3d": predict(model3d, meta3d, test.clips, test.rows, "clip", ecfg.batch_size, device),
    }
    if "frame0" in ecfg.extra_protocols and np.array_equal(test.clips[test.rows, 0], test.images[test.rows]):
        # svd.first_frame: original (and every control generator) puts the image itself in frame 0
        log.warning("evaluate.extra_protocols frame0: frame 0 of every test clip is the original "
                    "image, so frame0 repeats the image protocol; the reference code's protocol "
                    "needs svd.first_frame: generated")
    for proto in ecfg.extra_protocols:
        logits[f"2d_{proto}"] = predict(model2d, meta2d, test.clips, test.rows, proto,
                                        ecfg.batch_size, device)
    return logits


def _metrics(ev: _Evaluation, ecfg: Any, reports: dict, correct: dict) -> tuple[dict, dict]:
    """Step 3: metrics.json's content (per model: scores and cost; per 2-D protocol: the paired
    comparison with the 3-D model) and the latency calls made."""
    test, model2d, model3d, meta2d, meta3d, device = ev.test, ev.model2d, ev.model3d, ev.meta2d, ev.meta3d, ev.device
    metrics: dict = {"n_test": int(len(test.rows))}
    on_test = [tag for tag, meta in (("model2d", meta2d), ("model3d", meta3d))
               if meta.training.selected_on == "test"]
    if on_test:
        metrics["protocol_warning"] = (f"{' and '.join(on_test)} selected on the test set (train.select_on: "
                                       "test, the reference code's protocol): no number here estimates anything")
        log.warning("evaluate: %s", metrics["protocol_warning"].upper())
    costs, latency_calls = {}, {}
    for tag, model, meta, source in (("2d", model2d, meta2d, test.images),
                                     ("3d", model3d, meta3d, test.clips)):
        costs[tag], latency_calls[f"model{tag}"] = model_cost(model, meta, source, test.rows,
                                                              ecfg, device)
    for tag in ("2d", "3d"):
        metrics[f"model{tag}"] = {**reports[tag].summary(), **costs[tag]}
    metrics["delta"] = compare(reports["2d"], correct["2d"], reports["3d"], correct["3d"], ecfg)
    for proto in ecfg.extra_protocols:
        key = f"2d_{proto}"
        metrics[f"model{key}"] = reports[key].summary()
        metrics[f"delta_{proto}"] = compare(reports[key], correct[key], reports["3d"],
                                            correct["3d"], ecfg)

    return metrics, latency_calls


def _write_plots(ev: _Evaluation, reports: dict, correct: dict, logits: dict, wnids: list,
                 metrics_dir: Path, plots_dir: Path) -> None:
    """Step 4: dvc plots data, per-class tables with McNemar per class, and the figures."""
    test, names = ev.test, ev.names
    preds = {k: v.argmax(axis=1) for k, v in logits.items()}
    labelled = {MODEL_LABELS[tag]: reports[tag] for tag in ("2d", "3d")}
    write_json(plots_dir / "per_class.json", plots.per_class_records(names, wnids, labelled))
    paired = {f"model3d_vs_model{k}": per_class_mcnemar(test.labels, correct[k], correct["3d"], len(names))
              for k in logits if k != "3d"}
    write_json(metrics_dir / "per_class.json", plots.per_class_table(
        names, wnids, {f"model{k}": r for k, r in reports.items()}, paired))
    for tag in ("2d", "3d"):
        write_json(plots_dir / f"confusion_{tag}.json",
                   plots.confusion_records(test.labels, preds[tag], names))
        plots.plot_confusion(reports[tag].confusion, names,
                             f"{PROTOCOLS['image' if tag == '2d' else 'clip']}\n"
                             f"top-1 {reports[tag].top1:.3f}", plots_dir / f"confusion_{tag}.png")
    plots.plot_per_class(names, labelled, plots_dir / "per_class.png", paired["model3d_vs_model2d"])



def _report(ev: _Evaluation, ecfg: Any, logits: dict, reports: dict, wnids: list, latency_calls: dict) -> dict:
    """Step 5: report.json: how every number was made (protocols, methods, execution, environment,
    the checkpoints' training)."""
    names, device, model2d, model3d, meta2d, meta3d = ev.names, ev.device, ev.model2d, ev.model3d, ev.meta2d, ev.meta3d
    return {
        "protocols": {k: PROTOCOLS["image" if k == "2d" else "clip" if k == "3d" else k[3:]]
                      for k in logits},
        "class_names": names,
        "wnids": wnids,
        "confusion": {k: r.confusion.tolist() for k, r in reports.items()},
        "confusion_change_3d_minus_2d": (reports["3d"].confusion - reports["2d"].confusion).tolist(),
        "largest_confusion_changes": largest_confusion_changes(
            reports["2d"].confusion, reports["3d"].confusion, names),
        "bootstrap": {"resamples": ecfg.bootstrap, "seed": ecfg.seed, "confidence": 0.95,
                      "method": "paired percentile bootstrap of top-1(3-D) - top-1(2-D)"},
        "mcnemar": "two-sided exact binomial test on the discordant pairs (scipy.stats.binomtest)",
        "latency": {"method": "model forward only on preprocessed inputs already on the device; "
                              "per sample = batch time / batch size; median and p90 over the timed "
                              "calls after warm-up; torch.cuda.synchronize around each timed call "
                              "on CUDA",
                    "calls": latency_calls},
        "macs": "torch.utils.flop_counter FLOPs / 2 for one sample",
        "execution": {"model2d": model2d.describe(), "model3d": model3d.describe()},
        "environment": {
            "device": str(device),
            "device_name": device_name(device),
            "torch": torch.__version__,
            "cpu_threads": torch.get_num_threads(),
        },
        "checkpoints": {tag: {"arch": meta.arch, "input_size": meta.input_size, "frames": meta.frames,
                              "inflation": None if meta.inflation is None else {
                                  "source": meta.inflation.source, "time_kernel": meta.inflation.time_kernel,
                                  "init": meta.inflation.init, "last_n": meta.inflation.last_n},
                              "epochs": meta.training.epochs, "best_epoch": meta.training.best_epoch,
                              "selected_on": meta.training.selected_on}
                        for tag, meta in (("model2d", meta2d), ("model3d", meta3d))},
        "params": to_dict(ecfg),
    }
