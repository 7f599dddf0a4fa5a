"""Generation and training under torchrun (2 CPU processes, gloo): bytes, schedules, failures.

* 2 ranks with *separate* caches (as on two machines without a shared filesystem) give the
  1-process bytes, and a re-run resumes from the union of the caches;
* dvc.yaml's templated launcher command (``${svd.processes}``) runs under ``dvc repro``;
* SIGKILL of one rank fails the run with a message naming it, leaves whole chunks, and a re-run
  resumes to the 1-process bytes;
* DDP training equals a one-process simulation of the per-rank batch schedule.

This file is also the worker script the launcher runs (``python tests/test_distributed.py MODE DIR``).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # when run as the worker script
    sys.path.insert(0, str(ROOT))

from tests.test_generate import make_curated  # noqa: E402
from tests.test_generate_resume import TINY  # noqa: E402

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
       "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
MOTION = {"generator": "motion", "chunk_size": 2, "previews_per_class": 0}


def torchrun(args: list[str], cwd: Path, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc-per-node", str(nproc), *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # like each torchrun worker (OMP_NUM_THREADS=1): same float results
    yield
    torch.set_num_threads(old)


def _reference(tmp_path: Path, svd: dict) -> Path:
    from gva.config import config_from_dict
    from gva.generate.stage import run

    run(config_from_dict({"svd": svd}), curated_dir=tmp_path / "data" / "curated", out_dir=tmp_path / "ref",
        cache_root=tmp_path / "ref_cache", run_file=tmp_path / "ref_run.json", progress=False)
    return tmp_path / "ref"


# ---- generation -----------------------------------------------------------------------------


def test_two_ranks_with_separate_caches_match_one_process(tmp_path, one_thread):
    make_curated(tmp_path / "data" / "curated", n=9)
    ref = _reference(tmp_path, MOTION)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"svd": {**MOTION, "processes": 2}}))
    proc = torchrun([__file__, "generate", str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("clips.npy", "index.csv", "generation.json"):
        assert (ref / name).read_bytes() == (tmp_path / "clips" / name).read_bytes(), name
    rec = json.loads((tmp_path / "metrics" / "svd_generate.json").read_text())
    # chunks [0,2) [2,4) [4,6) [6,8) [8,9): rank 1 made [2,4) and [6,8) and sent them to rank 0
    assert (rec["processes"], rec["generated_images"], rec["received_images"]) == (2, 9, 4)
    assert len(list((tmp_path / "cache_rank1").glob("svd/*/clips_*.npy"))) == 2

    # each "node" lost some chunks: the re-run regenerates only rows held by no rank
    for p in sorted((tmp_path / "cache_rank0").glob("svd/*/clips_*.npy"))[:2]:
        p.unlink()  # [0,2), [2,4): rank 1 still holds [2,4)
    proc = torchrun([__file__, "generate", str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((tmp_path / "metrics" / "svd_generate.json").read_text())
    assert (rec["generated_images"], rec["resumed_images"]) == (2, 7)
    assert (ref / "clips.npy").read_bytes() == (tmp_path / "clips" / "clips.npy").read_bytes()


def test_gva_launches_its_own_ranks_under_dvc_repro(tmp_path):
    """The real dvc.yaml command (`gva svd_generate`) starts svd.processes ranks itself; re-runs skip it."""
    real = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["svd_generate"]
    make_curated(tmp_path / "data" / "curated", n=5)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"svd": {**MOTION, "processes": 2}}))
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"svd_generate": {
        "cmd": real["cmd"], "deps": ["data/curated"], "params": ["svd"], "outs": ["data/clips"],
        "metrics": real["metrics"]}}}))
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro"]):
        proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=240)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((tmp_path / "metrics" / "svd_generate.json").read_text())["processes"] == 2
    again = subprocess.run(["dvc", "repro"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "Running stage" not in again.stdout, again.stdout


def test_a_user_error_in_every_rank_is_one_line_each(tmp_path):
    """Self-launched ranks that all fail on bad input: one line per rank and one from the launcher,
    exit 2, no Python or launcher traceback."""
    from tests.test_train import _write_stores

    _write_stores(tmp_path)
    params = {"data": {"classes": ["n00000001", "n00000002"]},
              "model": {"arch": "timm:test_resnet", "pretrained": False},
              "train": {"processes": 2, "num_workers": 0, "device": "cpu", "image_size": 32},
              "train2d": {"epochs": 1, "batch_size": 7}}   # 7 is not divisible by 2 ranks
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "data" / "extra_frames").mkdir()
    proc = subprocess.run([sys.executable, "-m", "gva.cli", "train2d"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [l for l in proc.stderr.splitlines() if "error:" in l]
    assert sum("not divisible by the 2 processes" in l for l in errors) == 2, proc.stderr[-3000:]
    assert any("2 of 2 processes failed" in l for l in errors), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "models").exists()


def _rank_pid(launcher_pid: int, rank: int) -> int | None:
    """The pid of the launcher's child that runs ``rank`` (read from /proc: no test hook in gva)."""
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            env = (d / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == launcher_pid and f"RANK={rank}".encode() in env:
            return int(d.name)
    return None


def test_killed_rank_fails_clearly_and_the_rerun_resumes(tmp_path, one_thread):
    n = 8
    make_curated(tmp_path / "data" / "curated", n=n)
    ref = _reference(tmp_path, TINY)  # also builds the tiny-svd model, shared below
    cache = tmp_path / "data" / ".cache"
    cache.mkdir(parents=True)
    (cache / "tiny-svd").symlink_to(tmp_path / "ref_cache" / "tiny-svd")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"svd": {**TINY, "processes": 2}}))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "gva.cli", "svd_generate"]
    # chunk_size 1: rank 1 generates rows 1, 3, 5, 7; kill it once its first row is committed
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=err)
        try:
            deadline = time.time() + 150
            while not list(cache.glob("svd/*/clips_000000001_*.npy")):
                assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()[-3000:]
                assert time.time() < deadline, "rank 1 committed nothing in time"
                time.sleep(0.05)
            pid = _rank_pid(proc.pid, 1)
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode != 0
    # torchrun names the first failure; the surviving rank says why it stopped
    root_cause = stderr[stderr.index("Root Cause"):]
    assert re.search(r"rank\s*:\s*1\b", root_cause) and "SIGKILL" in root_cause, stderr[-3000:]
    assert re.search(r"gva svd_generate: error: rank 0/2: .*re-running the stage resumes", stderr), stderr[-3000:]
    assert not (tmp_path / "data" / "clips" / "clips.npy").exists()
    chunks = sorted(cache.glob("svd/*/clips_*.npy"))
    assert 1 <= len(chunks) < n
    for p in chunks:
        assert np.load(p).shape == (1, 3, 64, 64, 3)  # whole

    proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = json.loads((tmp_path / "metrics" / "svd_generate.json").read_text())
    assert rec["resumed_images"] == len(chunks) and rec["generated_images"] == n - len(chunks)
    assert (ref / "clips.npy").read_bytes() == (tmp_path / "data" / "clips" / "clips.npy").read_bytes()


# ---- training -------------------------------------------------------------------------------

EPOCHS, BATCH, WORLD = 2, 8, 2


def _fit_setup(freeze: str | None = None):
    from tests.test_train import _cfg, _tiny_dataset, _TinyNet

    from gva.data.loader import IMAGENET_MEAN, IMAGENET_STD

    # explicit: _simulate normalises by hand (null would mean the same to fit)
    cfg = _cfg(train={"augment": True, "step_size": 1, "gamma": 0.5, "mean": list(IMAGENET_MEAN),
                      "std": list(IMAGENET_STD), "freeze": freeze})
    torch.manual_seed(0)
    return _TinyNet(), _tiny_dataset(10, seed=0), _tiny_dataset(3, seed=1), cfg.train


def _simulate(world: int, freeze: str | None = None):
    """One process replaying what ``world`` DDP ranks do: per-rank batches of BATCH/world from
    DistributedSampler, per-rank BatchNorm batch statistics starting from rank 0's buffers (DDP's
    broadcast_buffers), gradients averaged over ranks, rank 0's buffers kept; selection on val.
    Each sample is augmented by its (seed, epoch, index) key, whatever rank takes it. ``freeze``:
    train.freeze, applied by hand (no gradient before it, its BatchNorm in eval mode)."""
    import torch.nn.functional as F
    from torch.utils.data.distributed import DistributedSampler

    from gva.data.loader import KeyedSamples, make_eval_loader, to_model_input
    from gva.train.loop import evaluate_loader, make_optimizer

    model, train, val, cfg = _fit_setup(freeze)
    frozen = []
    if freeze is not None:
        names = [n for n, _ in model.named_children()]
        frozen = [getattr(model, n) for n in names[:names.index(freeze)]]
        for p in (p for m in frozen for p in m.parameters()):
            p.requires_grad_(False)
    keyed = KeyedSamples(train, cfg.seed, cfg.augment)
    opt = make_optimizer(model, cfg)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    b = BATCH // world
    best, best_epoch, best_state = -1.0, EPOCHS, None
    for epoch in range(1, EPOCHS + 1):
        shards = []
        for r in range(world):
            s = DistributedSampler(train, world, r, shuffle=True, seed=cfg.seed, drop_last=True)
            s.set_epoch(epoch)
            shards.append(list(s))
        model.train()
        for m in frozen:
            m.eval()
        for j in range(len(shards[0]) // b):
            start = {k: v.clone() for k, v in model.named_buffers()}
            opt.zero_grad()
            for r in range(world):
                for k, v in model.named_buffers():
                    v.copy_(start[k])
                x, y = zip(*(keyed[(i, epoch)] for i in shards[r][j * b:(j + 1) * b]))
                x = to_model_input(torch.stack(x), cfg.image_size, cfg.mean, cfg.std)
                (F.cross_entropy(model(x), torch.stack(y)) / world).backward()
                if r == 0:
                    kept = {k: v.clone() for k, v in model.named_buffers()}
            for k, v in model.named_buffers():
                v.copy_(kept[k])
            opt.step()
        sched.step()
        va = evaluate_loader(model, make_eval_loader(val, b, 0), torch.device("cpu"), cfg.image_size,
                             cfg.mean, cfg.std)
        if va.top1 > best:
            best, best_epoch = va.top1, epoch
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return model.state_dict(), best_epoch


def test_ddp_training_follows_the_per_rank_batch_schedule(tmp_path, one_thread):
    proc = torchrun([__file__, "fit", str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = [torch.load(tmp_path / f"state{r}.pt") for r in range(WORLD)]
    results = [json.loads((tmp_path / f"result{r}.json").read_text()) for r in range(WORLD)]
    assert results[0] == results[1]  # same metrics and the same selection on every rank
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    expected, best_epoch = _simulate(WORLD)
    assert results[0]["best_epoch"] == best_epoch
    for k, v in expected.items():
        torch.testing.assert_close(states[0][k], v, rtol=1e-5, atol=1e-6, msg=k)
    # the check can fail: one process with the full batch (shared BN statistics) trains otherwise
    one, _ = _simulate(1)
    assert not all(torch.allclose(one[k].float(), expected[k].float(), atol=1e-4) for k in expected)
    # dvclive: one writer (rank 0), one row per epoch
    live = tmp_path / "live"
    assert len((live / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()) == EPOCHS + 1
    assert json.loads((live / "metrics.json").read_text())["processes"] == WORLD


def test_ddp_training_with_a_frozen_prefix(tmp_path, one_thread):
    """train.freeze under DDP: no unused-parameter error (frozen parameters are not registered),
    the frozen layers and their BatchNorm statistics stay as initialised on every rank, and the
    rest follows the per-rank schedule with the prefix frozen."""
    proc = torchrun([__file__, "fit-frozen", str(tmp_path)], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    states = [torch.load(tmp_path / f"state{r}.pt") for r in range(WORLD)]
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    init = _fit_setup("fc")[0].state_dict()
    for k in ("conv.weight", "conv.bias", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
              "bn.num_batches_tracked"):
        assert torch.equal(states[0][k], init[k]), k
    assert not torch.equal(states[0]["fc.weight"], init["fc.weight"])
    expected, _ = _simulate(WORLD, freeze="fc")
    for k, v in expected.items():
        torch.testing.assert_close(states[0][k], v, rtol=1e-5, atol=1e-6, msg=k)
    frozen = json.loads((tmp_path / "live" / "metrics.json").read_text())["frozen"]
    assert frozen["before"] == "fc" and frozen["frozen_tensors"] == 4 and frozen["frozen_batchnorms"] == 1


def test_processes_must_match_the_launch(tmp_path, monkeypatch):
    from tests.test_train import _cfg, _write_stores

    from gva.data.loader import per_rank_batch
    from gva.train.stage import check_processes, run_train2d

    with pytest.raises(ValueError, match="start it with `gva train2d`"):
        check_processes(2, 1, "train2d")
    with pytest.raises(ValueError, match="launcher started 4"):
        check_processes(2, 4, "train3d")
    check_processes(2, 2, "train2d")
    with pytest.raises(ValueError, match="not divisible by the 4 processes"):
        per_rank_batch(6, 4)
    _write_stores(tmp_path)
    with pytest.raises(ValueError, match="train.processes is 2"):
        run_train2d(_cfg(train={"processes": 2}), tmp_path / "data/curated", tmp_path / "data/extra_frames",
                    tmp_path / "models/model2d.pt", tmp_path / "dvclive/train2d")
    assert not (tmp_path / "models/model2d.pt").exists()


# ---- worker script --------------------------------------------------------------------------


def _worker(mode: str, directory: Path) -> None:
    from gva import distributed
    from gva.config import load_config

    rank = distributed.env_rank_world()[0]
    if mode == "generate":  # a separate cache per rank, as on machines without a shared filesystem
        from gva.generate.stage import run

        run(load_config(directory / "params.yaml"), curated_dir=directory / "data" / "curated",
            out_dir=directory / "clips", cache_root=directory / f"cache_rank{rank}", progress=False)
    elif mode in ("fit", "fit-frozen"):
        from gva.train.loop import fit

        with distributed.session("cpu") as dist:
            model, train, val, cfg = _fit_setup("fc" if mode == "fit-frozen" else None)
            res = fit(model, train, val, cfg, EPOCHS, BATCH, directory / "live", dist=dist)
            torch.save(model.state_dict(), directory / f"state{rank}.pt")
            hist = [{k: v for k, v in row.items() if k != "epoch_time_s"} for row in res.history]
            (directory / f"result{rank}.json").write_text(json.dumps({"best_epoch": res.best_epoch,
                                                                      "history": hist}))


if __name__ == "__main__":
    _worker(sys.argv[1], Path(sys.argv[2]))
