"""A full disk (issue 26): every stage ends in one line naming the stage, the path and "no space
left", exit 2, with its temporary files removed -- never a traceback, never SIGBUS.

Simulated by monkeypatching (ENOSPC from a write, from ``posix_fallocate``, a non-OSError from a
library with the disk at 0 bytes free); and, where this process may mount one, on a real 1 MiB
tmpfs.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gva import cli, io
from gva.data import arrays
from gva.errors import GvaError, NoSpaceError

ROOT = Path(__file__).resolve().parents[1]


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_atomic_path_names_the_final_path_and_removes_its_temporary(tmp_path):
    out = tmp_path / "data" / "curated"
    with pytest.raises(NoSpaceError) as info:
        with io.atomic_path(out) as tmp:
            tmp.mkdir()
            with io.atomic_path(tmp / "images.npy") as inner:
                inner.write_bytes(b"x")
                _enospc()
    exc = info.value
    assert isinstance(exc, GvaError) and isinstance(exc, OSError) and exc.errno == errno.ENOSPC
    assert str(exc) == f"{out / 'images.npy'}: no space left on device"   # the final path, not a temporary's
    assert list((tmp_path / "data").iterdir()) == []                      # nothing left behind

    # another output written while this one is open (train2d: the checkpoint inside the log's block)
    with pytest.raises(NoSpaceError, match=r"^.*models/model2d.pt: no space left on device$"):
        with io.atomic_path(tmp_path / "dvclive" / "train2d"):
            with io.atomic_path(tmp_path / "models" / "model2d.pt"):
                _enospc()


def test_a_library_error_on_a_full_disk_is_no_space_too(tmp_path, monkeypatch):
    """torch.save reports a full disk as a RuntimeError ("file write failed"), without errno."""
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 0))
    with pytest.raises(NoSpaceError, match=r"model2d.pt: no space left on device \(0 bytes free\)"):
        with io.atomic_path(tmp_path / "model2d.pt"):
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")
    monkeypatch.setattr(io.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 0, 10**9))
    with pytest.raises(RuntimeError, match="file write failed"):   # space left: not a full disk
        with io.atomic_path(tmp_path / "model2d.pt"):
            raise RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed")


def test_a_memory_mapped_store_reserves_its_blocks_first(tmp_path, monkeypatch):
    """curate's store is written through a memory map: on a full disk writing a page of a sparse
    file is SIGBUS (exit 135, no message, temporaries left). The blocks are reserved up front."""
    calls = []
    real = os.posix_fallocate
    monkeypatch.setattr(arrays.os, "posix_fallocate", lambda fd, off, n: calls.append(n) or real(fd, off, n))
    with arrays.write_array_rows(tmp_path / "ok.npy", (3, 4, 4, 3)) as rows:
        for i in range(3):
            rows[i] = np.full((4, 4, 3), i, np.uint8)
    assert calls and calls[0] >= 3 * 4 * 4 * 3 and np.load(tmp_path / "ok.npy")[2].max() == 2

    monkeypatch.setattr(arrays.os, "posix_fallocate", _enospc)
    with pytest.raises(NoSpaceError, match=r"full.npy: no space left on device"):
        with arrays.write_array_rows(tmp_path / "full.npy", (3, 4, 4, 3)) as rows:
            raise AssertionError("not reached: the space is reserved before any row is written")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.npy"]


@pytest.mark.parametrize("stage", ["svd_generate", "train2d", "evaluate"])
def test_the_cli_maps_a_full_disk_to_one_line(tmp_path, monkeypatch, capsys, stage):
    """An ENOSPC from outside any atomic output (a library writing its own file) is one line too."""
    params = tmp_path / "params.yaml"
    params.write_text("{}\n")

    def full(cfg):
        raise OSError(errno.ENOSPC, "No space left on device", "dvclive/train2d/metrics.json")

    monkeypatch.setattr(sys.modules[__name__], "_stage", full, raising=False)
    monkeypatch.setitem(cli.STAGES, stage, f"{__name__}:_stage")
    monkeypatch.setitem(cli.PROCESSES, stage, lambda cfg: 1)
    assert cli.main(["--params", str(params), stage]) == 2
    assert capsys.readouterr().err == (f"gva {stage}: error: dvclive/train2d/metrics.json: no space left on "
                                       "device\n")


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def test_curate_on_a_real_full_disk(tmp_path):
    """`gva curate` into a 1 MiB tmpfs, the store needing 2 MiB: exit 2, one line, no temporaries
    (it died of SIGBUS, exit 135)."""
    from conftest import make_tiny_imagenet

    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "1m"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        tin = make_tiny_imagenet(tmp_path / "tin")
        (disk / "params.yaml").write_text(f"data:\n  source: {tin}\n  classes: [n00000001, n00000002, n00000003]\n"
                                          "  image_size: 128\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        proc = subprocess.run([sys.executable, "-m", "gva.cli", "curate"], cwd=disk, env=env,
                              capture_output=True, text=True, timeout=300)
        last = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert last == "gva curate: error: data/curated/images.npy: no space left on device", proc.stderr[-2000:]
        assert [p.name for p in disk.rglob("*")] in (["params.yaml"], ["params.yaml", "data"], ["data", "params.yaml"])
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)
