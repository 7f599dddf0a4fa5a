"""Backbones (head replacement, name errors, offline pretrained failure), checkpoints, and the
uint8 -> model input conversion."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from gva.data.loader import IMAGENET_MEAN, IMAGENET_STD, to_model_input
from gva.errors import CheckpointError, GvaError
from gva.models import PretrainedWeightsError, build_backbone, inflate_with_report
from gva.models.checkpoint import (
    CheckpointMeta,
    ClassInfo,
    InflationPlan,
    TrainingRecord,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def _meta(kind: str = "2d", **over) -> CheckpointMeta:
    meta = CheckpointMeta(kind=kind, arch="resnet18", pretrained=False,
                          classes=[ClassInfo("n1", "a"), ClassInfo("n2", "b"), ClassInfo("n3", "c")],
                          input_size=32, mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), image_size=64,
                          frames=None if kind == "2d" else 3,
                          training=TrainingRecord(epochs=3, best_epoch=2, selected_on="val", train_time_s=1.5))
    for key, value in over.items():
        setattr(meta, key, value)
    return meta


# ---- backbones ------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["resnet18", "timm:resnet18", "timm:convnext_atto"])
def test_backbone_head_is_replaced(arch):
    torch.manual_seed(0)
    model = build_backbone(arch, num_classes=7, pretrained=False).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 7)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert linears[-1].out_features == 7


def test_vgg_head_replaced_and_seeded():
    torch.manual_seed(3)
    a = build_backbone("vgg11", 4, pretrained=False)
    assert isinstance(a.classifier[-1], nn.Linear) and a.classifier[-1].out_features == 4
    assert a.classifier[-1].in_features == 4096
    torch.manual_seed(3)
    b = build_backbone("vgg11", 4, pretrained=False)
    assert torch.equal(a.classifier[-1].weight, b.classifier[-1].weight)


def test_unknown_arch_is_a_clear_error():
    with pytest.raises(ValueError, match="not a torchvision classification model"):
        build_backbone("vgg12", 3, pretrained=False)
    with pytest.raises(ValueError, match="timm has no model"):
        build_backbone("timm:not_a_model", 3, pretrained=False)


def test_pretrained_offline_torchvision_fails_clearly(monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(PretrainedWeightsError, match=r"resnet18.*download.*pretrained: false"):
        build_backbone("resnet18", 3, pretrained=True)


def test_pretrained_offline_timm_fails_clearly(monkeypatch):
    import timm.models._builder as builder

    def offline(*args, **kwargs):
        raise OSError("cannot reach huggingface.co")

    monkeypatch.setattr(builder, "load_pretrained", offline)
    with pytest.raises(PretrainedWeightsError, match=r"timm.*resnet18.*pretrained: false"):
        build_backbone("timm:resnet18", 3, pretrained=True)


# ---- checkpoints ----------------------------------------------------------------------------


def test_checkpoint_round_trip_2d(tmp_path: Path):
    torch.manual_seed(0)
    model = build_backbone("resnet18", 3, pretrained=False)
    with torch.no_grad():  # non-default BN stats so buffers are really round-tripped
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        y = model(x)
    path = tmp_path / "models" / "model2d.pt"
    save_checkpoint(path, model, _meta())
    assert sorted(p.name for p in path.parent.iterdir()) == ["model2d.pt"]  # no temp left over
    loaded, meta = load_checkpoint(path)
    assert meta == _meta()
    assert not loaded.training
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), y, rtol=0, atol=0)


def test_checkpoint_round_trip_3d(tmp_path: Path):
    torch.manual_seed(0)
    spec = {"time_kernel": 3, "init": "mean", "last_n": 4}
    model, report = inflate_with_report(build_backbone("timm:resnet18", 3, pretrained=False), probe_size=32,
                                        **spec)
    with torch.no_grad():  # "training": move the weights off their inflated init
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    model.eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        y = model(clip)
    meta = _meta("3d", arch="timm:resnet18", inflation=InflationPlan("train2d", report.to_dict()))
    save_checkpoint(tmp_path / "m3.pt", model, meta)
    loaded, meta2 = load_checkpoint(tmp_path / "m3.pt")
    assert meta2 == meta
    with torch.no_grad():
        torch.testing.assert_close(loaded(clip), y, rtol=1e-5, atol=1e-6)


def test_checkpoint_rejects_bad_meta_and_files(tmp_path: Path):
    model = nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="inflation plan"):
        save_checkpoint(tmp_path / "x.pt", model, _meta("3d"))        # a 3-D meta without its plan
    with pytest.raises(CheckpointError, match="duplicate class ids"):
        save_checkpoint(tmp_path / "x.pt", model, _meta(classes=[ClassInfo("n1", "a")] * 2))
    assert not (tmp_path / "x.pt").exists()
    cases = {"junk.pt": b"not a checkpoint", "empty.pt": b"", "digits.pt": b"101"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(tmp_path / name)
        text = str(err.value)
        assert name in text and "weights_only" not in text and "()" not in text and "(101)" not in text, text
    torch.save({"format": "gva-checkpoint/1", "meta": {}, "state_dict": {}}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="re-run the training stages"):
        read_checkpoint(tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    assert issubclass(CheckpointError, GvaError)


def test_checkpoint_of_another_architecture_is_refused_in_one_line(tmp_path: Path):
    save_checkpoint(tmp_path / "m.pt", build_backbone("resnet18", 3, pretrained=False), _meta())
    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    payload["meta"]["arch"] = "vgg11"
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match="weights do not fit 2d vgg11") as err:
        load_checkpoint(tmp_path / "m.pt")
    assert "\n" not in str(err.value)


# ---- model input ----------------------------------------------------------------------------


def test_to_model_input_normalises_and_resizes():
    batch = torch.full((2, 8, 8, 3), 255, dtype=torch.uint8)
    batch[1] = 0
    x = to_model_input(batch, 16, IMAGENET_MEAN, IMAGENET_STD)
    assert x.shape == (2, 3, 16, 16) and x.dtype == torch.float32
    for c in range(3):
        assert torch.allclose(x[0, c], torch.tensor((1 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
        assert torch.allclose(x[1, c], torch.tensor(-IMAGENET_MEAN[c] / IMAGENET_STD[c]))


def test_to_model_input_matches_reference_resize_and_clip_layout():
    g = torch.Generator().manual_seed(0)
    clips = torch.randint(0, 256, (2, 3, 20, 20, 3), generator=g, dtype=torch.uint8)
    x = to_model_input(clips, 12, [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    assert x.shape == (2, 3, 3, 12, 12) and x.is_contiguous()
    for t in range(3):
        frame = to_model_input(clips[:, t], 12, [0.5] * 3, [0.25] * 3)
        torch.testing.assert_close(x[:, :, t], frame)
    ref = F.interpolate(clips[0, 1].permute(2, 0, 1)[None].float() / 255, size=(12, 12),
                        mode="bilinear", antialias=True, align_corners=False)
    torch.testing.assert_close(x[0, :, 1], ((ref - 0.5) / 0.25)[0])


def test_to_model_input_rejects_float_and_bad_shapes():
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(torch.zeros(1, 8, 8, 3), 8, IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(ValueError, match="uint8"):
        to_model_input(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 8, IMAGENET_MEAN, IMAGENET_STD)
