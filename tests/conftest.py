"""Shared fixtures: a small synthetic dataset in the official Tiny ImageNet layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The real 10-class subset lies in ../shared beside the checkout; GVA_TINY_IMAGENET points elsewhere.
REAL_DATA = Path(os.environ.get("GVA_TINY_IMAGENET",
                                Path(__file__).resolve().parents[2] / "shared" / "data" / "tiny-imagenet-10"))
FAKE_CLASSES = ["n00000001", "n00000002", "n00000003"]


def make_tiny_imagenet(root: Path, classes=FAKE_CLASSES, n_train: int = 10, n_val: int = 4,
                       size: int = 64, seed: int = 0) -> Path:
    """Write a Tiny-ImageNet-layout dataset with class-dependent colours; returns ``root``.

    Image ``<wnid>_1.JPEG`` of the first class is greyscale (as 67 real images are). Extra rows
    in wnids/words/annotations for a class that is not chosen check that it is ignored.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    all_wnids = list(classes) + ["n09999999"]
    (root / "wnids.txt").write_text("\n".join(all_wnids) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\tclass {i}, synonym\n" for i, w in enumerate(all_wnids)))
    ann, k = [], 0
    (root / "val" / "images").mkdir(parents=True)
    for c, wnid in enumerate(all_wnids):
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        base = np.array([40 + 60 * c, 200 - 50 * c, 90], dtype=np.int16)
        for i in range(n_train):
            px = np.clip(base + rng.integers(-30, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            im = Image.fromarray(px)
            if c == 0 and i == 1:
                im = im.convert("L")
            im.save(folder / f"{wnid}_{i}.JPEG", quality=95)
        for _ in range(n_val):
            px = np.clip(base + rng.integers(-30, 30, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(px).save(root / "val" / "images" / f"val_{k}.JPEG", quality=95)
            ann.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t{size - 1}\t{size - 1}")
            k += 1
    order = rng.permutation(len(ann))  # the official file is not sorted by class
    (root / "val" / "val_annotations.txt").write_text("\n".join(ann[i] for i in order) + "\n")
    return root


@pytest.fixture
def fake_tin(tmp_path: Path) -> Path:
    return make_tiny_imagenet(tmp_path / "tin")


@pytest.fixture
def real_data() -> Path:
    if not REAL_DATA.is_dir():
        pytest.skip(f"real Tiny ImageNet subset not found at {REAL_DATA}")
    return REAL_DATA


def load_script(path: Path, name: str):
    """Import a script that is not a package module (a benchmark) under ``name``."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_dag_in(tmp_path: Path, monkeypatch, params_file: Path, overrides: dict) -> tuple[dict, dict]:
    """Write ``params_file`` updated by ``overrides`` (section -> values) into ``tmp_path``, run every
    stage there as `gva <stage>`, and return (metrics.json, generation.json)."""
    import json

    import yaml

    from gva.cli import STAGES, main

    params = yaml.safe_load(params_file.read_text())
    for section, values in overrides.items():
        params[section].update(values)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(tmp_path)
    for stage in STAGES:
        assert main([stage]) == 0, stage
    return (json.loads((tmp_path / "metrics" / "metrics.json").read_text()),
            json.loads((tmp_path / "data" / "clips" / "generation.json").read_text()))


@pytest.fixture(autouse=True)
def _train_resume_in_tmp(tmp_path_factory, monkeypatch):
    """Training stages called in-process keep their epoch states (gva.train.resume) out of the checkout."""
    where = tmp_path_factory.mktemp("train-resume")
    monkeypatch.setattr("gva.train.resume.root", lambda: where)
    return where
