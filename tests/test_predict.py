"""`gva predict`: a tiny trained run, its outputs for known inputs, the JSON schema, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import FAKE_CLASSES, make_tiny_imagenet
from gva.config import load_config
from gva.predict import file_seed, load_image

GVA = [sys.executable, "-m", "gva.cli"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A whole tiny run (curate -> motion clips -> train2d -> inflate -> train3d) in a folder."""
    from gva.data.curate import run as curate
    from gva.data.frames import run as extra_frames
    from gva.generate.stage import run as generate
    from gva.models.stage import run_inflate
    from gva.train.stage import run_train2d, run_train3d

    root = tmp_path_factory.mktemp("predict")
    data = make_tiny_imagenet(root / "tin", n_train=12, n_val=3)
    params = {
        "data": {"source": str(data), "classes": FAKE_CLASSES, "image_size": 32},
        "svd": {"generator": "motion", "frames": 3, "previews_per_class": 0},
        "model": {"arch": "timm:test_resnet", "pretrained": False},
        "train": {"image_size": 32, "lr": 0.05, "num_workers": 0, "device": "cpu"},
        "train2d": {"epochs": 3, "batch_size": 8},
        "inflate": {"last_n": 2},
        "train3d": {"epochs": 2, "batch_size": 4},
    }
    run = root / "run"
    run.mkdir()
    (run / "params.yaml").write_text(yaml.safe_dump(params))
    cfg = load_config(run / "params.yaml")
    cwd = os.getcwd()
    os.chdir(run)
    try:
        for stage in (curate, generate, extra_frames, run_train2d, run_inflate, run_train3d):
            stage(cfg)
    finally:
        os.chdir(cwd)
    return run


def predict(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(GVA + ["predict", *args], capture_output=True, text=True, cwd=cwd)


def val_images(run: Path) -> list[tuple[Path, int]]:
    data = run.parent / "tin"
    rows = [l.split("\t") for l in (data / "val/val_annotations.txt").read_text().splitlines()]
    return [(data / "val/images" / r[0], FAKE_CLASSES.index(r[1])) for r in rows if r[1] in FAKE_CLASSES]


def test_json_output_matches_the_model_on_the_generated_clip(run_dir):
    from gva.data.loader import to_model_input
    from gva.generate import build_generator
    from gva.models.checkpoint import load_checkpoint

    files = val_images(run_dir)
    proc = predict(["--run", str(run_dir), "--json", "--top-k", "2", "--batch-size", "4",
                    *[str(f) for f, _ in files]])
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(l) for l in proc.stdout.splitlines()]
    assert [o["file"] for o in out] == [str(f) for f, _ in files]

    cfg = load_config(run_dir / "params.yaml")
    model, meta = load_checkpoint(run_dir / "models/model3d.pt")
    gen = build_generator(cfg.svd, device="cpu")
    correct = 0
    for o, (f, label) in zip(out, files):
        assert o["ok"] is True and set(o["latency_ms"]) == {"decode", "generate", "classify", "total"}
        assert all(v >= 0 for v in o["latency_ms"].values())
        assert len(o["predictions"]) == 2
        assert set(o["predictions"][0]) == {"class_name", "wnid", "label", "probability"}
        # the same clip the training clips would be: built here independently, then classified
        image = load_image(f, cfg.data.image_size)
        clip = gen.generate(image[None], [file_seed(cfg.svd.seed, f.read_bytes())])
        with torch.no_grad():
            probs = torch.softmax(model(to_model_input(torch.from_numpy(clip), meta.input_size,
                                                       meta.mean, meta.std)), 1)[0]
        top = int(probs.argmax())
        assert o["predictions"][0]["label"] == top
        assert o["predictions"][0]["wnid"] == FAKE_CLASSES[top]
        assert o["predictions"][0]["probability"] == pytest.approx(float(probs[top]), abs=1e-5)
        correct += top == label
    assert correct > len(files) / 3  # colour-coded classes: better than chance after training


def test_text_output_2d_and_same_results_twice(run_dir):
    f = val_images(run_dir)[0][0]
    a = predict(["--run", str(run_dir), "--model", "2d", str(f)])
    b = predict(["--run", str(run_dir), "--model", "2d", str(f)])
    assert a.returncode == 0, a.stderr
    assert a.stdout.startswith(f"{f}: ") and "classify" in a.stdout and "generate 0.0 ms" in a.stdout
    strip = lambda s: s.split("[")[0]  # latencies differ run to run, predictions must not
    assert strip(a.stdout) == strip(b.stdout)


def test_folder_input_and_unusual_images(run_dir, tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (50, 70), dtype=np.uint8), "L").save(tmp_path / "grey.png")
    Image.fromarray(rng.integers(0, 255, (40, 40, 4), dtype=np.uint8), "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(rng.integers(0, 65535, (30, 30), dtype=np.uint16)).save(tmp_path / "deep.png")
    Image.fromarray(rng.integers(0, 255, (3000, 4000, 3), dtype=np.uint8)).save(tmp_path / "big.jpg")
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "trunc.jpg").write_bytes((tmp_path / "big.jpg").read_bytes()[:5000])
    proc = predict(["--run", str(run_dir), "--json", str(tmp_path), str(tmp_path / "missing.jpg")])
    assert proc.returncode == 1  # some files failed
    out = {Path(o["file"]).name: o for o in map(json.loads, proc.stdout.splitlines())}
    assert set(out) == {"grey.png", "rgba.png", "deep.png", "big.jpg", "notes.png", "trunc.jpg", "missing.jpg"}
    for ok in ("grey.png", "rgba.png", "deep.png", "big.jpg"):
        assert out[ok]["ok"], out[ok]
    for bad, why in (("notes.png", "not a readable image"), ("trunc.jpg", "not a readable image"),
                     ("missing.jpg", "file not found")):
        assert not out[bad]["ok"] and why in out[bad]["error"]


def test_sixteen_bit_images_are_scaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 65535, 64)[None, :].repeat(64, 0)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    img = load_image(tmp_path / "deep.png", 64)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert img[0, 0, 0] < 10 and img[0, -1, 0] > 245 and len(np.unique(img[0, :, 0])) > 30


def test_checkpoint_that_does_not_match_the_params(run_dir, tmp_path):
    params = yaml.safe_load((run_dir / "params.yaml").read_text())
    params["data"]["classes"] = FAKE_CLASSES[:2]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    f = str(val_images(run_dir)[0][0])
    proc = subprocess.run(GVA + ["--params", str(tmp_path / "p.yaml"), "predict", "--checkpoint",
                                 str(run_dir / "models/model3d.pt"), f], capture_output=True, text=True)
    assert proc.returncode == 2 and "has 3 classes but the run's params list 2" in proc.stderr
    params["data"]["classes"] = FAKE_CLASSES
    params["model"]["arch"] = "resnet18"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(GVA + ["--params", str(tmp_path / "p.yaml"), "predict", "--checkpoint",
                                 str(run_dir / "models/model3d.pt"), f], capture_output=True, text=True)
    assert proc.returncode == 2 and "does not match the run's model.arch 'resnet18'" in proc.stderr
    proc = predict(["--run", str(tmp_path), f])
    assert proc.returncode == 2 and "params file not found" in proc.stderr
    # same number of classes, other classes: refused by their ids, not only their count
    params["model"]["arch"] = "timm:test_resnet"
    params["data"]["classes"] = [FAKE_CLASSES[0], FAKE_CLASSES[2], FAKE_CLASSES[1]]
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run(GVA + ["--params", str(tmp_path / "p.yaml"), "predict", "--checkpoint",
                                 str(run_dir / "models/model3d.pt"), f], capture_output=True, text=True)
    assert proc.returncode == 2 and "classes differ from the run's data.classes" in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line, no traceback


@pytest.mark.parametrize("args, message", [
    (["--top-k", "-3"], "--top-k must be at least 1"), (["--top-k", "0"], "--top-k must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--batch-size", "-1"], "--batch-size must be at least 1")])
def test_bad_arguments_are_refused(run_dir, args, message):
    proc = predict(["--run", str(run_dir), *args, str(val_images(run_dir)[0][0])])
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def test_an_empty_folder_is_an_error_not_silence(run_dir, tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    proc = predict(["--run", str(run_dir), str(tmp_path)])
    assert proc.returncode == 2 and "no image files in this folder" in proc.stderr


def test_errors_do_not_leak_internals(run_dir, tmp_path):
    (tmp_path / "junk.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "empty.pt").write_bytes(b"")
    proc = predict(["--run", str(run_dir), "--json", str(tmp_path / "junk.png")])
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert "not a readable image" in error and "0x" not in error and "BytesIO" not in error
    proc = subprocess.run(GVA + ["--params", str(run_dir / "params.yaml"), "predict", "--checkpoint",
                                 str(tmp_path / "empty.pt"), str(tmp_path / "junk.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "empty file, not a checkpoint" in proc.stderr


def test_unreadable_file_is_one_failed_result_not_a_crash(run_dir, monkeypatch):
    """An OSError while reading (permissions, I/O) fails that file only; the others are classified."""
    from gva.predict import Predictor

    good, _ = val_images(run_dir)[0]
    locked = good.parent / "locked.jpg"
    real_read = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self.name == locked.name:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    locked.write_bytes(real_read(good))
    try:
        predictor = Predictor(load_config(run_dir / "params.yaml"), run_dir / "models" / "model3d.pt", "3d", "cpu")
        preds = list(predictor.predict_files([locked, good], top_k=2, batch_size=4))
    finally:
        locked.unlink()
    assert [p.ok for p in preds] == [False, True]
    assert "Permission denied" in preds[0].error


def test_dash_is_refused_and_the_help_says_stdin_is_not_read(capsys):
    """Issue 26: `gva predict -` read no stdin (it looked for a file named '-')."""
    from gva import cli
    from gva.errors import PredictError
    from gva.predict import expand_inputs

    with pytest.raises(PredictError, match=r"'-': standard input is not read; pass image files or folders"):
        expand_inputs(["a.png", "-"])
    with pytest.raises(SystemExit):
        cli.main(["predict", "--help"])
    assert "standard input is not read" in " ".join(capsys.readouterr().out.split())
