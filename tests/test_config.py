"""params.yaml parsing: defaults, the shipped file, and errors that name the file and key."""

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
    with pytest.raises(ConfigError, match="p.yaml: svd.steps must be positive"):
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
