"""Precision, memory layout and compile: settings checked per device, weights stay float32, the
compile fallback is loud, and what actually ran is recorded."""

from __future__ import annotations

import logging

import pytest
import torch
from tests.test_train import _cfg, _tiny_dataset, _TinyNet

from gva.errors import ConfigError
from gva.execution import Execution, FastInference
from gva.models import build_backbone, inflate
from gva.train.loop import fit


def test_fp16_needs_a_gpu_and_names_the_section():
    with pytest.raises(ConfigError, match="evaluate.precision fp16 needs a CUDA device"):
        Execution.resolve("fp16", False, False, "cpu", "evaluate")
    assert Execution.resolve("bf16", True, False, "cpu").grad_scaler() is None


@pytest.mark.parametrize("clips", [False, True])
def test_fast_inference_is_close_to_fp32_and_returns_float32(clips):
    torch.manual_seed(0)
    model = build_backbone("timm:test_resnet", 3, pretrained=False).eval()
    x = torch.randn(2, 3, 32, 32)
    if clips:
        model = inflate(model, probe_size=32).eval()
        x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        fast = FastInference(model, Execution.resolve("bf16", True, False, "cpu"), clips)
        out = fast(x)
    assert out.dtype == torch.float32 and fast.describe() == {"precision": "bf16", "channels_last": True,
                                                              "compile": False}
    assert next(model.parameters()).dtype == torch.float32   # weights are never cast
    torch.testing.assert_close(out, ref, rtol=0.1, atol=0.15)  # bf16 keeps ~3 significant digits
    weight = next(p for p in model.parameters() if p.dim() >= 4)
    fmt = torch.channels_last_3d if clips else torch.channels_last
    assert weight.is_contiguous(memory_format=fmt)


def test_fit_in_bf16_channels_last_keeps_fp32_weights_and_records_it(tmp_path):
    torch.manual_seed(0)
    cfg = _cfg(train={"precision": "bf16", "channels_last": True})
    model = _TinyNet()
    res = fit(model, _tiny_dataset(8), _tiny_dataset(4, seed=1), cfg.train, epochs=2, batch_size=4,
              live_dir=tmp_path / "live")
    assert res.execution == {"precision": "bf16", "channels_last": True, "compile": False}
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_failing_compile_backend_warns_and_runs_eager(tmp_path, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("InductorError: no working C++ compiler found\nmore detail")

    monkeypatch.setattr(torch, "compile", broken)
    cfg = _cfg(train={"compile": True})
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING):
        res = fit(_TinyNet(), _tiny_dataset(8), None, cfg.train, epochs=1, batch_size=4, live_dir=tmp_path / "l")
    assert "torch.compile failed (RuntimeError: InductorError: no working C++ compiler found); running eager" \
        in caplog.text
    assert res.execution["compile"] is False   # what ran, not what was asked for


def test_a_working_compile_is_used_for_training(tmp_path, monkeypatch):
    calls = []

    class Compiled(torch.nn.Module):  # stands in for inductor's OptimizedModule (minutes on this CPU)
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)

    def fake_compile(model, *args, **kwargs):
        calls.append(model)
        return Compiled(model)

    monkeypatch.setattr(torch, "compile", fake_compile)
    torch.manual_seed(0)
    res = fit(_TinyNet(), _tiny_dataset(8), None, _cfg(train={"compile": True}).train, epochs=1, batch_size=4,
              live_dir=tmp_path / "l")
    assert len(calls) == 1 and res.execution["compile"] is True
