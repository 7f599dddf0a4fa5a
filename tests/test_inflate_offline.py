"""inflate.source: imagenet offline: the error names the setting that asked for the weights."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from tests.test_models import _meta

from gva.config import config_from_dict
from gva.models import PretrainedWeightsError, build_backbone
from gva.models.checkpoint import save_checkpoint
from gva.models.stage import run_inflate


def test_offline_imagenet_inflation_blames_inflate_source_not_model_pretrained(tmp_path, monkeypatch):
    """Issue 26: with model.pretrained false, the error said "model.pretrained is true ... set
    model.pretrained: false"; it is inflate.source: imagenet that needs the weights."""
    save_checkpoint(tmp_path / "model2d.pt", build_backbone("resnet18", 3, pretrained=False), _meta())

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    cfg = config_from_dict({"model": {"arch": "resnet18", "pretrained": False}, "inflate": {"source": "imagenet"}})
    with pytest.raises(PretrainedWeightsError) as info:
        run_inflate(cfg, tmp_path / "model2d.pt", tmp_path / "model3d_init.pt")
    message = str(info.value)
    assert message.startswith("inflate.source is imagenet, which needs ImageNet weights for 'resnet18'")
    assert "inflate.source: train2d" in message and "model.pretrained" not in message
    assert not (tmp_path / "model3d_init.pt").exists()
