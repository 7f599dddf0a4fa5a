"""scripts/grid.sh queues the right experiments (a stub `dvc` on PATH records each call)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gva.protocol import format_value, overrides

ROOT = Path(__file__).resolve().parents[1]


def _queue(tmp_path: Path, *args: str, existing: str = "") -> list[list[str]]:
    """Run grid.sh --no-start with a recording `dvc`; return the args of every `dvc exp run`.
    ``existing``: what the stub prints for `dvc exp list` (one name per line)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    stub = bin_dir / "dvc"
    stub.write_text(f'#!/usr/bin/env bash\nprintf "%s\\0" "$@" >> {log}\nprintf "\\n" >> {log}\n'
                    f'printf "%s" "${{GVA_CACHE_DIR:-}}" > {tmp_path / "cache_env"}\n'
                    f'[ "$1 $2" = "exp list" ] && printf "{existing}"\n'
                    f'[ "$1 $2" = "queue status" ] && printf "Task Name Created Status\\n'
                    f'abc motion-gva-s0 10:00 Running\\nabd motion-ref-s0 10:00 Failed\\n"\nexit 0\n')
    stub.chmod(0o755)
    gva = shutil.which("gva") or str(Path(sys.executable).parent / "gva")
    (bin_dir / "gva").symlink_to(gva)
    data = tmp_path / "data"
    data.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "GVA_CACHE_DIR"}
    env["PATH"] = f"{bin_dir}:{os.environ['PATH']}"
    subprocess.run(["bash", str(ROOT / "scripts" / "grid.sh"), os.path.relpath(data), "--no-start", *args],
                   check=True, env=env, capture_output=True, text=True, cwd=os.getcwd())
    calls = [c.rstrip("\0").split("\0") for c in log.read_text().split("\0\n") if c.strip("\0\n")]
    return [c for c in calls if c[:2] == ["exp", "run"]]


def _sets(call: list[str]) -> dict[str, str]:
    """The -S key=value pairs of one call; later ones win, as in dvc."""
    out = {}
    for flag, value in zip(call, call[1:]):
        if flag == "-S":
            key, _, v = value.partition("=")
            out[key] = v
    return out


def _name(call: list[str]) -> str:
    return call[call.index("-n") + 1]


def test_audit_queues_gva_reference_and_leave_one_out_per_generator_and_seed(tmp_path):
    calls = _queue(tmp_path, "--audit", "--generators", "repeat motion", "--seeds", "0 1",
                   "--loo", "geometry bn_drop")
    names = [_name(c) for c in calls]
    assert names == [f"{g}-{v}-s{s}" for s in (0, 1) for g in ("repeat", "motion")
                     for v in ("gva", "ref", "ref-no-geometry", "ref-no-bn-drop")]
    by_name = {_name(c): _sets(c) for c in calls}
    ref = by_name["motion-ref-s1"]
    for key, value in overrides("reference", pretrained=False).items():
        assert ref[key] == format_value(value), key
    assert ref["svd.generator"] == "motion" and ref["train.seed"] == "1"
    assert ref["model.pretrained"] == "false" and ref["inflate.source"] == "train2d"  # from scratch
    loo = by_name["repeat-ref-no-geometry-s0"]
    assert loo["svd.geometry"] == "square" and loo["inflate.bn_stats"] == "drop"
    assert by_name["repeat-gva-s0"]["svd.geometry"] == "square"
    assert by_name["repeat-gva-s0"]["train.select_on"] == "val"
    # queued experiments run in a temp dir: the data path must be absolute
    assert all(Path(s["data.source"]).is_absolute() for s in by_name.values())


def test_plain_grid_with_controls_vary_all_and_extra_args(tmp_path):
    calls = _queue(tmp_path, "--generators", "repeat", "--control", "repeat", "--seeds", "3",
                   "--vary-all", "--", "-S", "train.image_size=32")
    assert [_name(c) for c in calls] == ["repeat-first-s3", "repeat-all-s3"]
    sets = _sets(calls[1])
    assert sets["train2d.frames"] == "all" and sets["train.image_size"] == "32"
    assert sets["train.seed"] == sets["svd.seed"] == sets["data.seed"] == "3"


def test_without_vary_all_only_the_training_seed_varies(tmp_path):
    (call,) = _queue(tmp_path, "--generators", "repeat", "--control", "", "--seeds", "2")
    sets = _sets(call)
    assert sets["train.seed"] == "2" and "svd.seed" not in sets and "data.seed" not in sets


def test_preset_names_its_runs(tmp_path):
    calls = _queue(tmp_path, "--generators", "motion", "--control", "", "--seeds", "0", "--preset", "shift")
    assert [_name(c) for c in calls] == ["motion-first-shift-s0"]
    assert _sets(calls[0])["evaluate.extra_protocols"] == "[frame0,frames_mean]"


def test_missing_data_dir_fails_clearly(tmp_path):
    r = subprocess.run(["bash", str(ROOT / "scripts" / "grid.sh"), str(tmp_path / "nope"), "--no-start"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "no such data directory" in r.stderr


def test_skip_existing_leaves_out_finished_and_running_names_but_not_failed(tmp_path):
    calls = _queue(tmp_path, "--audit", "--generators", "motion", "--seeds", "0", "--loo", "select",
                   "--skip-existing", existing="repeat-x\\nmotion-ref-no-select-s0\\n")
    assert [_name(c) for c in calls] == ["motion-ref-s0"]   # gva running, no-select done, ref failed


def test_model_generators_get_what_their_default_models_need(tmp_path):
    calls = _queue(tmp_path, "--generators", "svd cogvideox ltx wan i2vgen", "--control", "", "--seeds", "0",
                   "--", "-S", "svd.dtype=fp32")
    by_name = {_name(c): _sets(c) for c in calls}
    assert list(by_name) == [f"{g}-first-s0" for g in ("svd", "cogvideox", "ltx", "wan", "i2vgen")]
    assert (by_name["cogvideox-first-s0"]["svd.height"], by_name["cogvideox-first-s0"]["svd.width"]) == ("480", "720")
    assert by_name["ltx-first-s0"]["svd.height"] == "224"            # only cogvideox's model has a fixed size
    assert all(s["svd.dtype"] == "fp32" for s in by_name.values())    # the user's -S comes last and wins
    assert all(s["svd.generator"] == n.split("-")[0] for n, s in by_name.items())


def test_folds_queue_each_experiment_once_per_fold(tmp_path):
    calls = _queue(tmp_path, "--generators", "motion", "--control", "motion", "--seeds", "0", "--folds", "3",
                   "--vary-all", "--audit", "--loo", "bn_drop", "--skip-existing", existing="motion-gva-s0-f1\n")
    names = [_name(c) for c in calls]
    assert names == [f"motion-{v}-s0-f{k}" for v in ("gva", "ref", "ref-no-bn-drop") for k in range(3)
                     if (v, k) != ("gva", 1)]  # an existing fold is skipped, the others queued
    by_name = {_name(c): _sets(c) for c in calls}
    assert by_name["motion-ref-no-bn-drop-s0-f2"]["data.fold"] == "2"
    assert by_name["motion-ref-no-bn-drop-s0-f2"]["inflate.bn_stats"] == "copy"  # set back to gva's
    assert by_name["motion-ref-no-bn-drop-s0-f2"]["svd.geometry"] == "reference"  # --without bn_drop only
    assert all(s["data.folds"] == "3" and s["data.seed"] == "0" for s in by_name.values())
    (tmp_path / "plain").mkdir()
    plain = _queue(tmp_path / "plain", "--generators", "repeat motion", "--control", "repeat", "--seeds", "1",
                   "--folds", "2")
    assert [_name(c) for c in plain] == ["repeat-first-s1-f0", "repeat-first-s1-f1", "repeat-all-s1-f0",
                                         "repeat-all-s1-f1", "motion-first-s1-f0", "motion-first-s1-f1"]
    assert _sets(plain[3])["train2d.frames"] == "all" and _sets(plain[3])["data.fold"] == "1"
    (tmp_path / "controls").mkdir()
    only = _queue(tmp_path / "controls", "--generators", "repeat motion", "--control", "repeat motion",
                  "--seeds", "0", "--no-first")
    assert [_name(c) for c in only] == ["repeat-all-s0", "motion-all-s0"]


def test_one_worker_shares_the_checkouts_generation_cache(tmp_path):
    _queue(tmp_path, "--generators", "repeat", "--control", "", "--seeds", "0")
    assert (tmp_path / "cache_env").read_text() == str(Path.cwd() / "data" / ".cache")
    (tmp_path / "jobs2").mkdir()
    _queue(tmp_path / "jobs2", "--generators", "repeat", "--control", "", "--seeds", "0", "--jobs", "2")
    assert (tmp_path / "jobs2" / "cache_env").read_text() == ""   # several workers: a cache each


def test_gva_cache_dir_moves_the_cache(tmp_path):
    code = "from gva import paths; print(paths.CACHE_DIR, paths.DOWNLOAD_DIR)"
    moved = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "GVA_CACHE_DIR": str(tmp_path / "c")}).stdout.split()
    assert moved == [str(tmp_path / "c"), str(tmp_path / "c" / "downloads")]
    env = {k: v for k, v in os.environ.items() if k != "GVA_CACHE_DIR"}
    default = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=env).stdout.split()
    assert default == ["data/.cache", "data/.cache/downloads"]
