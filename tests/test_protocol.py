"""The protocol audit: the reference geometry and H.264 round trip (gva.generate.postprocess), the
wrapped generators and their cache key, the new config knobs, the presets of gva.protocol and
``gva protocol``, and ``train3d.augment`` reaching the 3-D training set."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from gva import cli, protocol
from gva.config import Config, ConfigError, SvdConfig, config_from_dict, to_dict
from gva.generate import build_generator
from gva.generate.factory import cache_settings
from gva.generate.postprocess import ProtocolGenerator, h264_round_trip, protocol_settings, reference_geometry


def _smooth_image(seed: int = 0, size: int = 64) -> np.ndarray:
    """Random 8x8 colours upsampled (bicubic) to ``size``: smooth-ish, every pixel different."""
    small = np.random.default_rng(seed).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def _smooth_clip(frames: int = 4, size: int = 64) -> np.ndarray:
    """Sinusoids drifting to the right: what a codec handles well."""
    y, x = np.mgrid[0:size, 0:size]
    out = []
    for k in range(frames):
        f = np.stack([128 + 100 * np.sin((x + k) / 10), 128 + 100 * np.cos(y / 12),
                      128 + 60 * np.sin((x + y) / 15)], -1)
        out.append(np.clip(f, 0, 255).astype(np.uint8))
    return np.stack(out)


def _gradients(size: int = 64) -> np.ndarray:
    """R = 4 * column, G = 4 * row, B = 128."""
    y, x = np.mgrid[0:size, 0:size]
    return np.stack([4 * x, 4 * y, np.full_like(x, 128)], -1).astype(np.uint8)


# --- geometry --------------------------------------------------------------------------------------

def test_reference_geometry_matches_the_reference_transforms():
    """The issue's requirement: within one grey level of the reference pipeline on most pixels
    (PIL Lanczos stretch to 1024x576, then torchvision Resize(224) + CenterCrop(224))."""
    import torchvision.transforms as T

    img = _smooth_image()
    ours = reference_geometry(img[None], 1024, 576, 224)[0]
    stretched = Image.fromarray(img).resize((1024, 576), Image.LANCZOS)
    ref = np.asarray(T.Compose([T.Resize(224), T.CenterCrop(224)])(stretched))
    assert ours.shape == ref.shape == (224, 224, 3) and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert (diff <= 1).mean() >= 0.99
    # and it is not the plain square image upscaled (the test can tell the geometries apart)
    plain = np.asarray(Image.fromarray(img).resize((224, 224), Image.BILINEAR))
    assert (np.abs(plain.astype(int) - ours.astype(int)) > 1).mean() > 0.5


def test_reference_geometry_shows_the_central_width_stretched():
    """Independent of torchvision: columns show the central 576/1024 of the width, rows are kept."""
    out = reference_geometry(_gradients()[None], 1024, 576, 64)[0].astype(float)
    x_of = out[..., 0] / 4  # original column each output pixel shows
    y_of = out[..., 1] / 4
    expected_left = 64 * (1 - 576 / 1024) / 2   # = 14
    assert abs(x_of[32, 0] - expected_left) <= 2
    assert abs(x_of[32, -1] - (64 - expected_left)) <= 2
    visible = x_of[32, -1] - x_of[32, 0]
    assert abs(visible / 64 - 576 / 1024) < 0.05   # ~56 % of the width
    assert np.all(np.diff(x_of[32]) >= 0)          # still left to right
    # every row is the same, every column the same vertical gradient
    assert np.abs(x_of - x_of[32]).max() <= 1
    assert np.abs(y_of[4:-4] - np.arange(64)[4:-4, None]).max() <= 1  # rows unchanged (away from edges)


def test_reference_geometry_keeps_leading_dims():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 3, 32, 32, 3), dtype=np.uint8)
    out = reference_geometry(frames, 64, 32, 16)
    assert out.shape == (2, 3, 16, 16, 3) and out.dtype == np.uint8
    # each frame on its own: same result as one at a time
    assert np.array_equal(out[1, 2], reference_geometry(frames[1, 2][None], 64, 32, 16)[0])
    assert not np.array_equal(out[0, 0], out[1, 2])


def test_a_frame_already_at_width_x_height_is_not_stretched_again(monkeypatch):
    import torchvision.transforms.functional as TF

    frame = np.random.default_rng(0).integers(0, 256, (16, 32, 3), dtype=np.uint8)  # H=16, W=32
    sizes = []
    real = Image.Image.resize

    def resize(self, size, resample=None, *args, **kwargs):
        if resample == Image.Resampling.LANCZOS:
            sizes.append(tuple(size))
        return real(self, size, resample, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "resize", resize)
    out = reference_geometry(frame[None], 32, 16, 16)[0]
    assert sizes == []  # no Lanczos stretch
    assert np.array_equal(out, np.asarray(TF.center_crop(TF.resize(Image.fromarray(frame), 16), 16)))
    reference_geometry(_smooth_image(size=16)[None], 32, 16, 16)  # a square frame is stretched
    assert sizes == [(32, 16)]


# --- H.264 round trip ------------------------------------------------------------------------------

def test_h264_round_trip_is_close_lossy_and_deterministic():
    clip = _smooth_clip()
    out = h264_round_trip(clip, fps=7)
    assert out.shape == clip.shape and out.dtype == np.uint8
    err = np.abs(out.astype(int) - clip.astype(int))
    assert err.mean() < 4
    assert not np.array_equal(out, clip)  # lossy: it really went through the codec
    # the same bytes every time (a reused scaler context once made 1 in 20 encodings differ)
    assert {h264_round_trip(clip, fps=7).tobytes() for _ in range(30)} == {out.tobytes()}
    # a worse crf is further away: the crf argument reaches the encoder
    worse = h264_round_trip(clip, fps=7, crf=45)
    assert np.abs(worse.astype(int) - clip.astype(int)).mean() > err.mean()


def test_h264_round_trip_odd_sides():
    clip = np.random.default_rng(0).integers(0, 256, (3, 63, 61, 3), dtype=np.uint8)
    clip[:] = _smooth_clip(1, 64)[0, :63, :61]
    out = h264_round_trip(clip, fps=7)
    assert out.shape == (3, 63, 61, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - clip.astype(int)).mean() < 4  # cropped back where it was, not shifted


# --- generators and the cache key ------------------------------------------------------------------

REPEAT = SvdConfig(generator="repeat", frames=3)
REFERENCE = dataclasses.replace(REPEAT, geometry="reference", width=1024, height=576)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.stack([_smooth_image(seed) for seed in range(4)])


def test_gva_protocol_returns_the_plain_generator():
    gen = build_generator(REPEAT, device="cpu")
    assert not isinstance(gen, ProtocolGenerator)


@pytest.mark.parametrize("settings", [
    {"geometry": "reference", "width": 1024, "height": 576},
    {"codec": "h264"},
    {"geometry": "reference", "width": 1024, "height": 576, "codec": "h264"},
], ids=["geometry", "codec", "both"])
def test_protocol_generators_are_wrapped_per_image(settings, images):
    seeds = [11, 12, 13, 14]
    square = build_generator(REPEAT, device="cpu").generate(images, seeds)
    gen = build_generator(dataclasses.replace(REPEAT, **settings), device="cpu")
    assert isinstance(gen, ProtocolGenerator) and gen.frames == 3
    clips = gen.generate(images, seeds)
    assert clips.shape == square.shape == (4, 3, 64, 64, 3) and clips.dtype == np.uint8
    assert not np.array_equal(clips, square)
    one_by_one = np.concatenate([gen.generate(images[i:i + 1], seeds[i:i + 1]) for i in range(4)])
    assert clips.tobytes() == one_by_one.tobytes()
    floats = gen.generate_float(images[:1], seeds[:1])
    assert floats.dtype == np.float32 and np.array_equal(np.rint(floats * 255).astype(np.uint8), clips[:1])
    post = gen.describe()["postprocess"]
    assert post["geometry"] == settings.get("geometry", "square") and post["codec"] == settings.get("codec", "none")


def test_repeat_in_reference_geometry_is_static_and_is_the_geometry(images):
    gen = build_generator(REFERENCE, device="cpu")
    clips = gen.generate(images, [0, 1, 2, 3])
    assert all(np.array_equal(c[t], c[0]) for c in clips for t in range(3))
    assert np.array_equal(clips[:, 0], reference_geometry(images, 1024, 576, 64))


def test_empty_batch_through_the_wrapper():
    gen = build_generator(dataclasses.replace(REFERENCE, codec="h264"), device="cpu")
    out = gen.generate(np.zeros((0, 64, 64, 3), np.uint8), [])
    assert out.shape[0] == 0 and out.dtype == np.uint8


def test_cache_settings_follow_geometry_and_codec():
    square, reference = cache_settings(REPEAT, "cpu"), cache_settings(REFERENCE, "cpu")
    h264 = cache_settings(dataclasses.replace(REPEAT, codec="h264"), "cpu")
    assert len({str(square), str(reference), str(h264)}) == 3
    # the stretch is part of the key in the reference geometry only
    assert cache_settings(dataclasses.replace(REFERENCE, width=512, height=288), "cpu") != reference
    assert cache_settings(dataclasses.replace(REPEAT, width=512, height=288), "cpu") == square
    # the codec's fps is part of the key with h264 only
    assert cache_settings(dataclasses.replace(REPEAT, codec="h264", fps=8), "cpu") != h264
    assert cache_settings(dataclasses.replace(REPEAT, fps=8), "cpu") == square
    assert protocol_settings(REPEAT) == {"geometry": "square", "codec": "none"}


# --- config ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, match", [
    ({"svd": {"geometry": "wide"}}, r"svd\.geometry"),
    ({"svd": {"codec": "vp9"}}, r"svd\.codec"),
    ({"train3d": {"augment": "no"}}, r"train3d\.augment"),
])
def test_bad_protocol_values_are_named(raw, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(raw)


@pytest.mark.parametrize("value", [True, False, None])
def test_train3d_augment_accepts_bool_and_null(value):
    assert config_from_dict({"train3d": {"augment": value}}).train3d.augment is value


def test_protocol_config_defaults():
    cfg = Config()
    assert (cfg.svd.geometry, cfg.svd.codec, cfg.train3d.augment) == ("square", "none", None)


# --- gva.protocol ----------------------------------------------------------------------------------

def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        out[key] = v
    return out


def _nest(flat: dict) -> dict:
    out: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


DEFAULTS = _flatten(to_dict(Config()))


def test_gva_preset_is_the_defaults():
    values = protocol.overrides("gva")
    assert set(values) >= {k.key for k in protocol.KNOBS}
    for key, value in values.items():
        assert key in DEFAULTS, key
        assert DEFAULTS[key] == value, key
    assert config_from_dict(_nest(values)) == Config()


@pytest.mark.parametrize("pretrained", [True, False])
def test_reference_preset_keys_are_real_config_keys(pretrained):
    values = protocol.overrides("reference", pretrained=pretrained)
    assert set(values) <= set(DEFAULTS)
    cfg = _flatten(to_dict(config_from_dict(_nest(values))))  # validates, and every value lands
    for key, value in values.items():
        assert cfg[key] == value, key


def test_every_knob_differs_from_gva_and_names_its_key():
    for k in protocol.KNOBS:
        assert k.key in k.reference and k.key in k.gva, k.name
        assert k.reference[k.key] != k.gva[k.key], k.name
        assert k.reference[k.key] != DEFAULTS[k.key] and k.gva[k.key] == DEFAULTS[k.key], k.name


def test_reference_preset_values():
    with_init = protocol.overrides("reference", pretrained=True)
    scratch = protocol.overrides("reference", pretrained=False)
    assert with_init["inflate.source"] == "imagenet" and scratch["inflate.source"] == "train2d"
    assert {k: v for k, v in with_init.items() if k != "inflate.source"} == \
        {k: v for k, v in scratch.items() if k != "inflate.source"}
    assert (with_init["svd.geometry"], with_init["svd.width"], with_init["svd.height"]) == ("reference", 1024, 576)
    assert with_init["svd.codec"] == "h264" and with_init["train3d.augment"] is False
    assert with_init["train.select_on"] == "test" and with_init["inflate.bn_stats"] == "drop"
    assert with_init["evaluate.extra_protocols"] == ["frame0"] and with_init["svd.first_frame"] == "generated"


def test_without_sets_one_knob_back():
    full = protocol.overrides("reference")
    loo = protocol.overrides("reference", without=("geometry",))
    assert loo["svd.geometry"] == "square"
    geometry_keys = set(protocol.knob("geometry").reference) | set(protocol.knob("geometry").gva)
    for key, value in loo.items():
        if key not in geometry_keys:
            assert value == full[key], key
    with pytest.raises(ValueError, match="unknown protocol knob 'nope'"):
        protocol.overrides("reference", without=("nope",))
    with pytest.raises(ValueError, match="unknown protocol preset"):
        protocol.overrides("paper")


def test_knobs_on():
    names = protocol.KNOB_NAMES
    assert protocol.knobs_on(protocol.overrides("reference")) == names
    assert protocol.knobs_on(protocol.overrides("reference", pretrained=False)) == \
        tuple(n for n in names if n != "init")
    assert protocol.knobs_on(protocol.overrides("gva")) == ()
    assert protocol.knobs_on(DEFAULTS) == () and protocol.knobs_on({}) == ()
    for name in names:
        assert protocol.knobs_on(protocol.overrides("reference", without=(name,))) == \
            tuple(n for n in names if n != name), name
    # frame0 is on when listed among other extra protocols too
    assert protocol.knobs_on({"evaluate.extra_protocols": ["frames_mean", "frame0"]}) == ("frame0",)


def test_variant_name():
    names = protocol.KNOB_NAMES
    assert protocol.variant_name(()) == "gva protocol"
    assert protocol.variant_name(names) == "reference protocol"
    assert protocol.variant_name(tuple(n for n in names if n != "geometry")) == "reference, gva's geometry"
    assert protocol.variant_name(("select",)) == "gva + select"
    scratch = tuple(n for n in names if n != "init")
    assert protocol.variant_name(scratch, applicable=scratch) == "reference protocol"


def test_set_args_and_format_value():
    assert protocol.set_args({"train3d.augment": False, "a.b": None, "evaluate.extra_protocols": ["frame0"]}) == \
        ["-S", "train3d.augment=false", "-S", "a.b=null", "-S", "evaluate.extra_protocols=[frame0]"]
    for value in protocol.overrides("reference").values():
        assert yaml.safe_load(protocol.format_value(value)) == value


FLOATS = [0.00001, 1e-5, 3e-4, 2.5e-7, -1e-06, 1e16, 1.5e20, 1e-300, 5e-324, 0.1, 0.01, 1.0, -2.0, 0.0, -0.0,
          100.0, 123456789.125, 1 / 3, 0.1 + 0.2, 2.0 ** 70]


@pytest.mark.parametrize("value", FLOATS)
def test_a_float_reads_back_as_the_same_float_in_yaml_1_1_and_dvcs_set_param(value):
    """``1e-05`` is a string to PyYAML (YAML 1.1 needs a dot): a preset with ``lr: 0.00001`` failed
    its check with "expected a number, got '1e-05'". The spelling is exact (repr's digits)."""
    text = protocol.format_value(value)
    back = yaml.safe_load(text)
    assert isinstance(back, float) and back == value and str(back) == str(value), text
    assert protocol.format_value([value, 1]) == f"[{text},1]"
    assert yaml.safe_load(protocol.format_value([value])) == [value]
    # dvc exp run -S parses with Hydra's override grammar
    parser = pytest.importorskip("hydra.core.override_parser.overrides_parser").OverridesParser.create()
    parsed = parser.parse_overrides([f"train.lr={text}"])[0].value()
    assert isinstance(parsed, float) and parsed == value and str(parsed) == str(value), text


def test_format_value_spellings_and_non_finite_floats():
    assert [protocol.format_value(v) for v in (1e-05, 1.5e-07, 1e16, 0.01, 3, True)] == \
        ["1.0e-05", "1.5e-07", "1.0e+16", "0.01", "3", "true"]
    for bad in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(ValueError, match="non-finite"):
            protocol.format_value(bad)


# --- gva protocol ----------------------------------------------------------------------------------

def _parse_lines(text: str) -> dict:
    out = {}
    for line in text.strip().splitlines():
        key, _, value = line.partition("=")
        out[key] = yaml.safe_load(value)
    return out


def test_cli_lines_parse_back(capsys):
    assert cli.main(["protocol", "reference", "--from-scratch", "--lines"]) == 0
    assert _parse_lines(capsys.readouterr().out) == protocol.overrides("reference", pretrained=False)
    assert cli.main(["protocol", "reference", "--without", "geometry,select", "--lines"]) == 0
    assert _parse_lines(capsys.readouterr().out) == protocol.overrides("reference", ("geometry", "select"))


def test_cli_default_output_is_dvc_set_args(capsys):
    assert cli.main(["protocol", "gva"]) == 0
    assert capsys.readouterr().out.split() == protocol.set_args(protocol.overrides("gva"))


def test_cli_unknown_knob_exits_2(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["protocol", "reference", "--without", "nope"])
    assert exc.value.code == 2
    assert "unknown protocol knob 'nope'" in capsys.readouterr().err


# --- train3d.augment reaches the 3-D training set --------------------------------------------------

class _Stop(Exception):
    pass


def _write_clip_store(root: Path) -> Path:
    from gva.data.arrays import IndexRow, write_array, write_index

    rng = np.random.default_rng(0)
    splits = ["train", "train", "val", "test"] * 2
    rows = [IndexRow(i, s, f"n0000000{i % 2 + 1}", f"class{i % 2}", i % 2, f"{s}/{i}.JPEG")
            for i, s in enumerate(splits)]
    clips = rng.integers(0, 256, (len(rows), 3, 16, 16, 3), dtype=np.uint8)
    directory = root / "clips"
    write_array(directory / "clips.npy", clips)
    write_index(directory / "index.csv", rows)
    return directory


@pytest.mark.parametrize("train_augment, train3d_augment, expected", [
    (True, False, False), (True, None, True), (False, None, False), (False, True, True)])
def test_train3d_augment_overrides_train_augment(tmp_path, monkeypatch, train_augment, train3d_augment,
                                                 expected):
    import torch

    from gva.models.checkpoint import CheckpointMeta, ClassInfo, InflationPlan
    from gva.train import stage

    clips_dir = _write_clip_store(tmp_path)
    meta = CheckpointMeta(kind="3d", arch="stub", pretrained=False,
                          classes=[ClassInfo("n00000001", "class0"), ClassInfo("n00000002", "class1")],
                          input_size=32, mean=[0.5] * 3, std=[0.5] * 3, image_size=16,
                          inflation=InflationPlan("train2d", {"time_kernel": 3, "init": "centre", "last_n": None}))
    monkeypatch.setattr(stage, "load_checkpoint", lambda path: (torch.nn.Identity(), meta))
    calls = []

    def fit(model, train_set, val_set, t, *args, **kwargs):
        calls.append(("fit", t.augment))
        raise _Stop

    monkeypatch.setattr(stage, "fit", fit)
    cfg = config_from_dict({"data": {"classes": ["n00000001", "n00000002"]},
                            "train": {"augment": train_augment, "device": "cpu", "num_workers": 0},
                            "train3d": {"augment": train3d_augment}})
    with pytest.raises(_Stop):
        stage.run_train3d(cfg, tmp_path / "init.pt", clips_dir, tmp_path / "m3.pt", tmp_path / "live3")
    assert calls == [("fit", expected)]  # the loop augments the train loader only (test_train.py)
    assert not (tmp_path / "m3.pt").exists()


def test_shift_preset_is_gva_plus_generated_frame0_scoring():
    from gva.protocol import SHIFT, knobs_on, overrides

    shift = overrides("shift")
    assert shift == {**overrides("gva"), **SHIFT}
    assert shift["svd.first_frame"] == "generated"
    assert shift["evaluate.extra_protocols"] == ["frame0", "frames_mean"]
    assert knobs_on(shift) == ("frame0",)   # frame-0 scoring is on; every other knob at gva's
