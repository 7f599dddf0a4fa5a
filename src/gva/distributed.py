"""Process groups for ``torchrun`` / ``accelerate launch``: rank, world, init, collectives.

gva never starts worker processes itself: a launcher (``torchrun --nproc-per-node N [--nnodes M]``,
or ``accelerate launch``, which wraps it) starts one process per rank and sets ``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``; :func:`session` joins the
process group it describes. Without a launcher (``gva train2d`` alone) everything here is the
trivial one-process group and no ``torch.distributed`` call is made.

Backends: ``nccl`` when the stage runs on CUDA (rank -> ``cuda:<local rank>``), else ``gloo``.
Python objects (chunk lists, metrics, decisions) always travel over a gloo group, so they never
need GPU staging. A collective that fails because a peer died is re-raised as a ``RuntimeError``
naming this rank (the CLI prints it as one line); ``torchrun`` itself reports the rank that
failed first and stops the others with SIGTERM, which :func:`session` also turns into one line.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from gva.errors import DistributedError

log = logging.getLogger(__name__)

#: How long a collective waits for the slowest rank (generation shards can differ by a chunk or so).
DEFAULT_TIMEOUT_S = 3600.0


def env_rank_world() -> tuple[int, int, int]:
    """(rank, local rank, world size) as set by the launcher; (0, 0, 1) without one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, local, world


@dataclass
class Dist:
    """This process's place in the group; every method is a no-op for a one-process group."""

    rank: int = 0
    local_rank: int = 0
    world: int = 1
    backend: str | None = None     # None: no process group (one process)
    device: str | None = None      # cuda:<local rank> under nccl, else None
    _objects: Any = field(default=None, repr=False)  # gloo group used for Python objects

    @property
    def is_main(self) -> bool:
        """Rank 0: the only rank that writes stage outputs, checkpoints and dvclive logs."""
        return self.rank == 0

    @property
    def is_local_main(self) -> bool:
        """Local rank 0: does per-node one-time work (stale temporaries, building the tiny model)."""
        return self.local_rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RuntimeError as exc:  # DistBackendError and gloo/nccl errors derive from it
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistributedError(f"rank {self.rank}/{self.world}: {what} failed, another rank probably "
                               f"died or was stopped (the launcher's summary names it): {first}") from None

    def barrier(self, what: str = "barrier") -> None:
        if self.active:
            self._call(what, dist.barrier, group=self._objects)

    def all_gather_object(self, obj: Any, what: str = "all_gather") -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        self._call(what, dist.all_gather_object, out, obj, group=self._objects)
        return out

    def gather_object(self, obj: Any, what: str = "gather") -> list[Any] | None:
        """Every rank's ``obj`` in rank order on rank 0; None elsewhere."""
        if not self.active:
            return [obj]
        out: list[Any] | None = [None] * self.world if self.is_main else None
        self._call(what, dist.gather_object, obj, out, dst=0, group=self._objects)
        return out

    def broadcast_object(self, obj: Any, what: str = "broadcast") -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        self._call(what, dist.broadcast_object_list, box, src=0, group=self._objects)
        return box[0]

    def all_reduce_sum(self, values: list[float], what: str = "all_reduce") -> list[float]:
        """Element-wise sum over ranks, in float64 on the CPU group (counts stay exact up to 2**53)."""
        if not self.active:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        self._call(what, dist.all_reduce, t, group=self._objects)
        return t.tolist()


def _sigterm_to_error(rank: int, world: int):
    def handler(signum, frame):  # torchrun stops the surviving ranks with SIGTERM when one fails
        raise DistributedError(f"rank {rank}/{world}: stopped by the launcher (SIGTERM), usually because "
                           "another rank failed (the launcher's summary names the first failure)")
    return handler


@contextlib.contextmanager
def session(device_type: str = "cpu", timeout_s: float = DEFAULT_TIMEOUT_S) -> Iterator[Dist]:
    """Join the launcher's process group for the duration of a stage (one process: no group).

    ``device_type``: ``cuda`` -> nccl and ``cuda:<local rank>`` for this rank; anything else -> gloo.
    Re-entrant: inside an existing group (e.g. a test that set it up) that group is reused and kept.
    """
    rank, local, world = env_rank_world()
    if world <= 1:
        yield Dist()
        return
    if dist.is_initialized():
        yield current()
        return
    device = None
    backend = "gloo"
    if device_type == "cuda":
        n_gpu = torch.cuda.device_count()
        if local >= n_gpu:
            raise DistributedError(f"rank {rank}: local rank {local} has no GPU (this node has {n_gpu}); "
                               "use --nproc-per-node <= the number of GPUs")
        backend, device = "nccl", f"cuda:{local}"
        torch.cuda.set_device(local)
    timeout = datetime.timedelta(seconds=timeout_s)
    kwargs: dict[str, Any] = {"device_id": torch.device(device)} if device else {}
    dist.init_process_group(backend, timeout=timeout, **kwargs)
    objects = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    old = signal.signal(signal.SIGTERM, _sigterm_to_error(rank, world))
    root = logging.getLogger()
    level = root.level
    if rank != 0:
        root.setLevel(max(level, logging.WARNING))  # progress and info lines come from rank 0 only
    log.info("rank %d/%d (local %d) joined the %s process group", rank, world, local, backend)
    global _CURRENT
    _CURRENT = Dist(rank, local, world, backend, device, objects)
    try:
        yield _CURRENT
    finally:
        _CURRENT = None
        signal.signal(signal.SIGTERM, old)
        root.setLevel(level)
        with contextlib.suppress(Exception):
            dist.destroy_process_group()


_CURRENT: Dist | None = None


def current() -> Dist:
    """The group this process joined (via :func:`session`, or ``init_process_group`` by a caller such
    as accelerate), else the one-process group. Call it on every rank: the first call after an
    external nccl init creates the gloo object group, a collective."""
    global _CURRENT
    if _CURRENT is not None:
        return _CURRENT
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return Dist()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    nccl = dist.get_backend() == "nccl"
    _CURRENT = Dist(dist.get_rank(), local, dist.get_world_size(), dist.get_backend(),
                    f"cuda:{local}" if nccl else None, dist.new_group(backend="gloo") if nccl else None)
    return _CURRENT
