"""A killed training stage continues from its last epoch and ends with the same model (gva.train.resume)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from tests.test_train import _cfg, _paths, _tiny_dataset, _TinyNet, _train2d, _write_stores

import gva.train.loop as loop
from gva.models.checkpoint import load_checkpoint
from gva.train.loop import fit
from gva.train.resume import ENV, Resume
from gva.train.stage import run_train2d


class _DropNet(_TinyNet):
    """Dropout draws from torch's generator: a resume must restore it to give the same model."""

    def __init__(self) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.5)

    def forward(self, x):
        return self.fc(self.drop(torch.flatten(self.pool(torch.relu(self.bn(self.conv(x)))), 1)))


class _Killed(Exception):
    pass


def _kill_at(monkeypatch, epoch: int) -> None:
    """Make the loop die when it starts ``epoch`` (once), as a killed process would."""
    real = loop._epoch
    state = {"armed": True}

    def epoch_or_die(model, st, cfg, e, desc, dist):
        if e == epoch and state["armed"]:
            state["armed"] = False
            raise _Killed(f"killed at epoch {e}")
        return real(model, st, cfg, e, desc, dist)

    monkeypatch.setattr(loop, "_epoch", epoch_or_die)


def _fit(cfg, live: str, resume: Resume | None):
    torch.manual_seed(0)
    model = _DropNet()
    result = fit(model, _tiny_dataset(8, seed=0), _tiny_dataset(4, seed=1), cfg.train, epochs=4, batch_size=4,
                 live_dir=live, resume=resume)
    return model, result


def _same_rows(a: list[dict], b: list[dict]) -> bool:
    strip = [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in (*a, *b)]
    return strip[:len(a)] == strip[len(a):]


def test_a_fit_killed_after_two_epochs_resumes_to_the_same_model(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(train={"augment": True})
    reference, ref_result = _fit(cfg, "live-ref", None)

    resume = Resume(tmp_path / "state" / "train-x.pt", "train")
    _kill_at(monkeypatch, 3)
    with pytest.raises(_Killed):
        _fit(cfg, "live-killed", resume)
    assert resume.load().epoch == 2  # epochs 1-2 saved, atomically (no temporaries left)
    assert not [p for p in resume.path.parent.iterdir() if p != resume.path]

    model, result = _fit(cfg, "live", resume)
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    assert result.best_epoch == ref_result.best_epoch and _same_rows(result.history, ref_result.history)
    assert len(result.history) == 4 and result.train_time_s > 0
    rows = Path("live/plots/metrics/val/top1.tsv").read_text().splitlines()
    assert len(rows) == 5  # header + all four epochs, the two before the kill logged again
    assert resume.load().epoch == 4  # fit leaves it; the stage clears it after writing its outputs


def test_a_damaged_state_is_reported_and_the_run_starts_afresh(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg()
    reference, _ = _fit(cfg, "live-ref", None)
    resume = Resume(tmp_path / "train-x.pt", "train")
    resume.path.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING, logger="gva.train.resume"):
        model, result = _fit(cfg, "live", resume)
    assert "ignoring the unreadable epoch state" in caplog.text and str(resume.path) in caplog.text
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_a_killed_train2d_stage_resumes_and_clears_its_state(tmp_path, monkeypatch, caplog,
                                                             _train_resume_in_tmp):
    states = _train_resume_in_tmp
    cfg = _cfg(train2d={"epochs": 3})
    ref = tmp_path / "ref"
    _write_stores(ref)
    _train2d(cfg, _paths(ref))
    assert not list(states.iterdir())  # a finished stage leaves no state behind

    run = tmp_path / "run"
    _write_stores(run)
    p = _paths(run)
    _kill_at(monkeypatch, 2)
    with pytest.raises(_Killed):
        _train2d(cfg, p)
    (saved,) = states.iterdir()
    assert saved.name.startswith("train2d-") and not p["m2"].exists()
    with caplog.at_level(logging.INFO, logger="gva.train.resume"):
        run_train2d(cfg, p["curated"], p["extra"], p["m2"], p["live2"])
    assert f"resuming after epoch 1 from {saved}" in caplog.text
    assert not list(states.iterdir())
    m_ref, meta_ref = load_checkpoint(_paths(ref)["m2"])
    m_run, meta_run = load_checkpoint(p["m2"])
    for k, v in m_ref.state_dict().items():
        assert torch.equal(m_run.state_dict()[k], v), k
    assert meta_run.training.best_epoch == meta_ref.training.best_epoch
    assert _same_rows(meta_run.training.history, meta_ref.training.history)
    assert json.loads((p["live2"] / "metrics.json").read_text())["best_epoch"] == meta_ref.training.best_epoch


def _key(model: nn.Module, inputs: list[Path], **settings) -> Path:
    resume = Resume.for_stage("train2d", model, inputs, {"lr": 0.1, **settings}, directory=Path("states"))
    assert resume is not None
    return resume.path


def test_the_state_is_only_picked_up_by_the_same_run(tmp_path, monkeypatch):
    data = tmp_path / "images.npy"
    data.write_bytes(b"\x00" * 64)
    torch.manual_seed(0)
    model = _TinyNet()
    same = _key(model, [data])
    assert _key(model, [data]) == same
    assert _key(model, [data], lr=0.2) != same                 # a setting
    torch.manual_seed(1)
    assert _key(_TinyNet(), [data]) != same                    # the initial weights
    data.write_bytes(b"\x01" + b"\x00" * 63)
    assert _key(model, [data]) != same                         # the input's bytes
    monkeypatch.setenv(ENV, "0")
    assert Resume.for_stage("train2d", model, [data], {}) is None


def test_a_state_that_cannot_be_saved_warns_and_the_run_goes_on(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg()
    reference, _ = _fit(cfg, "live-ref", None)
    (tmp_path / "blocked").write_text("a file where the state directory would be")
    resume = Resume(tmp_path / "blocked" / "train-x.pt", "train")
    with caplog.at_level(logging.WARNING, logger="gva.train.resume"):
        model, result = _fit(cfg, "live", resume)
    assert caplog.text.count("cannot save the epoch state") == 1 and len(result.history) == 4
    for k, v in reference.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
