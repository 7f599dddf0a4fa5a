"""The CLI's error contract: a GvaError is one line and exit 2 (-v adds its traceback); any other
exception is a bug and keeps its traceback."""

from __future__ import annotations

import pytest

from gva import cli
from gva.errors import StoreError


def _user_error(cfg) -> None:
    raise StoreError("data/curated/images.npy: empty or truncated .npy file")


def _bug(cfg) -> None:
    raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")


@pytest.fixture
def params(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("{}\n")
    return str(path)


def test_user_error_is_one_line_and_exit_2(monkeypatch, capsys, params):
    monkeypatch.setitem(cli.STAGES, "curate", f"{__name__}:_user_error")
    assert cli.main(["--params", params, "curate"]) == 2
    err = capsys.readouterr().err
    assert err == "gva curate: error: data/curated/images.npy: empty or truncated .npy file\n"


def test_verbose_shows_the_traceback_of_a_user_error(monkeypatch, capsys, params):
    monkeypatch.setitem(cli.STAGES, "curate", f"{__name__}:_user_error")
    assert cli.main(["-v", "--params", params, "curate"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "_user_error" in err and err.endswith("truncated .npy file\n")


def test_a_bug_keeps_its_traceback(monkeypatch, params):
    monkeypatch.setitem(cli.STAGES, "curate", f"{__name__}:_bug")
    with pytest.raises(ValueError, match="could not be broadcast"):  # not swallowed into one line
        cli.main(["--params", params, "curate"])


def test_params_errors_are_user_errors(tmp_path, capsys):
    assert cli.main(["--params", str(tmp_path), "curate"]) == 2
    assert "is a directory" in capsys.readouterr().err
    (tmp_path / "p.yaml").write_text("svd:\n  frames: 1000000000\n")
    assert cli.main(["--params", str(tmp_path / "p.yaml"), "svd_generate"]) == 2
    assert "svd.frames must be in [1, 256]" in capsys.readouterr().err


def test_a_zero_byte_store_is_a_user_error(tmp_path, capsys, monkeypatch):
    (tmp_path / "data/curated").mkdir(parents=True)
    (tmp_path / "data/curated/images.npy").write_bytes(b"")
    (tmp_path / "data/curated/index.csv").write_text("id,split,wnid,class_name,label,source\n")
    (tmp_path / "params.yaml").write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["extra_frames"]) == 2
    assert "images.npy: empty or truncated .npy file" in capsys.readouterr().err


def test_a_cache_dir_that_is_a_file_is_one_line(tmp_path):
    """Issue 26: GVA_CACHE_DIR naming a file ended in NotADirectoryError's traceback."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tests.test_generate import make_curated

    make_curated(tmp_path / "data" / "curated", n=3)
    (tmp_path / "params.yaml").write_text("svd:\n  generator: repeat\n  previews_per_class: 0\n")
    (tmp_path / "a-file").write_text("x")
    env = {**os.environ, "GVA_CACHE_DIR": "a-file", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run([sys.executable, "-m", "gva.cli", "svd_generate"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr == "gva svd_generate: error: GVA_CACHE_DIR a-file: not a directory\n"
    assert not (tmp_path / "data" / "clips").exists()
