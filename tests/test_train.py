"""Training loop (loss goes down, NaN guard, seeding, val-based selection) and the
train2d -> inflate -> train3d stages on a tiny curated store + clip store built here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.utils.data import TensorDataset

from gva.config import config_from_dict
from gva.data.arrays import IndexRow, open_clips, open_images, write_array, write_index
from gva.data.frames import run as run_extra_frames
from gva.data.loader import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    KeyedSamples,
    augment_rng,
    augment_sample,
    make_loader,
    make_train_loader,
)
from gva.errors import NonFiniteLossError, PretrainedWeightsError
from gva.models.checkpoint import load_checkpoint
from gva.models.fold import InflatedConv3d
from gva.models.stage import run_inflate
from gva.train.loop import evaluate_loader, fit, train_one_epoch
from gva.train.stage import run_train2d, run_train3d

SIZE = 16   # stored images / clips
INPUT = 32  # train.image_size: upscaled on the fly
ARCH = "timm:test_resnet"  # timm's tiny test network: real BN/conv/pool structure, fast on CPU


def _pattern_images(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: bright left half, class 1: bright right half, plus noise."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in (0, 1):
        for _ in range(n_per_class):
            img = rng.integers(0, 80, (SIZE, SIZE, 3))
            half = slice(0, SIZE // 2) if label == 0 else slice(SIZE // 2, SIZE)
            img[:, half] += 150
            images.append(img)
            labels.append(label)
    return np.clip(np.stack(images), 0, 255).astype(np.uint8), np.array(labels)


def _tiny_dataset(n_per_class: int = 16, seed: int = 0) -> TensorDataset:
    images, labels = _pattern_images(n_per_class, seed)
    return TensorDataset(torch.from_numpy(images), torch.from_numpy(labels))


class _TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.bn(self.conv(x)))), 1))


def _cfg(**sections) -> object:
    raw = {"data": {"classes": ["n00000001", "n00000002"]},
           "model": {"arch": ARCH, "pretrained": False},
           "train": {"seed": 0, "image_size": INPUT, "lr": 0.05, "step_size": 1, "gamma": 0.5,
                     "num_workers": 0, "device": "cpu", "augment": True},
           "train2d": {"epochs": 2, "batch_size": 8},
           "inflate": {"time_kernel": 3, "init": "centre", "last_n": None},
           "train3d": {"epochs": 2, "batch_size": 4}}
    for key, value in sections.items():
        raw.setdefault(key, {}).update(value)
    return config_from_dict(raw)


# ---- loop -----------------------------------------------------------------------------------


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = _TinyNet()
    data = _tiny_dataset()
    loader = make_loader(data, 8, shuffle=True, num_workers=0, seed=0)
    eval_loader = make_loader(data, 32, shuffle=False, num_workers=0, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    before = evaluate_loader(model, eval_loader, torch.device("cpu"), SIZE, IMAGENET_MEAN, IMAGENET_STD)
    for epoch in range(1, 9):
        train_one_epoch(model, loader, opt, torch.device("cpu"), SIZE, IMAGENET_MEAN, IMAGENET_STD, epoch)
    after = evaluate_loader(model, eval_loader, torch.device("cpu"), SIZE, IMAGENET_MEAN, IMAGENET_STD)
    assert after.loss < 0.8 * before.loss
    assert after.top1 > 0.9 and after.top3 == 1.0 and after.n == 32


def test_nan_loss_stops_training():
    class NanNet(_TinyNet):
        def forward(self, x):
            return super().forward(x) * float("nan")

    model = NanNet()
    loader = make_loader(_tiny_dataset(4), 4, shuffle=True, num_workers=0, seed=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = model.conv.weight.detach().clone()
    with pytest.raises(NonFiniteLossError, match=r"epoch 1 step 1.*nan"):
        train_one_epoch(model, loader, opt, torch.device("cpu"), SIZE, IMAGENET_MEAN, IMAGENET_STD)
    assert torch.equal(model.conv.weight, before)  # no step was taken with the bad loss


def test_inf_loss_from_exploding_lr_stops_fit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    cfg = _cfg(train={"lr": 1e30, "momentum": 0.0, "augment": False})
    with pytest.raises(NonFiniteLossError):
        fit(_TinyNet(), _tiny_dataset(), None, cfg.train, epochs=3, batch_size=8, live_dir="live")


def test_fit_is_seeded_and_selects_best_val_epoch(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg()
    train, val = _tiny_dataset(8, seed=0), _tiny_dataset(4, seed=1)
    states, results = [], []
    for run in range(2):
        torch.manual_seed(0)
        model = _TinyNet()
        results.append(fit(model, train, val, cfg.train, epochs=3, batch_size=4, live_dir=f"live{run}"))
        states.append(model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k  # same seed, same weights
    res = results[0]
    assert res.selected_on == "val" and len(res.history) == 3
    top1 = [row["val/top1"] for row in res.history]
    assert res.best_epoch == 1 + int(np.argmax(top1))  # earliest best
    # the returned model holds the selected epoch's weights: its val metrics are that epoch's
    model = _TinyNet()
    model.load_state_dict(states[0])
    val_stats = evaluate_loader(model, make_loader(val, 4, False, 0, 0), torch.device("cpu"),
                                cfg.train.image_size, IMAGENET_MEAN, IMAGENET_STD)  # fit's for null mean/std
    assert val_stats.top1 == pytest.approx(top1[res.best_epoch - 1])
    assert val_stats.loss == pytest.approx(res.history[res.best_epoch - 1]["val/loss"], rel=1e-5)
    for key in ("train/loss", "train/top1", "train/top3", "val/loss", "val/top1", "val/top3",
                "epoch_time_s"):
        tsv = Path("live0/plots/metrics") / f"{key}.tsv"
        assert len(tsv.read_text().splitlines()) == 4, key  # header + 3 epochs
    assert not Path("live0/dvc.yaml").exists()


def test_augmentation_is_shared_by_all_frames():
    clip = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    clip[:] = clip[0]  # a static clip stays static under augmentation
    rng = np.random.default_rng(0)
    outs = [augment_sample(clip, rng) for _ in range(8)]
    assert all((o == o[0]).all() and o.shape == clip.shape for o in outs)
    assert any(not np.array_equal(o[0], clip[0]) for o in outs)


def test_augmentation_is_keyed_by_seed_epoch_and_sample():
    data = _tiny_dataset(8)
    keyed = KeyedSamples(data, seed=3, augment=True)
    assert torch.equal(keyed[(5, 2)][0], keyed[(5, 2)][0])      # a key is one draw, whenever read
    assert torch.equal(keyed[(5, 2)][0], torch.from_numpy(augment_sample(data[5][0].numpy(), augment_rng(3, 2, 5))))
    draws = {(i, e): keyed[(i, e)][0] for i in range(4) for e in range(1, 4)}
    assert any(not torch.equal(draws[(i, 1)], draws[(i, e)]) for i in range(4) for e in (2, 3))  # epochs differ
    assert torch.equal(KeyedSamples(data, 3, augment=False)[(5, 2)][0], data[5][0])  # off: as stored


def _epoch_samples(loader, epoch: int) -> dict[bytes, int]:
    loader.sampler.set_epoch(epoch)
    return {x.numpy().tobytes(): int(y) for xb, yb in loader for x, y in zip(xb, yb)}


def test_train_batches_do_not_depend_on_workers_or_batch_size():
    data = _tiny_dataset(8)
    base = make_train_loader(data, 4, num_workers=0, seed=1, augment=True)
    for other in (make_train_loader(data, 4, num_workers=2, seed=1, augment=True),
                  make_train_loader(data, 16, num_workers=0, seed=1, augment=True)):
        for epoch in (1, 2):
            assert _epoch_samples(base, epoch) == _epoch_samples(other, epoch)
    # ... and each batch is the same batch with workers: the same samples, the same draws
    batches = [[x for x, _ in make_train_loader(data, 4, num_workers=w, seed=1, augment=True)] for w in (0, 2)]
    assert all(torch.equal(a, b) for a, b in zip(*batches)) and len(batches[0]) == len(batches[1]) == 4


def test_fit_gives_the_same_model_with_any_number_of_workers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    states = []
    for workers in (0, 2):
        cfg = _cfg(train={"num_workers": workers, "augment": True})
        torch.manual_seed(0)
        model = _TinyNet()
        fit(model, _tiny_dataset(8), None, cfg.train, epochs=2, batch_size=4, live_dir=f"live{workers}")
        states.append(model.state_dict())
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k


# ---- stages ---------------------------------------------------------------------------------


def _write_stores(root: Path, with_val: bool = True) -> None:
    """data/curated (2 classes, train/val/test) and data/clips (T=3; frame 0 = the image)."""
    splits = {"train": 12, "val": 4 if with_val else 0, "test": 4}
    rows, images = [], []
    seed = 0
    for split, n in splits.items():
        if n == 0:
            continue
        imgs, labels = _pattern_images(n // 2, seed)
        seed += 1
        for img, label in zip(imgs, labels):
            rows.append(IndexRow(len(rows), split, f"n0000000{label + 1}", f"class{label}",
                                 int(label), f"{split}/{len(rows)}.JPEG"))
            images.append(img)
    images = np.stack(images)
    clips = np.stack([images, np.roll(images, 1, axis=2), np.roll(images, 2, axis=2)], axis=1)
    for name, array, fname in (("curated", images, "images.npy"), ("clips", clips, "clips.npy")):
        write_array(root / "data" / name / fname, array)
        write_index(root / "data" / name / "index.csv", rows)


def _paths(root: Path) -> dict:
    return {"curated": root / "data/curated", "clips": root / "data/clips", "extra": root / "data/extra_frames",
            "m2": root / "models/model2d.pt", "m3i": root / "models/model3d_init.pt",
            "m3": root / "models/model3d.pt", "live2": root / "dvclive/train2d", "live3": root / "dvclive/train3d"}


def _train2d(cfg, p: dict):
    run_extra_frames(cfg, p["curated"], p["clips"], p["extra"])
    return run_train2d(cfg, p["curated"], p["extra"], p["m2"], p["live2"])


def test_stages_train2d_inflate_train3d(tmp_path):
    _write_stores(tmp_path)
    p = _paths(tmp_path)
    cfg = _cfg()
    _train2d(cfg, p)
    run_inflate(cfg, p["m2"], p["m3i"])
    run_train3d(cfg, p["m3i"], p["clips"], p["m3"], p["live3"])

    m2, meta2 = load_checkpoint(p["m2"])
    assert meta2.kind == "2d" and meta2.arch == ARCH and meta2.frames is None and meta2.inflation is None
    assert meta2.class_names == ["class0", "class1"] and meta2.wnids == ["n00000001", "n00000002"]
    assert meta2.input_size == INPUT and meta2.image_size == SIZE and meta2.mean == list(IMAGENET_MEAN)
    t2 = meta2.training
    assert t2.selected_on == "val" and 1 <= t2.best_epoch <= 2 and t2.epochs == 2
    assert t2.train_time_s > 0 and t2.train_samples == 12 and t2.frames_2d == "first"

    m3i, meta3i = load_checkpoint(p["m3i"])
    assert meta3i.kind == "3d" and meta3i.frames is None and meta3i.inflation.source == "train2d"
    plan = meta3i.inflation
    assert (plan.time_kernel, plan.init, plan.last_n) == (3, "centre", None)
    assert plan.report["untransferred"] == [] and meta3i.training == meta2.training
    # the init is the inflated 2-D model: static clips give the 2-D logits
    images = open_images(p["curated"])
    from gva.data.loader import to_model_input
    x = to_model_input(torch.from_numpy(np.array(images.array[:4])), INPUT, IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        torch.testing.assert_close(m3i(x.unsqueeze(2).expand(-1, -1, 3, -1, -1)), m2(x),
                                   atol=1e-4, rtol=1e-4)

    m3, meta3 = load_checkpoint(p["m3"])
    assert meta3.kind == "3d" and meta3.frames == 3 and meta3.training.selected_on == "val"
    assert meta3.training.epochs == 2 and meta3.classes == meta2.classes
    assert any(isinstance(m, InflatedConv3d) for m in m3.modules())
    changed = [k for k, v in m3.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, m3i.state_dict()[k])]
    assert changed  # train3d really trained
    for live in (p["live2"], p["live3"]):
        summary = json.loads((live / "metrics.json").read_text())
        assert summary["best_epoch"] in (1, 2) and "val" in summary
        assert (live / "plots/metrics/val/top3.tsv").is_file()
        assert not (live / "dvc.yaml").exists()
    assert not list(p["live2"].parent.glob(".*.tmp"))  # no temporary log directory left behind
    assert meta2.training.lr == meta3.training.lr == 0.05  # train3d.lr null: the shared train.lr

    # train3d.lr overrides the learning rate of the fine-tune only
    run_train3d(_cfg(train3d={"lr": 0.01}), p["m3i"], p["clips"], p["m3"], p["live3"])
    _, meta3 = load_checkpoint(p["m3"])
    lrs = (p["live3"] / "plots/metrics/lr.tsv").read_text().splitlines()[1:]
    assert meta3.training.lr == 0.01 and float(lrs[0].split("\t")[-1]) == 0.01


def test_a_failed_train2d_keeps_the_previous_model_and_logs(tmp_path):
    _write_stores(tmp_path)
    p = _paths(tmp_path)
    _train2d(_cfg(train2d={"epochs": 1}), p)
    before = {f: f.read_bytes() for f in [p["m2"], *sorted(p["live2"].rglob("*.*"))]}
    assert json.loads((p["live2"] / "metrics.json").read_text())["best_epoch"] == 1
    with pytest.raises(NonFiniteLossError, match=r"train2d epoch 1 (step \d+|val): loss is (nan|inf)"):
        _train2d(_cfg(train={"lr": 1e30, "momentum": 0.0}, train2d={"epochs": 1}), p)
    after = {f: f.read_bytes() for f in [p["m2"], *sorted(p["live2"].rglob("*.*"))]}
    assert after == before  # the model and its logs stay those of the last good run
    assert not list(p["live2"].parent.glob(".*.tmp"))


def test_train2d_without_val_uses_last_epoch_and_frames_all(tmp_path):
    _write_stores(tmp_path, with_val=False)
    p = _paths(tmp_path)
    meta = _train2d(_cfg(train2d={"epochs": 1, "frames": "all"}), p)
    assert meta.training.selected_on == "last_epoch" and meta.training.best_epoch == 1
    # 12 train images + frames 1 and 2 of each train clip (frame 0 is the image itself)
    assert meta.training.train_samples == 12 + 2 * 12 and meta.training.frames_2d == "all"


def test_extra_frames_are_labelled_like_their_clip(tmp_path):
    _write_stores(tmp_path)
    p = _paths(tmp_path)
    assert run_extra_frames(_cfg(train2d={"frames": "all"}), p["curated"], p["clips"], p["extra"]) == 24
    extra, clips = open_images(p["extra"]), open_clips(p["clips"])
    by_id = {r.id: i for i, r in enumerate(clips.rows)}
    assert sorted(int(r.source.rsplit("#frame", 1)[1]) for r in extra.rows) == [1] * 12 + [2] * 12
    for k, r in enumerate(extra.rows):
        i, t = by_id[r.id], int(r.source.rsplit("#frame", 1)[1])
        assert (r.split, r.label, r.wnid) == ("train", clips.rows[i].label, clips.rows[i].wnid)
        assert np.array_equal(extra.array[k], clips.array[i, t])


def test_extra_frames_keep_static_frames_and_a_generated_frame_0(tmp_path):
    _write_stores(tmp_path)
    p = _paths(tmp_path)
    clips = open_clips(p["clips"])
    static = np.repeat(np.array(open_images(p["curated"]).array)[:, None], 3, axis=1)
    static[:, 0] = 255 - static[:, 0]   # frame 0 generated (differs from the image): kept too
    write_array(p["clips"] / "clips.npy", static)
    assert len(clips.split_indices("train")) == 12
    # repeat-like frames 1, 2 equal the image but are kept: the "more steps, no new views" control
    assert run_extra_frames(_cfg(train2d={"frames": "all"}), p["curated"], p["clips"], p["extra"]) == 36


def test_extra_frames_with_frames_first_is_empty_and_independent_of_the_clips(tmp_path):
    _write_stores(tmp_path)
    p = _paths(tmp_path)
    cfg = _cfg()  # train2d.frames: first
    assert run_extra_frames(cfg, p["curated"], p["clips"], p["extra"]) == 0
    first = {f.name: f.read_bytes() for f in p["extra"].iterdir()}
    write_array(p["clips"] / "clips.npy", np.zeros((20, 5, SIZE, SIZE, 3), np.uint8))  # other clips
    run_extra_frames(cfg, p["curated"], p["clips"], p["extra"])
    assert {f.name: f.read_bytes() for f in p["extra"].iterdir()} == first


def test_inflate_from_imagenet_offline_fails_clearly(tmp_path, monkeypatch):
    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise OSError("cannot reach huggingface.co")

    monkeypatch.setattr(builder, "load_pretrained", offline)
    _write_stores(tmp_path)
    p = _paths(tmp_path)
    _train2d(_cfg(train2d={"epochs": 1}), p)
    with pytest.raises(PretrainedWeightsError, match="inflate.source is imagenet.*set inflate.source: train2d"):
        run_inflate(_cfg(inflate={"source": "imagenet"}), p["m2"], p["m3i"])
    assert not p["m3i"].exists()


def test_reference_protocol_knobs_select_on_test_and_drop_bn_stats(tmp_path, caplog):
    """train.select_on: test selects on the test split and says so; inflate.bn_stats: drop resets
    the running statistics (the reference code's inflation), recorded in the plan."""
    _write_stores(tmp_path)
    p = _paths(tmp_path)
    cfg = _cfg(train={"select_on": "test"}, inflate={"bn_stats": "drop"})
    with caplog.at_level("WARNING"):
        meta2 = _train2d(cfg, p)
    assert meta2.training.selected_on == "test" and "MODEL SELECTED ON THE TEST SET" in caplog.text
    assert "TEST SET" in json.loads((p["live2"] / "metrics.json").read_text())["warning"]
    run_inflate(cfg, p["m2"], p["m3i"])
    m3i, meta3i = load_checkpoint(p["m3i"])
    bns = [m for m in m3i.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bns and all(torch.equal(m.running_var, torch.ones_like(m.running_var)) for m in bns)
    assert meta3i.inflation.bn_stats == "drop"
    m2, _ = load_checkpoint(p["m2"])
    assert not any(torch.equal(m.running_var, torch.ones_like(m.running_var))
                   for m in m2.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))


def test_train_threads_are_used_recorded_and_restored(tmp_path, monkeypatch):
    """train.threads: fit trains with that many CPU threads, records it, and restores the caller's."""
    monkeypatch.chdir(tmp_path)
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    seen = []
    monkeypatch.setattr("gva.train.loop.train_one_epoch",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or train_one_epoch(*a, **k))
    res = fit(_TinyNet(), _tiny_dataset(4), None, _cfg(train={"threads": want}).train, epochs=1, batch_size=4,
              live_dir="live")
    assert seen == [want] and res.threads == want and torch.get_num_threads() == before
    assert json.loads(Path("live/metrics.json").read_text())["threads"] == want
    assert fit(_TinyNet(), _tiny_dataset(4), None, _cfg().train, epochs=1, batch_size=4,
               live_dir="live2").threads == before  # null: torch's default, untouched


def test_inflate_threads_are_used_and_restored(tmp_path, monkeypatch):
    import gva.models.stage as inflate_stage

    _write_stores(tmp_path)
    p = _paths(tmp_path)
    _train2d(_cfg(train2d={"epochs": 1}), p)
    before = torch.get_num_threads()
    want = 1 if before != 1 else 2
    seen = []
    real = inflate_stage.inflate_with_report
    monkeypatch.setattr(inflate_stage, "inflate_with_report",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    run_inflate(_cfg(inflate={"threads": want}), p["m2"], p["m3i"])
    assert seen == [want] and torch.get_num_threads() == before and p["m3i"].is_file()


# ---- train.freeze ---------------------------------------------------------------------------

FREEZE = "layer3"  # timm test_resnet: conv1 (stem), bn1, layer1, layer2 frozen; layer3, layer4, fc train


def _bn_stats(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach().clone() for n, b in model.named_buffers()}


def test_freeze_keeps_the_prefix_fixed_and_trains_the_rest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from gva.models import build_backbone
    from gva.train.loop import make_optimizer

    cfg = _cfg(train={"freeze": FREEZE, "augment": True})
    torch.manual_seed(0)
    model = build_backbone(ARCH, 2, pretrained=False)
    before_p = {n: p.detach().clone() for n, p in model.named_parameters()}
    before_b = _bn_stats(model)
    res = fit(model, _tiny_dataset(8), _tiny_dataset(2, seed=1), cfg.train, epochs=1, batch_size=4,
              live_dir="live")
    names = [n for n, _ in model.named_parameters()]
    frozen = names[:names.index("layer3.0.conv1.weight")]
    assert frozen[0] == "conv1.0.weight" and frozen[-1].startswith("layer2.")
    for n, p in model.named_parameters():
        if n in frozen:
            assert not p.requires_grad and torch.equal(p, before_p[n]), n
        else:
            assert p.requires_grad, n
    trained = [n for n in names if n not in frozen and not torch.equal(model.get_parameter(n), before_p[n])]
    assert "fc.weight" in trained and any(n.startswith("layer3.") for n in trained)
    # BatchNorm of the frozen part: running statistics (and batch counts) as they were; the rest moved
    after_b = _bn_stats(model)
    stem_and_early = [n for n in after_b if n.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")]
    assert stem_and_early and all(torch.equal(after_b[n], before_b[n]) for n in stem_and_early)
    assert not torch.equal(after_b["layer3.0.bn1.running_mean"], before_b["layer3.0.bn1.running_mean"])
    # the optimiser holds exactly the trainable parameters
    opt_params = {id(p) for g in make_optimizer(model, cfg.train).param_groups for p in g["params"]}
    assert opt_params == {id(p) for n, p in model.named_parameters() if n not in frozen}
    # recorded: in the fit result and dvclive's summary
    n_frozen = sum(before_p[n].numel() for n in frozen)
    assert res.frozen["before"] == FREEZE and res.frozen["frozen_params"] == n_frozen
    assert res.frozen["frozen_tensors"] == len(frozen) and res.frozen["frozen_batchnorms"] == 8  # conv1.1, conv1.4, bn1, 2 + 3 in layer1/2
    assert res.frozen["trainable_params"] == sum(p.numel() for p in before_p.values()) - n_frozen
    assert json.loads(Path("live/metrics.json").read_text())["frozen"] == res.frozen


def test_frozen_modules_stay_in_eval_mode_in_train_mode():
    from gva.models import build_backbone
    from gva.train.freeze import freeze_before, train_mode

    model = build_backbone(ARCH, 2, pretrained=False)
    freeze_before(model, FREEZE)
    train_mode(model)
    modes = {n: m.training for n, m in model.named_modules()}
    assert not any(modes[n] for n in modes if n.split(".")[0] in ("conv1", "bn1", "layer1", "layer2"))
    assert all(modes[n] for n in modes if n == "" or n.split(".")[0] in ("layer3", "layer4", "fc"))
    model.eval()
    train_mode(model)
    assert modes == {n: m.training for n, m in model.named_modules()}


@pytest.mark.parametrize("name, problem", [("layer9", "is not a module"), ("global_pool", "holds no parameters"),
                                           ("", "is not a module")])
def test_a_bad_freeze_name_is_a_config_error_listing_the_names(name, problem):
    from gva.errors import ConfigError
    from gva.models import build_backbone
    from gva.train.freeze import freeze_before

    model = build_backbone(ARCH, 2, pretrained=False)
    with pytest.raises(ConfigError, match=rf"train.freeze: '{name}' {problem}.*conv1, .*layer2, .*layer3.0, .*fc"):
        freeze_before(model, name)
    assert all(p.requires_grad for p in model.parameters())  # nothing half-frozen


def test_the_default_freezes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from gva.models import build_backbone
    from gva.train.freeze import freeze_before, train_mode

    assert _cfg().train.freeze is None
    model = build_backbone(ARCH, 2, pretrained=False)
    report = freeze_before(model, None)
    assert (report.before, report.frozen_params, report.frozen_tensors) == (None, 0, 0)
    assert report.trainable_params == sum(p.numel() for p in model.parameters())
    assert all(m.training for m in train_mode(model.eval()).modules())
    # fit without train.freeze trains every layer, BatchNorm statistics included
    torch.manual_seed(0)
    model = build_backbone(ARCH, 2, pretrained=False)
    before_p, before_b = {n: p.detach().clone() for n, p in model.named_parameters()}, _bn_stats(model)
    res = fit(model, _tiny_dataset(8), None, _cfg().train, epochs=1, batch_size=4, live_dir="live")
    assert res.frozen["before"] is None and res.frozen["frozen_params"] == 0
    assert all(not torch.equal(p, before_p[n]) for n, p in model.named_parameters())
    assert all(not torch.equal(b, before_b[n]) for n, b in model.named_buffers() if "running_mean" in n)


def test_the_3d_model_freezes_the_same_names(tmp_path, caplog):
    """Inflation keeps module names: train.freeze freezes the same layers of the inflated model,
    and train3d leaves them (weights and BatchNorm statistics) as the inflated init had them."""
    from gva.models import build_backbone, inflate
    from gva.train.freeze import freeze_before

    model2d = build_backbone(ARCH, 2, pretrained=False)
    model3d = inflate(model2d, last_n=2, probe_size=INPUT)
    r2, r3 = freeze_before(model2d, FREEZE), freeze_before(model3d, FREEZE)
    assert ({n for n, p in model2d.named_parameters() if not p.requires_grad}
            == {n for n, p in model3d.named_parameters() if not p.requires_grad})
    assert (r2.frozen_tensors, r2.frozen_batchnorms) == (r3.frozen_tensors, r3.frozen_batchnorms)
    assert r3.frozen_temporal_convs == 0 and r3.temporal_warning() is None  # last_n 2: fc-side convs only
    every = freeze_before(inflate(model2d, last_n=None, probe_size=INPUT), FREEZE)
    n_early = sum(1 for n, m in model2d.named_modules() if isinstance(m, nn.Conv2d)
                  and n.split(".")[0] in ("conv1", "layer1", "layer2"))
    assert every.frozen_temporal_convs == n_early > 0 and "inflate.last_n" in every.temporal_warning()

    _write_stores(tmp_path)
    p = _paths(tmp_path)
    cfg = _cfg(train={"freeze": FREEZE})
    _train2d(cfg, p)
    run_inflate(cfg, p["m2"], p["m3i"])
    with caplog.at_level("WARNING"):
        run_train3d(cfg, p["m3i"], p["clips"], p["m3"], p["live3"])
    assert "convolutions with a temporal kernel" in caplog.text  # last_n null: the frozen ones too
    (m2, meta2), (m3i, _), (m3, meta3) = (load_checkpoint(p[k]) for k in ("m2", "m3i", "m3"))
    assert meta2.training.frozen["before"] == meta3.training.frozen["before"] == FREEZE
    assert meta3.training.frozen["frozen_tensors"] == r3.frozen_tensors
    assert meta2.training.threads == meta3.training.threads == torch.get_num_threads()  # train.threads null
    init, final = m3i.state_dict(), m3.state_dict()
    early = [k for k in init if k.split(".")[0] in ("conv1", "bn1", "layer1", "layer2")]
    late = [k for k in init if k.split(".")[0] in ("layer3", "layer4", "fc") and init[k].is_floating_point()]
    assert early and all(torch.equal(init[k], final[k]) for k in early)
    assert any(not torch.equal(init[k], final[k]) for k in late)
