"""params.yaml parsing: defaults, the shipped file, and errors that name the file and key."""

import re

import pytest

from gva.config import REFERENCE_CLASSES, Config, ConfigError, config_from_dict, load_config


def test_shipped_params_are_the_reference_experiment():
    cfg = load_config("params.yaml")
    assert cfg.data.classes == REFERENCE_CLASSES and cfg.num_classes == 10
    assert (cfg.svd.steps, cfg.svd.frames, cfg.svd.first_frame) == (12, 3, "original")
    assert cfg.model.arch == "vgg11_bn" and cfg.model.pretrained
    assert (cfg.train.lr, cfg.train.momentum, cfg.train.weight_decay) == (1e-3, 0.9, 1e-4)
    assert (cfg.train2d.batch_size, cfg.train3d.batch_size) == (32, 8)


def test_defaults_equal_shipped_file():
    # the dataclass defaults and params.yaml must not drift apart
    assert config_from_dict({}) == load_config("params.yaml") == Config()


@pytest.mark.parametrize("raw, match", [
    ({"svd": {"stepz": 3}}, r"unknown key\(s\) svd.stepz"),
    ({"nonsense": {}}, r"unknown key\(s\) nonsense"),
    ({"svd": {"steps": "many"}}, r"svd.steps: expected an integer"),
    ({"model": {"pretrained": "yes"}}, r"model.pretrained: expected true/false"),
    ({"data": {"val_fraction": 1.5}}, r"data.val_fraction must be in"),
    ({"data": {"classes": "n01"}}, r"data.classes: expected a list"),
    ({"inflate": {"time_kernel": 2}}, r"inflate.time_kernel must be a positive odd"),
    ({"train3d": {"lr": 0}}, r"train3d.lr must be positive or null"),
    ({"train": {"freeze": ""}}, r"train.freeze must be a module name"),
    ({"train": {"freeze": "blocks.3."}}, r"train.freeze must be a module name"),
    ({"train": {"freeze": 3}}, r"train.freeze: expected a string"),
    ({"train": {"threads": 0}}, r"train.threads must be in \[1, 1024\] or null"),
    ({"evaluate": {"threads": -1}}, r"evaluate.threads must be in \[1, 1024\] or null"),
    ({"inflate": {"threads": 2000}}, r"inflate.threads must be in \[1, 1024\] or null"),
])
def test_bad_values_are_named(raw, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict(raw)


def test_numbers_are_coerced_and_null_allowed():
    cfg = config_from_dict({"train": {"lr": 1}, "data": {"limit_per_class": None}, "train3d": {"lr": 1}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float) and cfg.data.limit_per_class is None
    assert cfg.train3d.lr == 1.0 and isinstance(cfg.train3d.lr, float)
    assert config_from_dict({}).train3d.lr is None
    assert config_from_dict({}).train.freeze is None  # default: every layer trains
    assert config_from_dict({"train": {"freeze": "blocks.3"}}).train.freeze == "blocks.3"
    assert config_from_dict({}).train.threads is None and config_from_dict({}).evaluate.threads is None


def test_file_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: params file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "p.yaml"
    bad.write_text("svd: {steps: [}\n")
    with pytest.raises(ConfigError, match="p.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("svd:\n  steps: 0\n")
    with pytest.raises(ConfigError, match=r"p.yaml: svd.steps must be in \[1, 10000\], got 0"):
        load_config(bad)


@pytest.mark.parametrize("section, key, value", [
    ("svd", "frames", 1_000_000_000), ("train", "image_size", 1_000_000), ("svd", "height", 100_000),
    ("data", "image_size", 0), ("train2d", "batch_size", 10**9), ("evaluate", "latency_batch_sizes", [])])
def test_absurd_sizes_are_refused_naming_the_key(section, key, value):
    with pytest.raises(ConfigError, match=rf"{section}\.{key}"):
        config_from_dict({section: {key: value}})


def test_a_directory_as_params_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_every_user_error_class_derives_from_the_one_root():
    import gva.errors as errors

    classes = [getattr(errors, name) for name in errors.__all__]
    assert all(issubclass(c, errors.GvaError) for c in classes)
    assert ConfigError is errors.ConfigError


def _numeric_keys(cls=Config, prefix=""):
    """(dotted key, annotation) of every number or list of numbers in the params, nested ones too."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)] if typing.get_origin(tp) is typing.Union else [tp]
        tp = args[0] if len(args) == 1 else tp
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(tp):
            yield from _numeric_keys(tp, key + ".")
        elif tp in (int, float) or typing.get_origin(tp) is list and typing.get_args(tp)[0] in (int, float):
            yield key, tp


def _override(key: str, value) -> dict:
    raw: dict = {}
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return raw


@pytest.mark.parametrize("key, tp", list(_numeric_keys()))
def test_every_numeric_param_has_its_range_checked(key, tp):
    """Issue 26: train.gamma -1 trained with a negative learning rate, train.momentum and
    train.weight_decay -1 crashed in torch, svd.fps 0 was accepted silently... No number in the
    params accepts -1, and no float accepts NaN or infinity."""
    import typing

    value = [-1] * 3 if typing.get_origin(tp) is list else -1
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}\b"):
        config_from_dict(_override(key, value))
    if tp is float:
        for bad in (float("nan"), float("inf")):
            with pytest.raises(ConfigError, match=rf"^{re.escape(key)}\b"):
                config_from_dict(_override(key, bad))


@pytest.mark.parametrize("raw, match", [
    ({"svd": {"fps": 0}}, r"svd.fps must be in \[1, "),
    ({"svd": {"fps": -5, "codec": "h264"}}, r"svd.fps must be in \[1, "),
    ({"data": {"image_size": 1}}, r"data.image_size must be in \[2, "),   # every generator refuses 1x1 images
    ({"train": {"gamma": 1.5}}, r"train.gamma must be in \(0, 1\]"),
    ({"train": {"momentum": 1.0}}, r"train.momentum must be in \[0, 1\)"),
    ({"train": {"mean": [0.5, 0.5, 2.0]}}, r"train.mean\[2\] must be in \[0, 1\], got 2.0"),
    ({"svd": {"device": "gpu"}}, r"svd.device must be auto, cpu or cuda\[:N\], got 'gpu'"),   # every device key
    ({"train": {"device": "cuda:x"}}, r"train.device must be auto, cpu or cuda\[:N\]"),
    ({"svd": {"motion": {"max_zoom": 1.0}}}, r"svd.motion.max_zoom must be in \[0, 1\)"),
])
def test_ranges_that_passed_validation_and_crashed_later(raw, match):
    """Bounds and choices are declared next to each field (``Annotated[int, Range(...)]``) and
    checked by one validator; the message names the key, the allowed range and the value."""
    with pytest.raises(ConfigError, match=match):
        config_from_dict(raw)


def test_floats_as_dvc_writes_them_read_as_floats(tmp_path):
    """`dvc exp run -S train.lr=1.0e-05` rewrites params.yaml with ruamel (YAML 1.2) as `lr: 1e-05`,
    which PyYAML alone reads as the string '1e-05': the stage failed with "expected a number"."""
    import yaml

    from gva.config import load_yaml

    path = tmp_path / "params.yaml"
    path.write_text("train:\n  lr: 1e-05\n  weight_decay: 5E+1\n  momentum: 1.5e-1\n")
    cfg = load_config(path)
    assert (cfg.train.lr, cfg.train.weight_decay, cfg.train.momentum) == (1e-5, 50.0, 0.15)
    assert load_yaml("[1e5, -2e-3, 1_0e1, 3, 0.5, 1.0e-05, .inf, 1e, e5, 1e-05x, '1e-05']") == \
        [1e5, -2e-3, 100.0, 3, 0.5, 1e-5, float("inf"), "1e", "e5", "1e-05x", "1e-05"]
    assert yaml.safe_load("1e-05") == "1e-05"  # PyYAML's own loader is left as it is


def test_a_float_set_through_dvc_reaches_the_stage(tmp_path):
    """format_value's spelling, through DVC's own -S code (Hydra, then a ruamel rewrite), then the
    stage's load_config: the same float."""
    hydra = pytest.importorskip("dvc.utils.hydra")
    from gva.protocol import format_value

    path = tmp_path / "params.yaml"
    for value in (1e-5, 3e-4, 2.5e-7, 1e16, 0.01):
        path.write_text("train:\n  lr: 0.1\n")
        hydra.apply_overrides(path, [f"train.lr={format_value(value)}"])
        assert load_config(path).train.lr == value, path.read_text()
