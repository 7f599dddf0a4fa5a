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
from gva.data.loader import (IMAGENET_MEAN, IMAGENET_STD, augment_sample, extra_frame_samples,
                             make_loader)
from gva.models import PretrainedWeightsError, load_checkpoint
from gva.models.inflate import InflatedConv3d
from gva.train import (NonFiniteLossError, evaluate_loader, fit, run_train2d, run_train3d,
                       train_one_epoch)
from gva.models.stage import run_inflate

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
    with pytest.raises(NonFiniteLossError, match=r"epoch 1 batch 1.*nan"):
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
                                cfg.train.image_size, cfg.train.mean, cfg.train.std)
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
    g = torch.Generator().manual_seed(0)
    outs = [augment_sample(clip, g) for _ in range(8)]
    assert all((o == o[0]).all() and o.shape == clip.shape for o in outs)
    assert any(not np.array_equal(o[0], clip[0]) for o in outs)


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


def test_stages_train2d_inflate_train3d(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_stores(tmp_path)
    cfg = _cfg()
    run_train2d(cfg)
    run_inflate(cfg)
    run_train3d(cfg)

    m2, meta2 = load_checkpoint("models/model2d.pt")
    assert meta2["kind"] == "2d" and meta2["arch"] == ARCH and meta2["frames"] is None
    assert meta2["class_names"] == ["class0", "class1"] and meta2["num_classes"] == 2
    assert meta2["input_size"] == INPUT and meta2["inflate"] is None
    assert meta2["selected_on"] == "val" and 1 <= meta2["best_epoch"] <= 2 and meta2["epochs"] == 2
    assert meta2["train_time_s"] > 0 and meta2["mean"] == list(IMAGENET_MEAN)
    assert meta2["train_samples"] == 12

    m3i, meta3i = load_checkpoint("models/model3d_init.pt")
    assert meta3i["kind"] == "3d" and meta3i["frames"] == 3 and meta3i["inflate_source"] == "train2d"
    assert meta3i["inflate"] == {"time_kernel": 3, "init": "centre", "last_n": None}
    assert meta3i["inflation_report"]["untransferred"] == []
    # the init is the inflated 2-D model: static clips give the 2-D logits
    images = open_images("data/curated")
    from gva.data.loader import to_model_input
    x = to_model_input(torch.from_numpy(np.array(images.array[:4])), INPUT, IMAGENET_MEAN, IMAGENET_STD)
    with torch.no_grad():
        torch.testing.assert_close(m3i(x.unsqueeze(2).expand(-1, -1, 3, -1, -1)), m2(x),
                                   atol=1e-4, rtol=1e-4)

    m3, meta3 = load_checkpoint("models/model3d.pt")
    assert meta3["kind"] == "3d" and meta3["frames"] == 3 and meta3["selected_on"] == "val"
    assert meta3["epochs"] == 2 and meta3["class_names"] == meta2["class_names"]
    assert any(isinstance(m, InflatedConv3d) for m in m3.modules())
    changed = [k for k, v in m3.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, m3i.state_dict()[k])]
    assert changed  # train3d really trained
    for stage in ("train2d", "train3d"):
        summary = json.loads(Path(f"dvclive/{stage}/metrics.json").read_text())
        assert summary["best_epoch"] in (1, 2) and "val" in summary
        assert Path(f"dvclive/{stage}/plots/metrics/val/top3.tsv").is_file()
    assert not Path("dvclive/train2d/dvc.yaml").exists()
    assert meta2["lr"] == meta3["lr"] == 0.05  # train3d.lr null: the shared train.lr

    # train3d.lr overrides the learning rate of the fine-tune only
    run_train3d(_cfg(train3d={"lr": 0.01}))
    _, meta3 = load_checkpoint("models/model3d.pt")
    lrs = Path("dvclive/train3d/plots/metrics/lr.tsv").read_text().splitlines()[1:]
    assert meta3["lr"] == 0.01 and float(lrs[0].split("\t")[-1]) == 0.01


def test_train2d_without_val_uses_last_epoch_and_frames_all(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write_stores(tmp_path, with_val=False)
    cfg = _cfg(train2d={"epochs": 1, "frames": "all"})
    run_train2d(cfg)
    _, meta = load_checkpoint("models/model2d.pt")
    assert meta["selected_on"] == "last_epoch" and meta["best_epoch"] == 1
    # 12 train images + frames 1 and 2 of each train clip (frame 0 is the image itself)
    assert meta["train_samples"] == 12 + 2 * 12 and meta["train2d_frames"] == "all"


def test_extra_frames_are_labelled_like_their_clip(tmp_path):
    _write_stores(tmp_path)
    images, clips = open_images(tmp_path / "data/curated"), open_clips(tmp_path / "data/clips")
    ds = extra_frame_samples(images, clips, tmp_path / "data/clips/clips.npy")
    assert len(ds) == 24 and set(ds.frames.tolist()) == {1, 2}
    for i in range(len(ds)):
        x, y = ds[i]
        assert y == clips.rows[ds.rows[i]].label and clips.rows[ds.rows[i]].split == "train"
        assert np.array_equal(x.numpy(), clips.array[ds.rows[i], ds.frames[i]])


def test_inflate_from_imagenet_offline_fails_clearly(tmp_path, monkeypatch):
    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise OSError("cannot reach huggingface.co")

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(builder, "load_pretrained", offline)
    _write_stores(tmp_path)
    run_train2d(_cfg(train2d={"epochs": 1}))
    with pytest.raises(PretrainedWeightsError, match="pretrained: false"):
        run_inflate(_cfg(inflate={"source": "imagenet"}))
    assert not Path("models/model3d_init.pt").exists()
