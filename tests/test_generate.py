"""svd_generate: generator contracts (seeding, batch/order invariance, first frame), controls, the stage.

The tiny-svd generator (random weights, 2 steps, 64 px) stands in for SVD: same pipeline class and
code path. Resume-after-SIGKILL and multi-process tests live in test_generate_resume.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from gva.config import MotionConfig, config_from_dict
from gva.data.arrays import IndexRow, open_clips, read_index, write_array, write_index
from gva.generate.base import build_generator, check_images, image_seed, quantise

TINY = {"generator": "tiny-svd", "steps": 2, "height": 64, "width": 64, "frames": 3,
        "batch_size": 4, "chunk_size": 4, "previews_per_class": 1}
# The generator-level tests generate at 32 px (the 64-px images are resized down, the frames back
# up): 4x cheaper on a shared CPU, same code path. The stage test runs at 64 px.
TINY32 = {**TINY, "height": 32, "width": 32}


def make_curated(directory: Path, n: int = 6, size: int = 64, seed: int = 0, classes: int = 2) -> np.ndarray:
    """A tiny curated store written with gva.data.arrays: random images, splits cycling test/train/val."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    splits = ["test", "train", "val"]
    rows = [IndexRow(100 + i, splits[i % 3], f"n{i % classes:08d}", f"class {i % classes}", i % classes,
                     f"img_{i}.JPEG") for i in range(n)]
    write_array(directory / "images.npy", images)
    write_index(directory / "index.csv", rows)
    return images


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine, 2 OpenMP threads spin-wait and run 5x slower."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def tiny(cache_root):
    """The tiny-svd generator, built once (and saved/loaded through its model directory)."""
    return build_generator(config_from_dict({"svd": TINY32}).svd, device="cpu", cache_root=str(cache_root))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)


# --- seeding and input checks ----------------------------------------------------------------------

def test_image_seed_is_a_stable_function_of_seed_and_id():
    assert image_seed(0, 0) == 4442325741562135806  # fixed across processes and Python versions
    assert image_seed(0, 1) == 7615433632971073151
    assert image_seed(1, 0) == 7577498895704017688
    assert len({image_seed(s, i) for s in range(3) for i in range(100)}) == 300
    assert all(0 <= image_seed(5, i) < 2 ** 63 for i in range(10))


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8, 3), np.uint8), r"\[B,H,W,3\]"),
    (np.zeros((2, 8, 8, 4), np.uint8), r"\[B,H,W,3\]"),
    ([[1, 2]], "numpy array"),
])
def test_bad_images_are_rejected_with_a_clear_message(bad, message):
    with pytest.raises(ValueError, match=message):
        check_images(bad)
    gen = build_generator(config_from_dict({"svd": {"generator": "repeat"}}).svd)
    with pytest.raises(ValueError, match=message):
        gen.generate(bad, [0, 1])


def test_seed_count_must_match():
    gen = build_generator(config_from_dict({"svd": {"generator": "motion"}}).svd)
    with pytest.raises(ValueError, match="2 images but 3 seeds"):
        gen.generate(np.zeros((2, 8, 8, 3), np.uint8), [1, 2, 3])


def test_quantise_rounds_and_clips():
    x = np.array([-0.1, 0.0, 0.5 / 255, 0.49, 1.0, 1.2], np.float32)
    assert quantise(x).tolist() == [0, 0, 0, 125, 255, 255]  # rint: half to even


# --- controls ----------------------------------------------------------------------------------

def test_repeat_repeats_the_image(images):
    gen = build_generator(config_from_dict({"svd": {"generator": "repeat", "frames": 5}}).svd)
    clips = gen.generate(images, [0, 1, 2, 3])
    assert clips.shape == (4, 5, 64, 64, 3) and clips.dtype == np.uint8
    assert all(np.array_equal(clips[:, t], images) for t in range(5))


def test_motion_properties(images):
    cfg = config_from_dict({"svd": {"generator": "motion", "frames": 4}}).svd
    gen = build_generator(cfg)
    seeds = [image_seed(0, i) for i in range(4)]
    clips = gen.generate(images, seeds)
    assert clips.shape == (4, 4, 64, 64, 3) and clips.dtype == np.uint8
    assert np.array_equal(clips[:, 0], images)  # frame 0 is the image
    # frames move away from the original progressively (linear camera motion)
    diffs = [np.abs(clips[:, t].astype(int) - images).mean() for t in range(4)]
    assert diffs[0] == 0 < diffs[1] < diffs[3]
    # deterministic, batch- and order-invariant, seed-dependent
    assert np.array_equal(clips, gen.generate(images, seeds))
    assert np.array_equal(clips[2:3], gen.generate(images[2:3], seeds[2:3]))
    assert np.array_equal(clips[::-1], gen.generate(images[::-1].copy(), seeds[::-1]))
    other = gen.generate(images[:1], [seeds[0] + 1])
    assert not np.array_equal(other[0, 3], clips[0, 3])


def test_motion_without_motion_is_repeat(images):
    from gva.generate.controls import MotionGenerator

    gen = MotionGenerator(3, MotionConfig(max_zoom=0.0, max_shift=0.0, max_rotate=0.0))
    clips = gen.generate(images, [1, 2, 3, 4])
    assert np.abs(clips.astype(int) - images[:, None]).max() <= 1  # identity warp, up to float rounding


def test_motion_shift_moves_content():
    """A pure pan of a known pattern moves it by the sampled fraction of the side."""
    from gva.generate.controls import MotionGenerator, motion_params

    cfg = MotionConfig(max_zoom=0.0, max_shift=0.1, max_rotate=0.0)
    img = np.zeros((1, 64, 64, 3), np.uint8)
    img[0, 28:36, 28:36] = 255  # a bright square in the centre
    seed = 3
    _, sx, sy, _ = motion_params(seed, cfg)
    last = MotionGenerator(2, cfg).generate(img, [seed])[0, 1, ..., 0].astype(float)
    ys, xs = np.nonzero(last > 127)
    # output(x) = input(x + shift): content moves by -shift * side
    assert xs.mean() == pytest.approx(31.5 - sx * 64, abs=1.0)
    assert ys.mean() == pytest.approx(31.5 - sy * 64, abs=1.0)


# --- tiny-svd ----------------------------------------------------------------------------------

def test_tiny_svd_shapes_dtype_and_first_frame(tiny, images):
    seeds = [11, 12, 13, 14]
    clips = tiny.generate(images, seeds)
    assert clips.shape == (4, 3, 64, 64, 3) and clips.dtype == np.uint8
    assert np.array_equal(clips[:, 0], images)  # first_frame: original
    assert all(np.abs(clips[:, t].astype(int) - images).mean() > 5 for t in (1, 2))  # frames really generated
    info = tiny.describe()
    assert info["scheduler_step"] == "float64" and info["decode"] == "per clip"
    assert Path(info["model"], "model_index.json").is_file()  # loaded through from_pretrained


def test_tiny_svd_first_frame_generated(tiny, images):
    seeds = [11, 12]
    orig = tiny.generate_float(images[:2], seeds)
    tiny.first_frame_original = False
    try:
        gen = tiny.generate_float(images[:2], seeds)
    finally:
        tiny.first_frame_original = True
    assert np.abs(gen[:, 0] - images[:2] / 255.0).mean() > 0.02  # frame 0 from the model
    np.testing.assert_allclose(gen[:, 1:], orig[:, 1:], atol=1e-6)  # same model call otherwise


def test_tiny_svd_determinism(tiny, images):
    seeds = [21, 22, 23, 24]
    a = tiny.generate(images, seeds)
    assert np.array_equal(a, tiny.generate(images, seeds))  # same seeds -> same bytes
    b = tiny.generate(images, [99, 22, 23, 24])
    assert np.abs(a[0, 1:].astype(int) - b[0, 1:]).mean() > 5  # another seed -> another clip
    assert np.abs(a[1:].astype(int) - b[1:]).max() <= 1  # ... and nothing else changes


def test_tiny_svd_batch_and_order_invariance(tiny, images):
    seeds = [31, 32, 33, 34]
    batched = tiny.generate_float(images, seeds)  # batch_size 4: one pipeline call
    old = tiny.batch_size
    try:
        tiny.batch_size = 1
        alone = tiny.generate_float(images, seeds)
        tiny.batch_size = 3  # batches [3,2,1] and [0] in reversed order
        reordered = tiny.generate_float(images[::-1].copy(), seeds[::-1])[::-1]
    finally:
        tiny.batch_size = old
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(batched, reordered, atol=1e-5, rtol=0)


def test_decode_chunk_larger_than_frames_does_not_mix_clips(tiny, images):
    """decode_chunk_size 6 = 2 clips of 3 frames: the stock decoder loop would mix them; gva's doesn't."""
    import torch

    seeds = [41, 42]
    ref = tiny.generate_float(images[:2], seeds)
    old = tiny.decode_chunk_size, tiny.batch_size
    try:
        tiny.decode_chunk_size, tiny.batch_size = 6, 2
        per_clip = tiny.generate_float(images[:2], seeds)
        tiny.batch_size = 1
        alone = tiny.generate_float(images[:2], seeds)
    finally:
        tiny.decode_chunk_size, tiny.batch_size = old
    np.testing.assert_allclose(per_clip, alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(per_clip, ref, atol=1e-5, rtol=0)  # chunk >= frames: whole clip at once
    # The pitfall itself: the pipeline's decode_latents over a 2-clip batch with chunk 6 mixes clips.
    pipe = tiny.pipe
    lat = torch.randn(2, 3, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mixed = pipe.decode_latents(lat, 3, 6)
        separate = torch.cat([pipe.decode_latents(lat[i:i + 1], 3, 6) for i in range(2)])
    assert (mixed - separate).abs().max().item() > 1e-3


def test_unreachable_model_is_a_clear_error(tmp_path):
    cfg = config_from_dict({"svd": {"generator": "svd", "model": "no-such-org/no-such-model-gva-test"}}).svd
    with pytest.raises(RuntimeError, match="cannot load svd.model 'no-such-org/no-such-model-gva-test'"):
        build_generator(cfg, device="cpu", cache_root=str(tmp_path))
    (tmp_path / "notamodel").mkdir()
    cfg = config_from_dict({"svd": {"generator": "svd", "model": str(tmp_path / "notamodel")}}).svd
    with pytest.raises(ValueError, match="not a diffusers pipeline directory"):
        build_generator(cfg, device="cpu", cache_root=str(tmp_path))


def test_height_width_must_be_multiples_of_8(tmp_path):
    cfg = config_from_dict({"svd": {**TINY, "height": 60}}).svd
    with pytest.raises(ValueError, match="multiples of 8"):
        build_generator(cfg, device="cpu", cache_root=str(tmp_path))


# --- the stage ---------------------------------------------------------------------------------

def test_stage_end_to_end_tiny_svd(tmp_path, cache_root):
    from gva.data.video import read_mp4
    from gva.generate.stage import run

    images = make_curated(tmp_path / "curated", n=6)
    cfg = config_from_dict({"svd": {**TINY, "chunk_size": 4, "preview_fps": 5}})
    out = tmp_path / "clips"
    record = run(cfg, curated_dir=tmp_path / "curated", out_dir=out, cache_root=cache_root, progress=False)

    store = open_clips(out)  # memory-mapped, shape/rank/channels checked, rows == index rows
    assert isinstance(store.array, np.memmap)
    assert store.array.shape == (6, 3, 64, 64, 3) and store.array.dtype == np.uint8
    assert store.rows == read_index(tmp_path / "curated" / "index.csv")
    assert (out / "index.csv").read_bytes() == (tmp_path / "curated" / "index.csv").read_bytes()
    assert np.array_equal(store.array[:, 0], images)
    # seeds follow (svd.seed, id): the stage's clips equal the generator's on those seeds
    gen = build_generator(cfg.svd, device="cpu", cache_root=str(cache_root))
    direct = gen.generate(images[:2], [image_seed(0, 100), image_seed(0, 101)])
    assert np.abs(direct.astype(int) - store.array[:2]).max() <= 1

    meta = json.loads((out / "generation.json").read_text())
    assert meta == record
    assert meta["generator"] == "tiny-svd" and meta["settings"]["steps"] == 2
    assert meta["generated_images"] == 6 and meta["resumed_images"] == 0 and meta["images_per_s"] > 0
    assert meta["total_seconds"] > 0 and {"torch", "diffusers", "transformers", "numpy"} <= set(meta["versions"])
    assert meta["resolved"]["generator"]["class"] == "SvdGenerator"

    previews = sorted((out / "previews").iterdir())
    assert [p.name for p in previews] == meta["previews"]
    assert len(previews) == 2  # previews_per_class 1, 2 classes, test split first
    assert all("_test_" in p.name for p in previews)
    frames, info = read_mp4(previews[0])
    assert frames.shape == (3, 64, 64, 3) and info["codec"] == "h264" and info["pix_fmt"] == "yuv420p"
    assert info["fps"] == pytest.approx(5)
    # H.264 yuv420p is lossy (and random-noise images are its worst case): the preview must still be
    # much closer to its own clip than to another one
    own = np.abs(frames.astype(int) - store.array[0]).mean()
    assert own < 0.7 * np.abs(frames.astype(int) - store.array[3]).mean()

    # A re-run with unchanged clip settings only re-assembles from the cache, with identical bytes;
    # batch/chunk/preview knobs are not part of the key.
    before = (out / "clips.npy").read_bytes()
    cfg2 = config_from_dict({"svd": {**TINY, "chunk_size": 5, "batch_size": 2, "previews_per_class": 0}})
    again = run(cfg2, curated_dir=tmp_path / "curated", out_dir=out, cache_root=cache_root, progress=False)
    assert again["generated_images"] == 0 and again["resumed_images"] == 6
    assert (out / "clips.npy").read_bytes() == before
    assert again["previews"] == [] and not any((out / "previews").iterdir())


def test_stage_cache_key_tracks_settings_and_data(tmp_path):
    from gva.generate.base import cache_settings
    from gva.generate.stage import cache_key

    base = config_from_dict({"svd": TINY}).svd
    key = cache_key(cache_settings(base, "cpu"), "data")
    same = config_from_dict({"svd": {**TINY, "batch_size": 1, "chunk_size": 9, "processes": 2,
                                     "preview_fps": 3, "previews_per_class": 0}}).svd
    assert cache_key(cache_settings(same, "cpu"), "data") == key
    for change in ({"steps": 3}, {"seed": 1}, {"frames": 4}, {"height": 72}, {"first_frame": "generated"},
                   {"decode_chunk_size": 1}, {"noise_aug_strength": 0.1}):
        other = config_from_dict({"svd": {**TINY, **change}}).svd
        assert cache_key(cache_settings(other, "cpu"), "data") != key, change
    assert cache_key(cache_settings(base, "cpu"), "other data") != key
    assert cache_key(cache_settings(base, "cuda"), "data") != key
    # controls depend only on what they read
    rep = config_from_dict({"svd": {"generator": "repeat"}}).svd
    rep2 = config_from_dict({"svd": {"generator": "repeat", "steps": 30, "seed": 4}}).svd
    assert cache_settings(rep, "cpu") == cache_settings(rep2, "cpu")


def test_stage_motion_resumes_partial_cache(tmp_path):
    """Delete some committed chunks: only those rows are regenerated, bytes unchanged."""
    from gva.generate.stage import run

    make_curated(tmp_path / "curated", n=7)
    cfg = config_from_dict({"svd": {"generator": "motion", "chunk_size": 2, "previews_per_class": 0}})
    kw = dict(curated_dir=tmp_path / "curated", out_dir=tmp_path / "clips", cache_root=tmp_path / "cache",
              progress=False)
    first = run(cfg, **kw)
    ref = (tmp_path / "clips" / "clips.npy").read_bytes()
    chunks = sorted(Path(first["resolved"]["cache_dir"]).glob("clips_*.npy"))
    assert len(chunks) == 4
    chunks[1].unlink()
    chunks[3].unlink()
    second = run(cfg, **kw)
    assert second["generated_images"] == 3 and second["resumed_images"] == 4
    assert (tmp_path / "clips" / "clips.npy").read_bytes() == ref


def test_stage_failure_late_leaves_previous_clips_whole(tmp_path, monkeypatch):
    """A failure while writing the outputs (here: the MP4 previews) keeps the old data/clips as it was."""
    import gva.generate.stage as stage

    make_curated(tmp_path / "curated", n=4)
    kw = dict(curated_dir=tmp_path / "curated", out_dir=tmp_path / "clips", cache_root=tmp_path / "cache",
              progress=False)
    stage.run(config_from_dict({"svd": {"generator": "repeat", "previews_per_class": 0}}), **kw)
    before = {p.name: p.read_bytes() for p in (tmp_path / "clips").iterdir() if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("no H.264 encoder")

    monkeypatch.setattr(stage, "write_previews", broken)
    with pytest.raises(RuntimeError, match="no H.264 encoder"):
        stage.run(config_from_dict({"svd": {"generator": "motion"}}), **kw)
    after = {p.name: p.read_bytes() for p in (tmp_path / "clips").iterdir() if p.is_file()}
    assert after == before and set(before) >= {"clips.npy", "index.csv", "generation.json"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


@pytest.mark.parametrize("problem", ["empty_split", "float_images", "no_store"])
def test_stage_bad_input(tmp_path, problem, monkeypatch, capsys):
    from gva.cli import main

    curated = tmp_path / "data" / "curated"
    if problem == "empty_split":
        make_curated(curated, n=6)
        rows = [r for r in read_index(curated / "index.csv") if r.split != "test"]
        write_array(curated / "images.npy", np.zeros((len(rows), 64, 64, 3), np.uint8))
        write_index(curated / "index.csv", rows)
        expected = r"split\(s\) test are empty"
    elif problem == "float_images":
        make_curated(curated, n=3)
        np.save(curated / "images.npy", np.zeros((3, 64, 64, 3), np.float32))
        expected = "expected uint8"
    else:
        expected = "index file not found|array file not found"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"svd": {"generator": "repeat"}}))
    monkeypatch.chdir(tmp_path)
    assert main(["svd_generate"]) == 1  # the CLI prints one line, no traceback
    err = capsys.readouterr().err
    assert "gva svd_generate: error:" in err and "Traceback" not in err
    import re

    assert re.search(expected, err), err
    assert not (tmp_path / "data" / "clips" / "clips.npy").exists()
