"""svd_generate's resume-cache key and output determinism.

* The key changes with everything that can change clip bytes -- the generator's settings, the
  curated data, gva's generation code, the library versions -- and with nothing else (batch size,
  chunk size, processes, previews): a code or library change regenerates instead of resuming
  chunks another code made.
* ``data/clips`` is a function of what changes the clips: a run knob leaves every file in it
  byte-identical (generation.json and the MP4 previews included); run facts go to the run file.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.test_generate import TINY32, make_curated, one_thread  # noqa: F401  (autouse: 1 torch thread)

from gva.config import config_from_dict
from gva.generate import provenance, stage
from gva.generate.factory import class_of, code_files_of
from gva.generate.registry import GENERATORS
from gva.generate.stage import clip_key

MOTION = {"generator": "motion", "chunk_size": 2, "previews_per_class": 0}


def _stage(tmp_path: Path, svd: dict, out: str = "clips", run_file: str = "run.json") -> dict:
    from gva.generate.stage import run

    return run(config_from_dict({"svd": svd}), curated_dir=tmp_path / "curated", out_dir=tmp_path / out,
               cache_root=tmp_path / "cache", run_file=tmp_path / run_file, progress=False)


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def _copy_sources(tmp_path: Path) -> list[Path]:
    """A copy of the generation sources (same layout), to edit without touching the checkout."""
    copies = []
    for path in provenance.code_files():
        copy = tmp_path / "src" / path.relative_to(provenance.PACKAGE_DIR.parent)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, copy)
        copies.append(copy)
    return copies


# --- the key's ingredients ---------------------------------------------------------------------

def test_code_files_cover_the_generation_package_and_what_reads_the_data():
    names = [p.relative_to(provenance.PACKAGE_DIR.parent).as_posix() for p in provenance.code_files()]
    assert {"gva/generate/base.py", "gva/generate/svd.py", "gva/generate/controls.py", "gva/generate/stage.py",
            "gva/generate/runner.py", "gva/generate/factory.py", "gva/tiny/svd.py", "gva/data/arrays.py",
            "gva/data/video.py"} <= set(names)
    assert all(p.is_file() for p in provenance.code_files())
    # what only names generators is in no key
    assert not {"gva/generate/registry.py", "gva/generate/__init__.py"} & set(names)


#: gva modules outside the SCOPE packages that generation code imports but that cannot change a
#: clip's bytes: settings parsing (the settings themselves are keyed), errors, paths, atomic writes
#: and hashing, rank coordination.
NEUTRAL = {"config.py", "errors.py", "paths.py", "io.py", "distributed.py"}


def test_every_gva_module_the_generation_code_imports_is_counted_or_declared_neutral():
    """A module outside gva.generate and gva.tiny that generation code imports (gva.data.video:
    the reference run's MP4 decoding) is in every key (EXTRA_CODE) unless it cannot change clips."""
    outside = set()
    for path in provenance.scope_modules():
        for name in provenance.imported_names(path, provenance.module_name(path)):
            parts = name.split(".")
            if parts[0] != "gva" or len(parts) < 2 or parts[1] in provenance.SCOPE:
                continue
            for i in range(2, len(parts) + 1):
                base = provenance.PACKAGE_DIR.joinpath(*parts[1:i])
                for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                    if candidate.is_file() and candidate.name != "__init__.py":
                        outside.add(candidate.relative_to(provenance.PACKAGE_DIR).as_posix())
    assert "data/video.py" in outside
    assert outside - NEUTRAL <= set(provenance.EXTRA_CODE), sorted(outside - NEUTRAL - set(provenance.EXTRA_CODE))


def test_versions_cover_the_codec_and_the_assignment_libraries():
    """PyAV (with its bundled FFmpeg/libx264: the h264 round trip, the reference MP4s) and scipy
    (the reference importer's assignment) can change clip bytes."""
    versions = provenance.library_versions()
    assert {"torch", "torch_cuda", "diffusers", "transformers", "numpy", "pillow", "av", "scipy"} <= set(versions)
    assert versions["av"] is not None and versions["scipy"] is not None


def test_code_hash_follows_code_not_comments_or_docstrings(tmp_path):
    files = _copy_sources(tmp_path)
    svd = next(p for p in files if p.name == "svd.py")
    ref = provenance.code_hash(files)
    assert provenance.code_hash(files) == ref  # stable
    text = svd.read_text()

    svd.write_text(text.replace('"""Stable Video Diffusion', '"""Reworded: Stable Video Diffusion', 1)
                   .replace("\nlog = logging", "\n# a new comment\n\nlog = logging", 1))
    assert provenance.code_hash(files) == ref  # docstring, comment and blank-line edits keep the key

    assert 'decode": "per clip"' in text
    svd.write_text(text.replace('decode": "per clip"', 'decode": "per video"'))
    assert provenance.code_hash(files) != ref  # a code edit changes it
    svd.write_text(text)
    assert provenance.code_hash(files) == ref
    (files[0].parent / "extra.py").write_text("X = 1\n")
    assert provenance.code_hash(files + [files[0].parent / "extra.py"]) != ref  # a new module too


def test_key_tracks_settings_data_device_code_and_versions(monkeypatch):
    base = config_from_dict({"svd": TINY32})
    key, record = clip_key(base, "cpu", "data")
    assert record["code_hash"] == provenance.code_hash(code_files_of(base.svd.generator))
    assert record["generator_class"] == class_of("tiny-svd") == "gva.tiny.svd:TinySvdGenerator"
    assert record["versions"] == provenance.library_versions()
    # run knobs are not part of the key
    same = config_from_dict({"svd": {**TINY32, "batch_size": 1, "chunk_size": 9, "processes": 2,
                                     "preview_fps": 3, "previews_per_class": 0, "device": "cuda"}})
    assert clip_key(same, "cpu", "data")[0] == key
    for change in ({"steps": 3}, {"seed": 1}, {"frames": 4}, {"height": 72}, {"first_frame": "generated"},
                   {"decode_chunk_size": 1}, {"noise_aug_strength": 0.1}, {"dtype": "fp32"}):
        other = config_from_dict({"svd": {**TINY32, **change}})
        # dtype matters only where it is used: on a GPU
        assert clip_key(other, "cuda", "data")[0] != clip_key(base, "cuda", "data")[0], change
    assert clip_key(base, "cpu", "other data")[0] != key
    assert clip_key(base, "cuda", "data")[0] != key
    assert clip_key(base, "cuda:1", "data")[0] == clip_key(base, "cuda:0", "data")[0]
    # controls depend only on what they read: svd.steps does not touch a motion cache
    motion = config_from_dict({"svd": {"generator": "motion"}})
    assert clip_key(config_from_dict({"svd": {"generator": "motion", "steps": 30}}), "cpu", "d")[0] == \
        clip_key(motion, "cpu", "d")[0]
    assert clip_key(config_from_dict({"svd": {"generator": "motion", "seed": 3}}), "cpu", "d")[0] != \
        clip_key(motion, "cpu", "d")[0]
    rep = config_from_dict({"svd": {"generator": "repeat"}})
    assert clip_key(config_from_dict({"svd": {"generator": "repeat", "seed": 4, "steps": 30}}), "cpu", "d")[0] == \
        clip_key(rep, "cpu", "d")[0]
    # code and library versions
    monkeypatch.setattr(provenance, "code_hash", lambda files=None: "another code")
    assert clip_key(base, "cpu", "data")[0] != key
    monkeypatch.undo()
    real = provenance.library_versions()
    monkeypatch.setattr(provenance, "library_versions", lambda: {**real, "diffusers": "0.0.1"})
    assert clip_key(base, "cpu", "data")[0] != key


# --- each generator's key counts its own code, not the others' ------------------------------------

DIFFUSION_I2V = {f"{t}{f}" for t in ("", "tiny-") for f in ("cogvideox", "ltx", "wan", "i2vgen")}
SVDS = {"svd", "tiny-svd"}
REFERENCE = {"reference", "reference-static"}
TINY_ALL = {"tiny-svd"} | {n for n in DIFFUSION_I2V if n.startswith("tiny-")}
#: module edited -> the generators whose key it changes (every other key must hold)
EDITS = {
    "generate/svd.py": SVDS,
    **{f"generate/{f}.py": {f, f"tiny-{f}"} for f in ("cogvideox", "ltx", "wan", "i2vgen")},
    "generate/i2v.py": DIFFUSION_I2V,
    "generate/prompts.py": DIFFUSION_I2V,
    "generate/diffusion.py": DIFFUSION_I2V | SVDS,
    "generate/pipelines.py": DIFFUSION_I2V | SVDS | REFERENCE,
    "generate/controls.py": {"repeat", "motion"},
    "generate/reference.py": REFERENCE,
    "generate/matching.py": REFERENCE,
    **{f"tiny/{f}.py": {f"tiny-{f}"} for f in ("svd", "cogvideox", "ltx", "wan", "i2vgen")},
    "tiny/tokenizers.py": TINY_ALL - {"tiny-svd"},
    "tiny/base.py": TINY_ALL,
    "tiny/__init__.py": TINY_ALL,
    **{f"generate/{m}.py": set(GENERATORS) for m in ("stage", "runner", "base", "factory", "postprocess",
                                                       "provenance")},
    "generate/registry.py": set(),   # only names generators
    "generate/__init__.py": set(),   # only re-exports
}


def _package_copy(tmp_path: Path, monkeypatch) -> Path:
    """A copy of src/gva that the key function reads instead of the checkout (classes stay the real
    ones: their modules are looked up by name under the copy)."""
    copy = tmp_path / "src" / "gva"
    shutil.copytree(provenance.PACKAGE_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(provenance, "PACKAGE_DIR", copy)
    return copy


def _code_keys(names) -> dict[str, str]:
    return {n: provenance.code_hash(code_files_of(n)) for n in names}


def test_every_generation_module_is_in_the_edit_table():
    modules = {p.relative_to(provenance.PACKAGE_DIR).as_posix() for p in provenance.scope_modules()}
    assert modules == set(EDITS)


@pytest.mark.parametrize("module", provenance.EXTRA_CODE)
def test_editing_code_outside_the_generation_packages_changes_every_key(tmp_path, monkeypatch, module):
    """data/arrays.py (the curated store), data/video.py (MP4 decoding and writing), device.py:
    every generator's key."""
    copy = _package_copy(tmp_path, monkeypatch)
    before = _code_keys(GENERATORS)
    with open(copy / module, "a") as f:
        f.write("\n\ndef _an_edit():\n    return 1\n")
    after = _code_keys(GENERATORS)
    assert {n for n in GENERATORS if after[n] != before[n]} == set(GENERATORS)


@pytest.mark.parametrize("module", sorted(EDITS))
def test_editing_a_module_changes_exactly_the_keys_of_the_generators_it_serves(tmp_path, monkeypatch, module):
    """An edit of one family's module (or its tiny build) keeps every other generator's key; a shared
    module changes every key; the registry and the package's re-exports change none."""
    copy = _package_copy(tmp_path, monkeypatch)
    before = _code_keys(GENERATORS)
    with open(copy / module, "a") as f:
        f.write("\n\ndef _an_edit():\n    return 1\n")
    after = _code_keys(GENERATORS)
    assert {n for n in GENERATORS if after[n] != before[n]} == EDITS[module]


def test_adding_a_generator_keeps_every_other_key_and_cache(tmp_path, monkeypatch):
    """A new generator -- its module, a helper module it imports inside a function, its registry
    line -- changes no other generator's key: a motion run made before resumes every chunk after."""
    import importlib.util

    from gva.generate import registry

    copy = _package_copy(tmp_path, monkeypatch)
    make_curated(tmp_path / "curated", n=4)
    first = _stage(tmp_path, MOTION)
    before = _code_keys(GENERATORS)
    records = {n: clip_key(config_from_dict({"svd": {"generator": n}}), "cpu", "d")[0]
               for n in ("svd", "tiny-ltx", "motion", "repeat")}

    (copy / "generate" / "flip.py").write_text(
        "from gva.generate.base import Generator\n\n\n"
        "class FlipGenerator(Generator):\n"
        "    first_frame_original = True\n\n"
        "    def __init__(self, frames):\n        self.frames = frames\n\n"
        "    @classmethod\n    def from_config(cls, cfg, device, cache_root):\n        return cls(cfg.frames)\n\n"
        "    @classmethod\n    def cache_settings(cls, cfg, device):\n        return {'frames': cfg.frames}\n\n"
        "    def generate_float(self, images, seeds, inputs=None):\n"
        "        from gva.generate.flip_ops import flip\n\n        return flip(images, self.frames)\n")
    (copy / "generate" / "flip_ops.py").write_text(
        "import numpy as np\n\n\ndef flip(images, frames):\n"
        "    x = images.astype(np.float32)[:, None] / 255.0\n"
        "    return np.concatenate([x, np.repeat(x[:, :, :, ::-1], frames - 1, axis=1)], axis=1)\n")
    registry_py = copy / "generate" / "registry.py"
    text = registry_py.read_text()
    line = '    "flip": "gva.generate.flip:FlipGenerator",\n'
    registry_py.write_text(text.replace('    "motion": ', line + '    "motion": ', 1))
    spec = importlib.util.spec_from_file_location("gva.generate.flip", copy / "generate" / "flip.py")
    flip = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(flip)
    monkeypatch.setitem(sys.modules, "gva.generate.flip", flip)
    monkeypatch.setitem(registry.GENERATORS, "flip", "gva.generate.flip:FlipGenerator")

    assert _code_keys(before) == before
    assert {n: clip_key(config_from_dict({"svd": {"generator": n}}), "cpu", "d")[0] for n in records} == records
    flip_files = {p.relative_to(copy).as_posix() for p in code_files_of("flip")}
    assert {"generate/flip.py", "generate/flip_ops.py", "generate/stage.py", "generate/base.py"} <= flip_files
    assert not {"generate/controls.py", "generate/svd.py", "generate/registry.py"} & flip_files
    again = _stage(tmp_path, MOTION)
    assert again["run"]["resumed_images"] == 4 and again["run"]["generated_images"] == 0
    assert again["generation"]["cache_key"] == first["generation"]["cache_key"]


def test_the_registry_entry_of_a_generator_is_in_its_key(monkeypatch):
    """Pointing a name at another class of the same module (same code files) changes its key."""
    from gva.generate import registry

    cfg = config_from_dict({"svd": {"generator": "reference", "model": None}})
    files = code_files_of("reference")
    monkeypatch.setitem(registry.GENERATORS, "reference", "gva.generate.reference:StaticReferenceGenerator")
    assert code_files_of("reference") == files
    assert class_of("reference") == "gva.generate.reference:StaticReferenceGenerator"
    settings = {"generator": cfg.svd.generator}
    assert provenance.cache_key(provenance.key_record(settings, "d", files, class_of("reference"))) != \
        provenance.cache_key(provenance.key_record(settings, "d", files, "gva.generate.reference:ReferenceGenerator"))


def test_imports_inside_functions_and_relative_imports_are_followed(tmp_path, monkeypatch):
    copy = _package_copy(tmp_path, monkeypatch)
    (copy / "generate" / "probe.py").write_text("from . import svd\n\ndef f():\n    from gva.generate import ltx\n"
                                               "    import gva.generate.wan\n    from gva.tiny.ltx import build\n"
                                               "    from gva.generate import registry\n")
    assert {p.relative_to(copy).as_posix() for p in provenance.imported_modules(copy / "generate" / "probe.py")} == \
        {"generate/ltx.py", "generate/wan.py", "generate/svd.py", "tiny/__init__.py", "tiny/ltx.py"}


# --- the stage: a change of code or libraries regenerates --------------------------------------

def test_code_change_regenerates_instead_of_resuming(tmp_path, monkeypatch):
    """The integrity fault: an edited generator must not re-assemble the chunks the old code made."""
    make_curated(tmp_path / "curated", n=5)
    files = _copy_sources(tmp_path)
    monkeypatch.setattr(stage, "code_files_of", lambda name: files)
    first = _stage(tmp_path, MOTION)
    assert first["run"]["generated_images"] == 5

    again = _stage(tmp_path, MOTION)  # nothing changed: a pure resume
    assert again["run"]["resumed_images"] == 5 and again["generation"] == first["generation"]

    controls = next(p for p in files if p.name == "controls.py")
    source = controls.read_text()
    assert "rng.uniform(-1.0, 1.0, size=4)" in source
    controls.write_text(source.replace("rng.uniform(-1.0, 1.0, size=4)", "rng.uniform(-0.5, 0.5, size=4)"))
    edited = _stage(tmp_path, MOTION)
    assert edited["run"]["generated_images"] == 5 and edited["run"]["resumed_images"] == 0
    assert edited["generation"]["cache_key"] != first["generation"]["cache_key"]
    assert edited["generation"]["provenance"]["code_hash"] == provenance.code_hash(files)
    assert edited["generation"]["provenance"]["code_hash"] != first["generation"]["provenance"]["code_hash"]
    assert len(list((tmp_path / "cache" / "svd").iterdir())) == 2  # the old chunks stay under the old key


def test_library_version_change_regenerates(tmp_path, monkeypatch):
    make_curated(tmp_path / "curated", n=4)
    real = provenance.library_versions()
    first = _stage(tmp_path, MOTION)
    monkeypatch.setattr(provenance, "library_versions", lambda: {**real, "torch": "9.9.9+cu999"})
    other = _stage(tmp_path, MOTION)
    assert other["run"]["generated_images"] == 4 and other["run"]["resumed_images"] == 0
    assert other["generation"]["cache_key"] != first["generation"]["cache_key"]
    # generation.json and key.json record the versions the chunks were made under
    assert other["generation"]["provenance"]["versions"]["torch"] == "9.9.9+cu999"
    key_json = json.loads((tmp_path / "cache" / "svd" / other["generation"]["cache_key"] / "key.json").read_text())
    assert key_json["key"] == other["generation"]["cache_key"]
    assert {k: key_json[k] for k in ("generator_class", "code_hash", "code_files", "versions")} == \
        other["generation"]["provenance"]
    assert key_json["settings"] == other["generation"]["clip_settings"]
    assert key_json["curated_hash"] == other["generation"]["curated_hash"]


def test_new_splits_reuse_the_clips_a_new_class_does_not(tmp_path):
    """The key takes the images, ids and classes from the curated store, not the splits: the folds
    of data.folds, another data.seed or val_fraction resume every chunk; a relabelled row does not."""
    from gva.data.arrays import open_images, read_index, write_index

    make_curated(tmp_path / "curated", n=6)
    first = _stage(tmp_path, MOTION)
    clips = (tmp_path / "clips" / "clips.npy").read_bytes()
    rows = open_images(tmp_path / "curated").rows
    write_index(tmp_path / "curated" / "index.csv",
                [dataclasses.replace(r, split={"test": "train", "train": "test"}.get(r.split, r.split)) for r in rows])
    moved = _stage(tmp_path, MOTION)
    assert moved["run"]["resumed_images"] == 6 and moved["run"]["generated_images"] == 0
    assert moved["generation"]["cache_key"] == first["generation"]["cache_key"]
    assert (tmp_path / "clips" / "clips.npy").read_bytes() == clips
    assert [r.split for r in read_index(tmp_path / "clips" / "index.csv")] != [r.split for r in rows]  # follows
    write_index(tmp_path / "curated" / "index.csv",
                [dataclasses.replace(r, wnid="n99999999") if r.id == rows[0].id else r for r in rows])
    relabelled = _stage(tmp_path, MOTION)
    assert relabelled["generation"]["cache_key"] != first["generation"]["cache_key"]


# --- data/clips depends only on what changes the clips -----------------------------------------

def test_run_knobs_leave_data_clips_byte_identical(tmp_path):
    """svd.batch_size 4 -> 1 and another chunk size: same data/clips bytes (previews and
    generation.json included), only the run file differs; also when the cached description is gone."""
    make_curated(tmp_path / "curated", n=4)
    tiny = {**TINY32, "previews_per_class": 1}
    first = _stage(tmp_path, {**tiny, "batch_size": 4, "chunk_size": 4}, run_file="run1.json")
    ref = _files(tmp_path / "clips")
    assert set(ref) == {"clips.npy", "index.csv", "generation.json", "previews/000_n00000000_test_100.mp4",
                        "previews/001_n00000001_test_103.mp4"}
    second = _stage(tmp_path, {**tiny, "batch_size": 1, "chunk_size": 3}, run_file="run2.json")
    assert second["run"]["resumed_images"] == 4 and second["run"]["generated_images"] == 0
    assert _files(tmp_path / "clips") == ref
    run1, run2 = (json.loads((tmp_path / f).read_text()) for f in ("run1.json", "run2.json"))
    assert run1 != run2 and (run1["batch_size"], run2["batch_size"]) == (4, 1)
    assert (run1["generated_images"], run2["resumed_images"]) == (4, 4)

    # generation.json: content facts only
    meta = json.loads(ref["generation.json"])
    assert list(meta) == ["generator", "cache_key", "clip_settings", "resolved", "curated_hash", "shape", "images",
                          "frames", "seed_rule", "prompts", "provenance"]
    assert "batch_size" not in json.dumps(meta) and "seconds" not in json.dumps(meta)
    assert meta == first["generation"] == second["generation"]

    # a cache without the stored description (deleted): built once to describe, same bytes
    (tmp_path / "cache" / "svd" / meta["cache_key"] / "generator.json").unlink()
    _stage(tmp_path, {**tiny, "batch_size": 2}, run_file="run3.json")
    assert _files(tmp_path / "clips") == ref

    # a fresh cache and another batch size from scratch: the same files too (within the documented
    # 1e-5 float tolerance a rare uint8 may round differently, so compare everything but the clips)
    (tmp_path / "cache2").mkdir()
    from gva.generate.stage import run

    run(config_from_dict({"svd": {**tiny, "batch_size": 3}}), curated_dir=tmp_path / "curated",
        out_dir=tmp_path / "clips2", cache_root=tmp_path / "cache2", run_file=tmp_path / "run4.json", progress=False)
    fresh = _files(tmp_path / "clips2")
    assert {k: v for k, v in fresh.items() if k.endswith((".json", ".csv"))} == \
        {k: v for k, v in ref.items() if k.endswith((".json", ".csv"))}
    a, b = (np.load(d / "clips.npy").astype(int) for d in (tmp_path / "clips", tmp_path / "clips2"))
    assert np.abs(a - b).max() <= 1


def test_preview_mp4s_are_byte_deterministic(tmp_path):
    from gva.data.video import write_mp4

    clip = np.random.default_rng(0).integers(0, 256, (3, 64, 48, 3), dtype=np.uint8)
    write_mp4(tmp_path / "a.mp4", clip, 6)
    write_mp4(tmp_path / "b.mp4", clip, 6)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_tiny_model_dir_is_rebuilt_when_its_builder_changes(tmp_path, monkeypatch):
    from gva.tiny import base, svd

    path = svd.model_dir(tmp_path)
    stamp = json.loads((path / base.TINY_STAMP).read_text())
    assert stamp == base.tiny_stamp(svd.TINY_SVD_VERSION, [Path(svd.__file__)])
    marker = path / "marker"
    marker.write_text("kept while the stamp matches")
    assert svd.model_dir(tmp_path) == path and marker.exists()
    monkeypatch.setattr(base, "tiny_stamp", lambda *a: {**stamp, "code_hash": "edited"})
    assert svd.model_dir(tmp_path) == path and not marker.exists()  # rebuilt
    assert json.loads((path / base.TINY_STAMP).read_text())["code_hash"] == "edited"


@pytest.mark.parametrize("ingredient", ["settings", "versions"])
def test_ranks_that_disagree_fail_naming_what_differs(tmp_path, monkeypatch, ingredient):
    """Two ranks with different key records (simulated: rank 1's record is altered) refuse to run."""
    from gva.distributed import Dist
    from gva.errors import GenerationError

    make_curated(tmp_path / "curated", n=3)

    class TwoRanks(Dist):
        def all_gather_object(self, obj, what=""):
            other = json.loads(json.dumps(obj))
            other[ingredient] = {"different": True}
            return [obj, other]

    monkeypatch.setattr(stage.distributed, "session", lambda device_type: _Ctx(TwoRanks()))
    with pytest.raises(GenerationError, match="ranks disagree on the (svd settings|library versions)"):
        _stage(tmp_path, MOTION)


class _Ctx:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False


# --- a damaged cache is never used --------------------------------------------------------------

def _flip_bytes(path: Path, count: int = 100) -> None:
    """Flip ``count`` bytes in the data part of a .npy file (its header, dtype and shape stay valid)."""
    data = bytearray(path.read_bytes())
    start = len(data) - count - 7
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupted_chunk_is_regenerated_with_a_warning_naming_it(tmp_path, caplog):
    """Issue 26: bytes flipped inside a committed chunk (header, dtype and shape intact) were
    re-assembled silently ("0 generated, all resumed"). The hash recorded at commit catches it."""
    make_curated(tmp_path / "curated", n=6)
    first = _stage(tmp_path, MOTION)
    clips = (tmp_path / "clips" / "clips.npy").read_bytes()
    chunks = sorted((tmp_path / "cache" / "svd" / first["generation"]["cache_key"]).glob("clips_*.npy"))
    assert len(chunks) == 3  # chunk_size 2
    _flip_bytes(chunks[1])

    with caplog.at_level("WARNING"):
        again = _stage(tmp_path, MOTION)
    assert again["run"]["generated_images"] == 2 and again["run"]["resumed_images"] == 4
    assert (tmp_path / "clips" / "clips.npy").read_bytes() == clips
    assert any(chunks[1].name in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)

    # a chunk whose recorded hash is gone cannot be checked: regenerated as well
    next(chunks[2].parent.glob(chunks[2].name + ".*")).unlink()
    third = _stage(tmp_path, MOTION)
    assert third["run"]["generated_images"] == 2 and third["run"]["resumed_images"] == 4
    assert (tmp_path / "clips" / "clips.npy").read_bytes() == clips
