"""Presets as files (gva.presets, `gva preset`): params/*.yaml -> checked `-S` overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from gva import cli, presets
from gva.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _at_root(monkeypatch):
    monkeypatch.chdir(ROOT)   # named presets live in params/ of the repository root


def _write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_the_offline_preset_is_what_repro_sh_ran():
    """The -S overrides of scripts/repro.sh's offline array (43d505c), data.source aside."""
    assert sorted(presets.load("offline")) == sorted([
        "data.limit_per_class=40", "svd.generator=motion", "model.arch=timm:tf_efficientnet_lite0",
        "model.pretrained=true", "model.head=imagenet", "train.image_size=64", "train.freeze=blocks.6",
        "train.lr=0.01", "train.threads=1", "inflate.threads=1", "evaluate.threads=1", "train2d.epochs=3",
        "train3d.epochs=2", "inflate.last_n=2", "evaluate.bootstrap=2000", "evaluate.latency_batch_sizes=[1,8]",
        "evaluate.latency_repeats=5"])


def test_presets_flatten_in_the_files_order_with_yaml_flow_values():
    assert presets.load("paper")[:4] == ["data.md5=null", "data.image_size=96", "svd.previews_per_class=0",
                                         "model.arch=timm:tf_efficientnet_lite0"]
    scratch = presets.load("grid-scratch")
    assert "model.pretrained=false" in scratch and "train3d.lr=0.001" in scratch
    assert presets.known() == ["grid-scratch", "offline", "paper"]
    assert presets.flatten({"svd": {"motion": {"max_zoom": 0.1}, "steps": 3}, "train": {}}) == \
        {"svd.motion.max_zoom": 0.1, "svd.steps": 3}


def test_no_preset_names_a_path_to_data():
    for name in presets.known():
        assert not any(o.startswith(("data.source=", "svd.model=")) for o in presets.load(name)), name


def test_an_unknown_key_names_the_file_and_the_key(tmp_path):
    path = _write(tmp_path, "train:\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key\(s\) train\.lrr"):
        presets.load(path)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) trian"):
        presets.load(_write(tmp_path, "trian:\n  lr: 0.1\n", "q.yaml"))


def test_a_bad_value_names_the_file_and_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"p\.yaml: train\.lr must be positive"):
        presets.load(_write(tmp_path, "train:\n  lr: -1\n"))
    with pytest.raises(ConfigError, match=r"train2d\.frames: 'some' is not one of first, all"):
        presets.load(_write(tmp_path, "train2d:\n  frames: some\n"))
    # checked against params.yaml, across keys: an ImageNet head needs ImageNet weights
    with pytest.raises(ConfigError, match=r"model\.head"):
        presets.load(_write(tmp_path, "model:\n  head: imagenet\n  pretrained: false\n"))


def test_a_small_float_loads_and_checks(tmp_path):
    """``lr: 0.00001`` was spelled ``train.lr=1e-05``, which the check (and PyYAML) read as a string:
    "train.lr: expected a number, got '1e-05'"."""
    out = presets.load(_write(tmp_path, "train:\n  lr: 0.00001\n  weight_decay: 5.0e-5\n"))
    assert out == ["train.lr=1.0e-05", "train.weight_decay=5.0e-05"]
    assert presets.apply({}, out) == {"train": {"lr": 1e-5, "weight_decay": 5e-5}}
    with pytest.raises(ConfigError, match=r"q\.yaml: train\.lr: .*non-finite"):
        presets.load(_write(tmp_path, "train:\n  lr: .inf\n", "q.yaml"))


def test_a_path_to_data_is_an_argument_not_a_preset(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.source is set: a path to data is an argument"):
        presets.load(_write(tmp_path, "data:\n  source: /somewhere\n"))


def test_malformed_and_missing_presets(tmp_path):
    with pytest.raises(ConfigError, match=r"no such preset \(presets in params/: grid-scratch, offline, paper\)"):
        presets.load("nope")
    with pytest.raises(ConfigError, match="a mapping of params sections"):
        presets.load(_write(tmp_path, "train.lr: 0.1\n"))
    with pytest.raises(ConfigError, match="not valid YAML"):
        presets.load(_write(tmp_path, "train: [\n"))
    assert presets.load(_write(tmp_path, "# nothing set\n")) == []
    assert presets.path_of("offline") == Path("params/offline.yaml")
    assert presets.path_of("x/y") == Path("x/y") and presets.path_of("z.yaml") == Path("z.yaml")


def test_apply_is_dvcs_later_wins_with_yaml_values():
    out = presets.apply({"train": {"lr": 0.1}}, ["train.lr=0.01", "evaluate.latency_batch_sizes=[1,8]",
                                                  "svd.motion.max_zoom=0.2", "train.lr=null"])
    assert out == {"train": {"lr": None}, "evaluate": {"latency_batch_sizes": [1, 8]},
                   "svd": {"motion": {"max_zoom": 0.2}}}
    with pytest.raises(ConfigError, match="key=value"):
        presets.apply({}, ["train.lr"])


def test_gva_preset_prints_the_overrides(capsys):
    assert cli.main(["preset", "offline", "--lines"]) == 0
    assert capsys.readouterr().out.splitlines() == presets.load("offline")
    assert cli.main(["preset", "grid-scratch"]) == 0
    assert capsys.readouterr().out.split()[:4] == ["-S", "svd.previews_per_class=0", "-S", "model.arch=resnet18"]
    assert cli.main(["preset", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gva preset: error: params/nope.yaml: no such preset") and err.count("\n") == 1
