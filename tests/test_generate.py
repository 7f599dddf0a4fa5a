"""svd_generate: generator contracts (seeding, batch/order invariance, first frame), controls, the
registry and the package's import structure, the stage.

The tiny-svd generator (random weights, 2 steps, 64 px) stands in for SVD: same pipeline class and
code path. Resume-after-SIGKILL and multi-process tests live in test_generate_resume.py; the cache
key, provenance and output determinism in test_generate_cache.py.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from gva.config import MotionConfig, config_from_dict
from gva.data.arrays import IndexRow, open_clips, read_index, write_array, write_index
from gva.errors import ConfigError, GenerationError, GvaError, StoreError
from gva.generate import GENERATORS, Generator, build_generator, image_seed
from gva.generate.base import check_images, quantise

SRC = Path(__file__).resolve().parents[1] / "src"

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
    assert info["class"] == "TinySvdGenerator" and info["model"] == "tiny-svd-v1" and info["device"] == "cpu"
    assert "batch_size" not in info  # a run knob, not a content fact
    assert Path(tiny.model_path, "model_index.json").is_file()  # loaded through from_pretrained


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
    with pytest.raises(GenerationError, match="cannot load svd.model 'no-such-org/no-such-model-gva-test'"):
        build_generator(cfg, device="cpu", cache_root=str(tmp_path))
    (tmp_path / "notamodel").mkdir()
    cfg = config_from_dict({"svd": {"generator": "svd", "model": str(tmp_path / "notamodel")}}).svd
    with pytest.raises(ConfigError, match="not a diffusers pipeline directory"):
        build_generator(cfg, device="cpu", cache_root=str(tmp_path))


def test_height_width_must_be_multiples_of_8(tmp_path):
    cfg = config_from_dict({"svd": {**TINY, "height": 60}}).svd
    with pytest.raises(ConfigError, match="multiples of 8"):
        build_generator(cfg, device="cpu", cache_root=str(tmp_path))
    assert not (tmp_path / "tiny-svd").exists()  # refused before building anything
    from gva.generate.stage import run

    make_curated(tmp_path / "curated", n=3)
    with pytest.raises(ConfigError, match="multiples of 8"):  # by the stage, before loading any model
        run(config_from_dict({"svd": {**TINY, "width": 36}}), curated_dir=tmp_path / "curated",
            out_dir=tmp_path / "clips", cache_root=tmp_path, run_file=tmp_path / "run.json", progress=False)
    assert not (tmp_path / "tiny-svd").exists() and not (tmp_path / "svd").exists()


def test_bad_control_settings_are_config_errors():
    from gva.generate.controls import MotionGenerator

    with pytest.raises(ConfigError, match="max_zoom must be < 1"):
        MotionGenerator(3, MotionConfig(max_zoom=1.5))
    with pytest.raises(ConfigError, match="limits must be >= 0"):
        MotionGenerator(3, MotionConfig(max_shift=-0.1))


# --- the registry and the package structure ----------------------------------------------------

def test_registry_names_every_generator_once(tmp_path):
    from gva.generate.factory import cache_settings
    from gva.generate.registry import generator_class

    models = {"svd", "cogvideox", "ltx", "wan", "i2vgen"}
    imported = {"reference", "reference-static"}
    assert set(GENERATORS) == models | {f"tiny-{m}" for m in models} | {"repeat", "motion"} | imported
    for split in ("train", "val"):  # an (empty) folder of precomputed clips for the importers
        (tmp_path / f"{split}.csv").write_text("video_path,label\n")
    for name, entry in GENERATORS.items():
        cls = generator_class(name)
        assert issubclass(cls, Generator) and entry == f"{cls.__module__}:{cls.__qualname__}"
        # the tiny builds live apart from the runtime generators (gva.tiny), and only tiny-* names them
        assert cls.__module__.startswith("gva.tiny." if name.startswith("tiny-") else "gva.generate.")
        svd = {"generator": name, **({"model": str(tmp_path)} if name in imported else {})}
        settings = cache_settings(config_from_dict({"svd": svd}).svd, "cpu")
        assert settings["generator"] == name and json.loads(json.dumps(settings)) == settings
        assert not {"batch_size", "chunk_size", "processes", "preview_fps", "previews_per_class"} & set(settings)
    # config.py takes any name; the registry is the one list, and refuses names it does not hold
    with pytest.raises(ConfigError, match="unknown generator 'nope'; known: svd, tiny-svd, cogvideox, tiny-cogvideox, .*, repeat, motion, reference"):
        generator_class("nope")


def test_a_new_generator_is_one_class_and_one_registry_line(monkeypatch, tmp_path):
    """The hooks are all a kind needs: the stage builds, keys and describes it through them."""
    from gva.generate import registry
    from gva.generate.stage import run

    class Negative(Generator):
        first_frame_original = True

        def __init__(self, frames):
            self.frames = frames

        @classmethod
        def from_config(cls, cfg, device, cache_root):
            return cls(cfg.frames)

        @classmethod
        def cache_settings(cls, cfg, device):
            return {"frames": cfg.frames}

        def generate_float(self, images, seeds, inputs=None):
            x = images.astype(np.float32)[:, None] / 255.0
            return np.concatenate([x, 1.0 - np.repeat(x, self.frames - 1, axis=1)], axis=1)

    monkeypatch.setitem(registry.GENERATORS, "repeat", Negative)  # config only accepts known names
    images = make_curated(tmp_path / "curated", n=3)
    out = run(config_from_dict({"svd": {"generator": "repeat", "previews_per_class": 0}}),
              curated_dir=tmp_path / "curated", out_dir=tmp_path / "clips", cache_root=tmp_path / "cache",
              run_file=tmp_path / "run.json", progress=False)
    clips = np.load(tmp_path / "clips" / "clips.npy")
    assert np.array_equal(clips[:, 0], images) and np.array_equal(clips[:, 2], 255 - images)
    assert out["generation"]["resolved"] == {"class": "Negative", "frames": 3}


def _run_fresh(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter that sees only gva's source, with ``sys.argv[1]`` an (empty)
    folder of precomputed clips for the importers."""
    for split in ("train", "val"):
        (tmp_path / f"{split}.csv").write_text("video_path,label\n")
    return subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(SRC), "PATH": ""})


def test_importing_the_registry_stays_light(tmp_path):
    """`gva curate`, `gva predict --model 2d` and the cache key never pay for torch/diffusers."""
    code = ("import sys; import gva.generate, gva.generate.registry as r, gva.generate.factory as f;"
            "from gva.config import config_from_dict;"
            "[f.cache_settings(config_from_dict({'svd': {'generator': n, 'model': sys.argv[1] if 'reference' in n "
            "else None}}).svd, 'cpu') for n in r.GENERATORS];"
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    out = _run_fresh(code, tmp_path)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_runtime_code_never_imports_the_tiny_builds(tmp_path):
    """The tiny builds (gva.tiny: tests, the offline demo) are loaded only through the registry's
    tiny-* entries: no module outside gva.tiny imports them, and keying every other generator and
    building one leaves them unloaded; keying tiny-svd loads its own build and no other."""
    graph = module_imports(SRC / "gva")
    importers = sorted(m for m, targets in graph.items() if not m.startswith("gva.tiny")
                       and any(t == "gva.tiny" or t.startswith("gva.tiny.") for t in targets))
    assert importers == []
    code = ("import sys; import gva.generate.stage, gva.generate.registry as r, gva.generate.factory as f;"
            "from gva.config import config_from_dict;"
            "cfg = lambda n: config_from_dict({'svd': {'generator': n, 'model': sys.argv[1] if 'reference' in n "
            "else None}}).svd;"
            "[(f.cache_settings(cfg(n), 'cpu'), f.code_files_of(n)) for n in r.GENERATORS"
            " if not n.startswith('tiny-')];"
            "f.build_generator(cfg('motion'), 'cpu');"
            "print(sorted(m for m in sys.modules if m.startswith('gva.tiny')));"
            "f.cache_settings(cfg('tiny-svd'), 'cpu');"
            "print(sorted(m for m in sys.modules if m.startswith('gva.tiny')))")
    out = _run_fresh(code, tmp_path)
    lines = out.stdout.split("\n")
    assert lines[:2] == ["[]", "['gva.tiny', 'gva.tiny.base', 'gva.tiny.svd']"], out.stdout + out.stderr


def module_imports(package_dir: Path) -> dict[str, set[str]]:
    """gva module -> the gva modules it imports, at any level (function-level imports included).

    ``from a import b`` counts as importing ``a.b`` when that is a module, else ``a``.
    """
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets.update(known(a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                targets.update(known(f"{base}.{a.name}") for a in node.names)
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_cycle_finder_sees_function_level_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    assert import_cycles(module_imports(pkg)) == [["pkg.a", "pkg.sub.b"]]


def test_no_import_cycles_in_gva():
    """No gva module takes part in an import cycle, counting imports at any level."""
    graph = module_imports(SRC / "gva")
    assert "gva.generate.factory" in graph["gva.generate.runner"]  # the finder sees the package
    assert import_cycles(graph) == []


# --- the stage ---------------------------------------------------------------------------------

def test_stage_end_to_end_tiny_svd(tmp_path, cache_root):
    from gva.data.video import read_mp4
    from gva.generate.stage import run

    images = make_curated(tmp_path / "curated", n=6)
    cfg = config_from_dict({"svd": {**TINY, "chunk_size": 4, "preview_fps": 5}})
    out = tmp_path / "clips"
    result = run(cfg, curated_dir=tmp_path / "curated", out_dir=out, cache_root=cache_root,
                 run_file=tmp_path / "metrics" / "svd_generate.json", progress=False)

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
    assert meta == result["generation"]
    assert meta["generator"] == "tiny-svd" and meta["clip_settings"]["steps"] == 2
    assert meta["shape"] == [6, 3, 64, 64, 3] and meta["frames"] == 3 and meta["images"] == 6
    assert {"torch", "diffusers", "transformers", "numpy", "pillow", "av", "scipy"} <= set(meta["provenance"]["versions"])
    assert meta["resolved"]["class"] == "TinySvdGenerator" and meta["resolved"]["scheduler_step"] == "float64"
    assert Path(cache_root, "svd", meta["cache_key"]).is_dir()
    facts = json.loads((tmp_path / "metrics" / "svd_generate.json").read_text())
    assert facts == result["run"]
    assert facts["generated_images"] == 6 and facts["resumed_images"] == 0 and facts["images_per_s"] > 0
    assert facts["total_seconds"] > 0 and facts["batch_size"] == 4 and facts["processes"] == 1

    previews = sorted((out / "previews").iterdir())
    assert [p.name for p in previews] == facts["previews"]
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
    again = run(cfg2, curated_dir=tmp_path / "curated", out_dir=out, cache_root=cache_root,
                run_file=tmp_path / "metrics" / "svd_generate.json", progress=False)
    assert again["run"]["generated_images"] == 0 and again["run"]["resumed_images"] == 6
    assert (out / "clips.npy").read_bytes() == before
    assert again["run"]["previews"] == [] and not any((out / "previews").iterdir())
    assert again["generation"] == meta  # described from the cache, without building the generator


def test_stage_motion_resumes_partial_cache(tmp_path):
    """Delete some committed chunks: only those rows are regenerated, bytes unchanged."""
    from gva.generate.stage import run

    make_curated(tmp_path / "curated", n=7)
    cfg = config_from_dict({"svd": {"generator": "motion", "chunk_size": 2, "previews_per_class": 0}})
    kw = dict(curated_dir=tmp_path / "curated", out_dir=tmp_path / "clips", cache_root=tmp_path / "cache",
              run_file=tmp_path / "run.json", progress=False)
    first = run(cfg, **kw)
    ref = (tmp_path / "clips" / "clips.npy").read_bytes()
    chunks = sorted(Path(first["run"]["cache_dir"]).glob("clips_*.npy"))
    assert len(chunks) == 4
    chunks[1].unlink()
    chunks[3].unlink()
    second = run(cfg, **kw)
    assert second["run"]["generated_images"] == 3 and second["run"]["resumed_images"] == 4
    assert (tmp_path / "clips" / "clips.npy").read_bytes() == ref


def test_stage_failure_late_leaves_previous_clips_whole(tmp_path, monkeypatch):
    """A failure while writing the outputs (here: the MP4 previews) keeps the old data/clips as it was."""
    import gva.generate.stage as stage

    make_curated(tmp_path / "curated", n=4)
    kw = dict(curated_dir=tmp_path / "curated", out_dir=tmp_path / "clips", cache_root=tmp_path / "cache",
              run_file=tmp_path / "run.json", progress=False)
    stage.run(config_from_dict({"svd": {"generator": "repeat", "previews_per_class": 0}}), **kw)
    before = {p.name: p.read_bytes() for p in (tmp_path / "clips").iterdir() if p.is_file()}
    run_before = (tmp_path / "run.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("no H.264 encoder")

    monkeypatch.setattr(stage, "write_previews", broken)
    with pytest.raises(RuntimeError, match="no H.264 encoder"):
        stage.run(config_from_dict({"svd": {"generator": "motion"}}), **kw)
    after = {p.name: p.read_bytes() for p in (tmp_path / "clips").iterdir() if p.is_file()}
    assert after == before and set(before) >= {"clips.npy", "index.csv", "generation.json"}
    assert (tmp_path / "run.json").read_bytes() == run_before  # the run file describes data/clips' run
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporaries left


@pytest.mark.parametrize("problem", ["empty_split", "float_images", "no_store"])
def test_stage_bad_input(tmp_path, problem, monkeypatch, capsys):
    from gva.cli import main
    from gva.generate.stage import run

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
    cfg = config_from_dict({"svd": {"generator": "repeat"}})
    with pytest.raises(StoreError, match=expected):  # a user error: a GvaError, message kept
        run(cfg, curated_dir=curated, out_dir=tmp_path / "x", cache_root=tmp_path / "c",
            run_file=tmp_path / "r.json", progress=False)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"svd": {"generator": "repeat"}}))
    monkeypatch.chdir(tmp_path)
    assert main(["svd_generate"]) != 0  # the CLI prints one line, no traceback
    err = capsys.readouterr().err
    assert "gva svd_generate: error:" in err and "Traceback" not in err
    import re

    assert re.search(expected, err), err
    assert not (tmp_path / "data" / "clips" / "clips.npy").exists()
    assert not (tmp_path / "metrics").exists()


def test_unknown_generator_fails_before_reading_anything(tmp_path, monkeypatch):
    from gva.generate import registry
    from gva.generate.stage import run

    cfg = config_from_dict({"svd": {"generator": "motion"}})
    monkeypatch.delitem(registry.GENERATORS, "motion")
    with pytest.raises(ConfigError, match="unknown generator 'motion'") as err:
        run(cfg, curated_dir=tmp_path / "none", out_dir=tmp_path / "x", cache_root=tmp_path / "c",
            run_file=tmp_path / "r.json", progress=False)
    assert isinstance(err.value, GvaError)
