"""benchmarks/generate.py's FLOP count: the meta replay counts what a real CPU run of the same call counts."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import load_script
from gva.config import SvdConfig

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "generate.py"
#: Canvas of each tiny build (tiny CogVideoX's learned position table: 16x16 only).
SIZES = {"svd": 32, "cogvideox": 16, "ltx": 32, "wan": 16, "i2vgen": 8}


@pytest.fixture(scope="module")
def bench():
    return load_script(BENCH, "bench_generate")


def _tiny(name: str):
    """The tiny build of ``name`` (gva.tiny), in memory."""
    import importlib

    module = importlib.import_module(f"gva.tiny.{name}")
    return module.build_tiny_pipeline() if name == "svd" else module.pipeline()


@pytest.mark.parametrize("name", list(SIZES))
def test_meta_replay_counts_the_real_call(bench, name):
    from torch.utils.flop_counter import FlopCounterMode

    cfg = replace(SvdConfig(), generator=name, height=SIZES[name], width=SIZES[name], steps=2)
    image = np.random.default_rng(0).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    gen = bench.make_generator(name, _tiny(name), cfg, batch_size=1)
    with FlopCounterMode(display=False, custom_mapping=bench.cpu_attention_flops()) as real:
        gen.generate_float(image, [0])

    report = bench.count_clip_flops(name, _tiny(name), cfg)
    assert real.get_total_flops() > 0
    assert report.total == real.get_total_flops()
    assert report.n_calls(report.denoiser) in (cfg.steps, 2 * cfg.steps)


def test_full_svd_build_compresses_8x(bench):
    pipe = bench.full_builds.full_svd_pipeline("meta", "fp32")
    assert pipe.vae_scale_factor == 8
    assert bench.full_builds.parameter_counts(pipe)["unet"] == 1_524_623_082


def test_cogvideox_native_size_is_the_full_builds_position_table(bench):
    """Family.native_size (read by the benchmark's canvas and settings) is what the full
    CogVideoX-5b-I2V architecture's learned position table fixes; the benchmark follows it."""
    import argparse

    from gva.generate.cogvideox import COGVIDEOX

    with torch.device("meta"):
        cfg = bench.full_builds._full_components("cogvideox", 1)[1]["transformer"]().config
    assert cfg.use_learned_positional_embeddings
    assert (cfg.sample_height * 8, cfg.sample_width * 8) == COGVIDEOX.native_size
    args = argparse.Namespace(height=None, width=None, size=None, frames=None, steps=None)
    settings = bench.gva_settings("cogvideox", args)
    assert (settings.height, settings.width) == COGVIDEOX.native_size
    assert bench.canvas_rule("cogvideox").startswith(f"{COGVIDEOX.native_size[0]}x{COGVIDEOX.native_size[1]} only")
    assert (bench.gva_settings("ltx", args).height, bench.canvas_rule("ltx")[:3]) == (SvdConfig.height, "min")
