"""The image-to-video generators beyond SVD (cogvideox, ltx, wan, i2vgen): one suite over each.

Each runs through its ``tiny-<name>`` build (tiny random components from diffusers' own test
configs with local tokenizers, saved once and loaded back with ``from_pretrained``), the same code
as the real model with a hub id. tiny-svd joins the generic contract tests. The leakage guard for
prompts, the frame rules and the whole DAG per generator are here too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.test_generate import make_curated, one_thread  # noqa: F401  (autouse: 1 torch thread)
from tests.test_generate_resume import kill_after_chunks

from conftest import FAKE_CLASSES, make_tiny_imagenet, run_dag_in
from gva.config import config_from_dict
from gva.data.arrays import IndexRow
from gva.errors import ConfigError, GenerationError
from gva.generate import build_generator
from gva.generate.base import Prompt
from gva.generate.factory import cache_settings
from gva.generate.i2v import I2VGenerator
from gva.generate.prompts import check_leakage, prompt_record, render, render_prompts, template_fields
from gva.generate.provenance import PACKAGE_DIR, SCOPE
from gva.generate.registry import generator_class

ROOT = Path(__file__).resolve().parents[1]
#: tiny build -> its smallest canvas (tiny CogVideoX: learned position embeddings fixed to 16 x 16)
SIDES = {"tiny-cogvideox": 16, "tiny-ltx": 32, "tiny-wan": 16, "tiny-i2vgen": 8, "tiny-svd": 32}
NEW = ["tiny-cogvideox", "tiny-ltx", "tiny-wan", "tiny-i2vgen"]


def svd_cfg(name: str, **extra):
    """Settings for the tiny build ``name`` at its canvas (``extra`` may set another generator)."""
    side = SIDES[name]
    return config_from_dict({"svd": {"generator": name, "steps": 2, "height": side, "width": side, "frames": 3,
                                     "batch_size": 2, **extra}}).svd


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


_BUILT: dict[str, object] = {}


def built(name: str, cache_root: Path):
    """Each tiny generator once per module (built, saved and loaded back through its directory)."""
    if name not in _BUILT:
        _BUILT[name] = build_generator(svd_cfg(name), device="cpu", cache_root=str(cache_root))
    return _BUILT[name]


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)


SEEDS = [11, 22, 33]


# --- the registry, frame rules, defaults --------------------------------------------------------------

def test_every_family_and_its_tiny_build_are_registered():
    for name in ("cogvideox", "ltx", "wan", "i2vgen"):
        real, tiny = generator_class(name), generator_class(f"tiny-{name}")
        assert issubclass(tiny, real) and issubclass(real, I2VGenerator) and real.takes_inputs
        cfg = config_from_dict({"svd": {"generator": name}}).svd
        assert cache_settings(cfg, "cpu")["model"] == real.family.default_model  # svd.model null: the default
        other = config_from_dict({"svd": {"generator": name, "model": "org/mine"}}).svd
        assert cache_settings(other, "cpu")["model"] == "org/mine"
    svd = config_from_dict({}).svd
    assert svd.model is None and cache_settings(svd, "cpu")["model"] == "stabilityai/stable-video-diffusion-img2vid"


@pytest.mark.parametrize("name,frames,generated,kept", [
    ("cogvideox", 3, 9, [0, 4, 8]), ("wan", 3, 5, [0, 2, 4]), ("ltx", 3, 9, [0, 4, 8]), ("i2vgen", 3, 3, [0, 1, 2]),
    ("cogvideox", 9, 9, list(range(9))), ("ltx", 1, 1, [0]), ("wan", 6, 9, [0, 2, 3, 5, 6, 8]),
])
def test_frame_rules_generate_a_valid_count_and_keep_evenly_spaced_frames(name, frames, generated, kept):
    family = generator_class(name).family
    assert family.generated_frames(frames) == generated
    assert family.kept_frames(frames) == kept


def test_canvas_must_fit_the_family(tmp_path):
    with pytest.raises(ConfigError, match="multiples of 32 for ltx"):
        cache_settings(config_from_dict({"svd": {"generator": "ltx", "height": 48, "width": 64}}).svd, "cpu")
    with pytest.raises(ConfigError, match="multiples of 16 for wan"):
        build_generator(config_from_dict({"svd": {"generator": "tiny-wan", "height": 40}}).svd, device="cpu",
                        cache_root=str(tmp_path))


@pytest.mark.parametrize("name", ["cogvideox", "ltx", "wan", "i2vgen"])
def test_unreachable_model_is_a_clear_error(tmp_path, name):
    cfg = config_from_dict({"svd": {"generator": name, "model": "no-such-org/no-such-model-gva-test",
                                    "height": 64, "width": 64}}).svd
    with pytest.raises(GenerationError, match=f"cannot load svd.model 'no-such-org/no-such-model-gva-test'.*"
                                              f"tiny-{name}"):
        build_generator(cfg, device="cpu", cache_root=str(tmp_path))


def test_prompt_templates_and_guidance_join_the_cache_key_of_text_generators_only():
    base = cache_settings(config_from_dict({"svd": {"generator": "wan"}}).svd, "cpu")
    other = cache_settings(config_from_dict({"svd": {"generator": "wan", "prompt": "a dog"}}).svd, "cpu")
    assert base != other and base["guidance"] == 5.0
    assert cache_settings(config_from_dict({"svd": {"generator": "wan", "guidance": 2}}).svd, "cpu")["guidance"] == 2.0
    motion = [cache_settings(config_from_dict({"svd": {"generator": "motion", "prompt": p}}).svd, "cpu")
              for p in ("a", "b")]
    assert motion[0] == motion[1]


# --- prompts and the label-leakage guard ------------------------------------------------------------

ROWS = [IndexRow(1, "train", "n01", "goldfish", 0, "a.jpg"), IndexRow(2, "val", "n02", "tabby cat", 1, "b.jpg"),
        IndexRow(3, "test", "n02", "tabby cat", 1, "c.jpg")]


def test_template_fields_are_the_label_fields_only():
    assert template_fields("a {class_name} moving, {wnid} {label}") == ["class_name", "wnid", "label"]
    assert template_fields("plain {{braces}}") == []
    with pytest.raises(ConfigError, match=r"unknown field \{split\}"):
        template_fields("a {split}")
    with pytest.raises(ConfigError, match="malformed template"):
        template_fields("a {class_name")


def test_label_in_the_prompt_is_refused_for_the_test_split():
    cfg = config_from_dict({"svd": {"generator": "tiny-wan", "prompt": "a video of a {class_name}"}}).svd
    with pytest.raises(ConfigError, match=r"svd.prompt uses \{class_name\}.*test split.*prompt_label_on_test"):
        render_prompts(cfg, ROWS)
    # the negative prompt is a template too: a label there leaks as well
    neg = config_from_dict({"svd": {"generator": "tiny-wan", "negative_prompt": "not a {wnid}"}}).svd
    with pytest.raises(ConfigError, match=r"\{wnid\}"):
        render_prompts(neg, ROWS)
    # train only: allowed (class-conditioned augmentation), no warning needed
    assert [p.text for p in render_prompts(cfg, ROWS[:1])] == ["a video of a goldfish"]


def test_the_override_is_loud_and_recorded(caplog):
    cfg = config_from_dict({"svd": {"generator": "tiny-wan", "prompt": "a {class_name}",
                                    "prompt_label_on_test": True}}).svd
    with caplog.at_level(logging.WARNING, logger="gva.generate.prompts"):
        prompts = render_prompts(cfg, ROWS)
    assert "LABEL LEAKAGE" in caplog.text and "model selection on val is optimistic" in caplog.text
    assert [p.text for p in prompts] == ["a goldfish", "a tabby cat", "a tabby cat"]
    record = prompt_record(cfg, ROWS, prompts)
    assert record["label_on_test"] is True and record["label_fields"] == ["class_name"]
    assert record["by_split"] == {"test": ["a tabby cat"], "train": ["a goldfish"], "val": ["a tabby cat"]}
    plain = config_from_dict({"svd": {"generator": "tiny-wan"}}).svd
    record = prompt_record(plain, ROWS, render_prompts(plain, ROWS))
    assert record["label_on_test"] is False and record["by_split"]["test"] == [plain.prompt]


def test_an_unlabelled_image_cannot_fill_a_label_field():
    assert render("natural motion", None) == "natural motion"
    with pytest.raises(ConfigError, match="needs the image's class"):
        render("a {class_name}", None)


def test_check_leakage_passes_templates_without_labels():
    check_leakage(config_from_dict({"svd": {"prompt": "slow zoom"}}).svd, ["train", "val", "test"])


# --- the generator contract, every tiny build ---------------------------------------------------------

@pytest.mark.parametrize("name", NEW + ["tiny-svd"])
def test_shapes_seeding_and_first_frame(name, cache_root, images):
    gen = built(name, cache_root)
    clips = gen.generate(images[:2], SEEDS[:2])
    assert clips.dtype == np.uint8 and clips.shape == (2, 3, 64, 64, 3)
    np.testing.assert_array_equal(clips[:, 0], images[:2])      # first_frame: original, exactly
    assert np.abs(clips[:, 1:].astype(int) - images[:2, None].astype(int)).mean() > 1  # generated frames
    again = gen.generate(images[:2], SEEDS[:2])
    np.testing.assert_array_equal(clips, again)                  # deterministic
    other = gen.generate(images[:1], [SEEDS[0] + 1])
    assert not np.array_equal(other[0, 1:], clips[0, 1:])        # the seed matters
    d = gen.describe()
    assert d["frames"] == 3 and d["model"] == f"{name}-v1"
    if name in NEW:
        fam = generator_class(name).family
        assert d["generated_frames"] == fam.generated_frames(3) and d["kept_frames"] == fam.kept_frames(3)


@pytest.mark.parametrize("name", NEW)
def test_batch_behaviour_is_as_documented(name, cache_root, images, caplog):
    """Batch-invariant families: a clip is the same whatever shares its call (float, 1e-5).
    The others generate one image per call, with a warning."""
    gen = built(name, cache_root)
    prompts = [Prompt("a short video"), Prompt("a short video"), Prompt("a short video")]
    if gen.family.batch_note is None:
        assert gen.batch_size == 2
        together = gen.generate_float(images, SEEDS, prompts)
        gen.batch_size = 1
        try:
            alone = gen.generate_float(images, SEEDS, prompts)
        finally:
            gen.batch_size = 2
        np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)
    else:
        assert gen.batch_size == 1
        with caplog.at_level(logging.WARNING):
            build_generator(svd_cfg(name), device="cpu", cache_root=str(cache_root))
        assert "generates one image per call" in caplog.text


def test_i2vgen_image_latent_noise_is_not_the_initial_noise(cache_root, images, monkeypatch):
    """I2VGen-XL draws the image latents' noise from torch's global RNG: seeded with the image's own
    seed, on the CPU it drew the same numbers as the start of the initial noise (the call's
    generator, seeded with that seed too). The global RNG now gets a seed of its own."""
    import torch
    from diffusers.models.autoencoders import vae
    from diffusers.pipelines.deprecated.i2vgen_xl import pipeline_i2vgen_xl

    from gva.generate.i2vgen import latent_seed

    drawn: dict[str, list] = {"image": [], "initial": []}

    def recording(module, what):
        real = module.randn_tensor

        def randn_tensor(*args, **kwargs):
            out = real(*args, **kwargs)
            drawn[what].append(out.detach().flatten().clone())
            return out
        monkeypatch.setattr(module, "randn_tensor", randn_tensor)

    recording(vae, "image")
    recording(pipeline_i2vgen_xl, "initial")
    gen = built("tiny-i2vgen", cache_root)
    state = torch.random.get_rng_state()
    clip = gen.generate(images[:1], SEEDS[:1])
    assert torch.equal(torch.random.get_rng_state(), state)   # the caller's RNG is left as it was
    image, initial = drawn["image"][0], drawn["initial"][0]
    n = min(len(image), len(initial))
    assert n >= 4 and not torch.allclose(image[:n], initial[:n])
    assert torch.equal(initial, torch.randn(initial.shape, generator=torch.Generator().manual_seed(SEEDS[0])))
    assert torch.equal(image, torch.randn(image.shape, generator=torch.Generator().manual_seed(latent_seed(SEEDS[0]))))
    np.testing.assert_array_equal(gen.generate(images[:1], SEEDS[:1]), clip)   # a function of image and seed
    assert latent_seed(SEEDS[0]) != SEEDS[0] and latent_seed(SEEDS[0]) == latent_seed(SEEDS[0]) < 2 ** 63


@pytest.mark.parametrize("name", NEW)
def test_the_prompt_conditions_the_clip(name, cache_root, images):
    gen = built(name, cache_root)
    a = gen.generate_float(images[:1], SEEDS[:1], [Prompt("a dog running in the park")])
    b = gen.generate_float(images[:1], SEEDS[:1], [Prompt("a red car driving at night")])
    # generation is bit-exact for equal inputs (test above), so any difference is the prompt's doing
    # (tiny random text encoders move the frames by as little as ~1e-5)
    assert not np.array_equal(a[:, 1:], b[:, 1:])


# --- the stage: prompts recorded, guard before any work, resume after SIGKILL, the whole DAG ----------

def _stage_cfg(name: str, **svd):
    side = SIDES[name]
    return config_from_dict({"svd": {"generator": name, "steps": 2, "height": side, "width": side, "frames": 3,
                                     "batch_size": 2, "chunk_size": 2, "previews_per_class": 0, **svd}})


def test_stage_records_prompts_per_split_and_refuses_label_prompts_first(tmp_path, cache_root):
    from gva.generate.stage import run

    make_curated(tmp_path / "curated", n=6)
    with pytest.raises(ConfigError, match="test split"):
        run(_stage_cfg("tiny-i2vgen", prompt="a video, {class_name}"), curated_dir=tmp_path / "curated",
            out_dir=tmp_path / "clips", cache_root=cache_root, run_file=tmp_path / "run.json", progress=False)
    assert not (tmp_path / "clips").exists() and not list(cache_root.glob("svd/*/clips_*"))
    gen = run(_stage_cfg("tiny-i2vgen"), curated_dir=tmp_path / "curated", out_dir=tmp_path / "clips",
              cache_root=cache_root, run_file=tmp_path / "run.json", progress=False)["generation"]
    record = json.loads((tmp_path / "clips" / "generation.json").read_text())
    assert record == json.loads(json.dumps(gen))
    assert record["prompts"]["by_split"] == {s: ["a short video with natural motion"] for s in ("test", "train", "val")}
    assert record["prompts"]["label_on_test"] is False
    assert record["resolved"]["generated_frames"] == 3 and record["clip_settings"]["guidance"] == 9.0
    motion = run(config_from_dict({"svd": {"generator": "motion", "previews_per_class": 0}}), curated_dir=tmp_path / "curated", out_dir=tmp_path / "m",
                 cache_root=tmp_path / "mc", run_file=tmp_path / "m.json", progress=False)["generation"]
    assert motion["prompts"] is None


def _generation_files_run(fn) -> set[Path]:
    """The ``gva.generate`` and ``gva.tiny`` modules whose code runs while ``fn()`` runs (all threads)."""
    import sys
    import threading

    prefixes = tuple(str(PACKAGE_DIR / package) for package in SCOPE)
    seen: set[str] = set()

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(prefixes):
            seen.add(frame.f_code.co_filename)

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return {Path(f).resolve() for f in seen}


@pytest.mark.parametrize("name", ["tiny-svd", *NEW, "repeat", "motion"])
def test_a_generators_cache_key_covers_all_the_generation_code_it_runs(tmp_path, cache_root, name):
    """The resume-cache key counts only the generation modules a generator can run
    (:func:`gva.generate.factory.code_files_of`): traced through a whole svd_generate stage, every
    module of gva.generate and gva.tiny that ran is among them, but for the registry (it only names
    the class, and the class is in the key); another family's module never is."""
    from gva.generate.factory import class_of, code_files_of
    from gva.generate.stage import run

    make_curated(tmp_path / "curated", n=4)
    cfg = (_stage_cfg(name) if name in SIDES else
           config_from_dict({"svd": {"generator": name, "chunk_size": 2, "previews_per_class": 0}}))
    ran = _generation_files_run(lambda: run(cfg, curated_dir=tmp_path / "curated", out_dir=tmp_path / "clips",
                                            cache_root=cache_root, run_file=tmp_path / "run.json",
                                            progress=False))
    counted = {p.resolve() for p in code_files_of(name)}
    assert {"stage.py", "runner.py", "base.py"} <= {p.name for p in ran}
    registry = (PACKAGE_DIR / "generate" / "registry.py").resolve()
    assert ran - {registry} <= counted, f"{name} ran {sorted(p.name for p in ran - counted)}, not in its cache key"
    assert registry not in counted and class_of(name) in json.loads((tmp_path / "clips" / "generation.json")
                                                                     .read_text())["provenance"]["generator_class"]
    families = {"svd.py", "cogvideox.py", "ltx.py", "wan.py", "i2vgen.py", "controls.py", "reference.py"}
    own = {"tiny-svd": "svd.py", "repeat": "controls.py", "motion": "controls.py"}.get(name, name[5:] + ".py")
    assert {p.name for p in counted if p.parent.name == "generate"} & families == {own}
    tiny = {p.name for p in counted if p.parent.name == "tiny"}
    assert tiny == ({"__init__.py", "base.py", own} | ({"tokenizers.py"} if name in NEW else set())
                    if name.startswith("tiny-") else set())


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW)
def test_resume_after_sigkill_gives_identical_bytes(tmp_path, name):
    from gva.generate.stage import run

    n = 5
    make_curated(tmp_path / "data" / "curated", n=n)
    svd = {"generator": name, "steps": 2, "height": SIDES[name], "width": SIDES[name], "frames": 3,
           "batch_size": 1, "chunk_size": 1, "previews_per_class": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"svd": svd}))
    cache_root = tmp_path / "data" / ".cache"
    kill_after_chunks(tmp_path, cache_root, 2, timeout_s=240)
    committed = len(list(cache_root.glob("svd/*/clips_*.npy")))
    assert 2 <= committed < n, committed
    assert not (tmp_path / "data" / "clips").exists()
    cfg = config_from_dict({"svd": svd})
    resumed = run(cfg, curated_dir=tmp_path / "data" / "curated", out_dir=tmp_path / "data" / "clips",
                  cache_root=cache_root, run_file=tmp_path / "r.json", progress=False)["run"]
    assert resumed["resumed_images"] >= committed and resumed["generated_images"] == n - resumed["resumed_images"]
    run(cfg, curated_dir=tmp_path / "data" / "curated", out_dir=tmp_path / "ref", cache_root=tmp_path / "ref_cache",
        run_file=tmp_path / "ref.json", progress=False)
    for f in ("clips.npy", "index.csv", "generation.json"):
        assert (tmp_path / "data" / "clips" / f).read_bytes() == (tmp_path / "ref" / f).read_bytes(), f


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW)
def test_whole_dag_offline_with_the_tiny_build(tmp_path, monkeypatch, name):
    """curate -> svd_generate -> extra_frames -> train2d -> inflate -> train3d -> evaluate, as `gva <stage>`."""
    data = make_tiny_imagenet(tmp_path / "tin", n_train=6, n_val=2)
    overrides = {
        "data": {"source": str(data), "classes": FAKE_CLASSES, "image_size": 32},
        "svd": {"generator": name, "steps": 2, "height": SIDES[name], "width": SIDES[name], "batch_size": 4,
                "previews_per_class": 1, "device": "cpu"},
        "model": {"arch": "timm:test_resnet", "pretrained": False},
        "train": {"image_size": 32, "lr": 0.05, "num_workers": 0, "device": "cpu"},
        "train2d": {"epochs": 1, "batch_size": 8}, "train3d": {"epochs": 1, "batch_size": 4},
        "evaluate": {"bootstrap": 50, "latency_batch_sizes": [1], "latency_repeats": 1},
    }
    metrics, generation = run_dag_in(tmp_path, monkeypatch, ROOT / "params.yaml", overrides)
    assert {"model2d", "model3d", "delta"} <= set(metrics)
    assert generation["generator"] == name and generation["prompts"]["label_on_test"] is False
    assert list((tmp_path / "data" / "clips" / "previews").glob("*.mp4"))


@pytest.mark.parametrize("name", ["ltx", "wan"])
def test_the_real_generator_loads_a_local_directory_like_a_hub_id(name, cache_root, images):
    """`svd.generator: <name>` with `svd.model: <directory>` is the real-model code path: on the tiny
    build's directory it gives the tiny generator's clips, and names the directory as the model."""
    import importlib

    tiny = built(f"tiny-{name}", cache_root)
    directory = str(importlib.import_module(f"gva.tiny.{name}").model_dir(cache_root))
    real = build_generator(svd_cfg(f"tiny-{name}", generator=name, model=directory), device="cpu")
    assert type(real) is generator_class(name) and real.describe()["model"] == directory
    np.testing.assert_array_equal(real.generate(images[:1], SEEDS[:1]), tiny.generate(images[:1], SEEDS[:1]))
