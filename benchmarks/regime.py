"""Which training regime fits a CPU: samples/s over input size x ``train.freeze`` x ``inflate.last_n``
x torch threads, and the wall time of one experiment at those rates.

    python benchmarks/regime.py                  # default: 3 sizes x 3 freezes x 2 last_n, ~5 min here
    python benchmarks/regime.py --sizes 224 160 128 112 96 64 --freeze none blocks.3 blocks.5 blocks.6 \
        conv_head --last-n null 4 2 1 --rounds 3     # a wider grid (about half an hour here)

Every case runs gva's own code on ``--arch`` (default ``timm:tf_efficientnet_lite0``, random init:
speed does not depend on the weights): :func:`gva.models.build_backbone`, the inflate stage's
:func:`gva.models.inflate_with_report` (probe and float64 check included: timed, it is the
``inflate`` stage), :func:`gva.train.freeze.freeze_before` (``train.freeze``),
:func:`gva.train.loop.train_one_epoch` for one SGD step (uint8 batch resized and normalised, forward,
backward, step: what a stage does per batch) and :func:`gva.train.loop.evaluate_loader` for the
per-epoch val pass, at ``--threads`` torch threads (``train.threads``). The machine is shared and
noisy, so the cases are timed in interleaved rounds (each round times every case once, after one
untimed warm-up round) and medians are reported. ``--thread-check`` repeats two cases at 2 threads.

Columns: ``train/s`` and ``eval/s`` are samples (images or clips) per second; ``prefix`` is the share
of a training step spent running the frozen part (input resize included): what caching its outputs
would save. ``cached/s`` is the training rate that would leave; ``-`` where nothing is frozen or a
frozen conv has a temporal kernel (``last_n`` reaching into the frozen part: no per-frame cache).

One experiment (``--train``/``--val``/``--test`` samples, ``--epochs-2d``/``--epochs-3d``) is
estimated as train2d epochs x (train / train rate + val / eval rate) + the inflation + train3d epochs
x (the same, 3-D) + evaluate (test through both models, plus the latency calls of the shipped
``evaluate`` defaults at the eval rate, each (model, batch size) capped by its 120 s budget) +
``--overhead-s`` (process starts and checkpoints: 6-10 s a stage in the real runs). ``fit`` is the
largest E with E 2-D + E 3-D epochs within ``--budget-min``; ``cached`` / its ``fit``: the same with
the frozen part run once over train + val per stage (an estimate: not implemented). Checked against
real ``gva`` stage runs on the 10-class data: 2-D epochs within 5 %, 3-D epochs took up to 30 % longer
than estimated, so keep a margin. Numbers only: no assertion anywhere.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from gva.data.loader import IMAGENET_MEAN, IMAGENET_STD, to_model_input
from gva.models import build_backbone, inflate_with_report
from gva.models.fold import reset_folds
from gva.train.freeze import freeze_before
from gva.train.loop import evaluate_loader, train_one_epoch

CPU = torch.device("cpu")
LATENCY = {"batch_sizes": (1, 32), "calls": 3 + 20, "budget_s": 120.0}  # evaluate's shipped defaults


def _opt_int(text: str) -> int | None:
    return None if text.lower() in ("null", "none", "all") else int(text)


def _opt_name(text: str) -> str | None:
    return None if text.lower() in ("null", "none") else text


@dataclass
class Case:
    kind: str                    # "2d" | "3d"
    size: int
    freeze: str | None
    last_n: int | None = None
    threads: int = 1
    model: nn.Module = field(default=None, repr=False)
    opt: torch.optim.Optimizer = field(default=None, repr=False)
    train_s: list[float] = field(default_factory=list)
    eval_s: list[float] = field(default_factory=list)
    prefix_s: list[float] = field(default_factory=list)
    frozen_share: float = 0.0    # share of the parameters frozen
    frozen_temporal: int = 0     # frozen convs with a temporal kernel: no cache possible

    def label_regime(self) -> str:
        return (f"{self.size} px, freeze {self.freeze or 'none'}, "
                f"last_n {'null' if self.last_n is None else self.last_n}, {self.threads} thr")

    @property
    def label(self) -> str:
        ln = "" if self.kind == "2d" else f" last_n {'null' if self.last_n is None else self.last_n}"
        return f"{self.kind} {self.size:3d} px freeze {self.freeze or 'none'}{ln} thr {self.threads}"


class _Stop(Exception):
    """Raised at the first trainable module: the forward up to there is the frozen prefix."""


def _batch(kind: str, batch: int, frames: int, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A uint8 batch as the loader yields it (curated ``side`` px, upscaled by the model input)."""
    g = torch.Generator().manual_seed(0)
    shape = (batch, side, side, 3) if kind == "2d" else (batch, frames, side, side, 3)
    return (torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),
            torch.randint(0, 10, (batch,), generator=g))


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def time_prefix(case: Case, x: torch.Tensor) -> float:
    """Seconds to resize the batch and run the frozen part (stopped at ``train.freeze``'s module)."""
    handle = case.model.get_submodule(case.freeze).register_forward_pre_hook(
        lambda module, args: (_ for _ in ()).throw(_Stop()))
    case.model.eval()
    try:
        start = time.perf_counter()
        try:
            case.model(to_model_input(x, case.size, IMAGENET_MEAN, IMAGENET_STD))
        except _Stop:
            pass
        return time.perf_counter() - start
    finally:
        handle.remove()
        reset_folds()  # the stop may leave a time-folded module's record behind


def run_round(case: Case, data: list, timed: bool) -> None:
    """One SGD step, one eval pass and (frozen cases) one prefix pass over ``data`` (one batch)."""
    args = (CPU, case.size, IMAGENET_MEAN, IMAGENET_STD)
    torch.set_num_threads(case.threads)
    t_train = _time(lambda: train_one_epoch(case.model, data, case.opt, *args, 1, case.label))
    t_eval = _time(lambda: evaluate_loader(case.model, data, *args, case.label))
    t_prefix = time_prefix(case, data[0][0]) if case.freeze else 0.0
    if timed:
        case.train_s.append(t_train)
        case.eval_s.append(t_eval)
        case.prefix_s.append(t_prefix)


def build_cases(args: argparse.Namespace) -> tuple[list[Case], dict[int | None, float]]:
    """Every case's model (frozen as asked) and optimiser; the inflation time per ``last_n``."""
    torch.manual_seed(0)
    torch.set_num_threads(args.threads[0])  # inflation runs at the first thread count
    base = build_backbone(args.arch, 10, pretrained=False)
    cases = [Case("2d", s, f, None, t) for t in args.threads for s in args.sizes for f in args.freeze]
    cases += [Case("3d", s, f, n, t) for t in args.threads for s in args.sizes for f in args.freeze
              for n in args.last_n]
    if args.paper:  # the paper-faithful setting: 224 px, every layer trained, every conv inflated
        for kind in ("2d", "3d"):
            if not any(c.kind == kind and c.size == 224 and c.freeze is None and c.last_n is None for c in cases):
                cases.append(Case(kind, 224, None, None, args.threads[0]))
    if args.thread_check and args.thread_check not in args.threads:  # the same first cases, other threads
        cases += [Case(k, args.sizes[0], args.freeze[-1], args.last_n[-1] if k == "3d" else None,
                       args.thread_check) for k in ("2d", "3d")]
    inflated, inflate_s = {}, {}
    for last_n in sorted({c.last_n for c in cases if c.kind == "3d"}, key=lambda n: -1 if n is None else n):
        start = time.perf_counter()
        inflated[last_n] = inflate_with_report(base, time_kernel=3, init="centre", last_n=last_n, probe_size=64)[0]
        inflate_s[last_n] = time.perf_counter() - start
        print(f"inflate last_n {last_n}: {inflate_s[last_n]:.1f} s (the inflate stage's probe and check)", flush=True)
    for case in cases:
        case.model = copy.deepcopy(base if case.kind == "2d" else inflated[case.last_n])
        report = freeze_before(case.model, case.freeze, "--freeze")
        case.frozen_share = report.frozen_params / max(report.frozen_params + report.trainable_params, 1)
        case.frozen_temporal = report.frozen_temporal_convs
        case.opt = torch.optim.SGD([p for p in case.model.parameters() if p.requires_grad], lr=1e-3,
                                   momentum=0.9, weight_decay=1e-4)
    return cases, inflate_s


def _fit(seconds: float, per_epoch: float) -> int:
    return max(int(seconds // per_epoch), 0)


@dataclass(frozen=True)
class Costs:
    """Median seconds per batch of one case: training step, eval pass, frozen prefix (eval mode)."""

    batch: int
    step: float
    eval: float
    prefix: float
    cacheable: bool   # something frozen, and no frozen temporal conv (the prefix is per-frame 2-D)

    @classmethod
    def of(cls, case: Case, batch: int) -> Costs:
        return cls(batch, statistics.median(case.train_s), statistics.median(case.eval_s),
                   statistics.median(case.prefix_s), case.freeze is not None and not case.frozen_temporal)

    @property
    def suffix_step(self) -> float:
        return max(self.step - self.prefix, 1e-9)

    def epoch(self, train: int, val: int) -> float:
        return (train * self.step + val * self.eval) / self.batch

    def build(self, train: int, val: int) -> float:
        """Running the frozen part once over train and val."""
        return (train + val) * self.prefix / self.batch

    def epoch_cached(self, train: int, val: int) -> float:
        return (train * self.suffix_step + val * max(self.eval - self.prefix, 0.0)) / self.batch


def evaluate_s(test: int, eval2: float, eval3: float) -> float:
    """The evaluate stage: test through both models + latency calls (shipped defaults, budget-capped)."""
    total = test / eval2 + test / eval3
    for r in (eval2, eval3):
        for bs in LATENCY["batch_sizes"]:
            total += min(LATENCY["calls"] * bs / r, LATENCY["budget_s"] + bs / r)
    return total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="timm:tf_efficientnet_lite0")
    ap.add_argument("--sizes", nargs="+", type=int, default=[112, 96, 64], help="train.image_size values")
    ap.add_argument("--freeze", nargs="+", type=_opt_name, default=[None, "blocks.5", "blocks.6"],
                    help="train.freeze values (none: every layer trains)")
    ap.add_argument("--last-n", nargs="+", type=_opt_int, default=[None, 2], help="inflate.last_n (null: all)")
    ap.add_argument("--no-paper", dest="paper", action="store_false",
                    help="skip the paper-faithful cases (224 px, nothing frozen, last_n null)")
    ap.add_argument("--threads", nargs="+", type=int, default=[1],
                    help="torch threads (train.threads); under contention 1 beats 2 by far")
    ap.add_argument("--thread-check", type=int, default=2,
                    help="also time the first size's last freeze / last_n cases at this many threads (0: off)")
    ap.add_argument("--batch-2d", type=int, default=32)
    ap.add_argument("--batch-3d", type=int, default=8)
    ap.add_argument("--frames", type=int, default=3)
    ap.add_argument("--side", type=int, default=64, help="curated image side (Tiny ImageNet: 64)")
    ap.add_argument("--rounds", type=int, default=2, help="timed rounds (after one warm-up round)")
    ap.add_argument("--train", type=int, default=4500, help="train samples per epoch")
    ap.add_argument("--val", type=int, default=500, help="val samples per epoch")
    ap.add_argument("--test", type=int, default=500, help="test samples (evaluate)")
    ap.add_argument("--epochs-2d", type=int, default=3)
    ap.add_argument("--epochs-3d", type=int, default=3)
    ap.add_argument("--overhead-s", type=float, default=60.0, help="process starts, checkpoints (not measured)")
    ap.add_argument("--budget-min", type=float, default=15.0)
    args = ap.parse_args(argv)

    with open("/proc/loadavg") as f:
        load = f.read().split()[0]
    print(f"{args.arch}, random init; torch {torch.__version__}, {torch.get_num_threads()} threads by default, "
          f"load average {load}; batch 2-D "
          f"{args.batch_2d}, 3-D {args.batch_3d} clips of {args.frames} frames from {args.side} px; "
          f"1 warm-up + {args.rounds} timed rounds, interleaved", flush=True)
    cases, inflate_s = build_cases(args)
    data = {kind: [_batch(kind, args.batch_2d if kind == "2d" else args.batch_3d, args.frames, args.side)]
            for kind in ("2d", "3d")}
    start = time.perf_counter()
    for r in range(args.rounds + 1):
        for case in cases:
            run_round(case, data[case.kind], timed=r > 0)
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        print(f"round {r}{' (warm-up)' if r == 0 else ''} done, {time.perf_counter() - start:.0f} s, "
              f"load average {load}", flush=True)

    print(f"\n{'case':47} {'frozen':>6} {'train/s':>8} {'eval/s':>7} {'prefix':>6} {'cached/s':>8} "
          f"{'epoch min':>9}")
    costs: dict[tuple, Costs] = {}
    for c in cases:
        k = Costs.of(c, args.batch_2d if c.kind == "2d" else args.batch_3d)
        costs[(c.kind, c.size, c.freeze, c.last_n, c.threads)] = k
        cached = f"{k.batch / k.suffix_step:8.2f}" if k.cacheable else f"{'-':>8}"
        print(f"{c.label:47} {c.frozen_share:6.0%} {k.batch / k.step:8.2f} {k.batch / k.eval:7.2f} "
              f"{k.prefix / k.step:6.0%} {cached} {k.epoch(args.train, args.val) / 60:9.1f}")

    budget = args.budget_min * 60
    print(f"\nOne experiment ({args.train} train, {args.val} val per epoch, {args.test} test; "
          f"{args.epochs_2d} + {args.epochs_3d} epochs; +{args.overhead_s:.0f} s overhead), minutes; "
          f"'fit': the most epochs E (E 2-D + E 3-D) within {args.budget_min:g} min; 'cached': with the "
          f"frozen part's outputs computed once (estimated from the prefix share, not implemented):")
    print(f"{'regime':50} {'2d ep':>6} {'3d ep':>6} {'eval':>5} {'total':>6} {'fit':>4} {'cached':>7} {'fit':>4}")
    for c in cases:
        if c.kind != "3d" or ("2d", c.size, c.freeze, None, c.threads) not in costs:
            continue
        k2, k3 = costs[("2d", c.size, c.freeze, None, c.threads)], costs[("3d", c.size, c.freeze, c.last_n, c.threads)]
        ep2, ep3 = k2.epoch(args.train, args.val), k3.epoch(args.train, args.val)
        ev = evaluate_s(args.test, k2.batch / k2.eval, k3.batch / k3.eval)
        fixed = inflate_s[c.last_n] + ev + args.overhead_s
        total = args.epochs_2d * ep2 + args.epochs_3d * ep3 + fixed
        line = (f"{c.label_regime():50} {ep2 / 60:6.1f} {ep3 / 60:6.1f} {ev / 60:5.1f} {total / 60:6.1f} "
                f"{_fit(budget - fixed, ep2 + ep3):4d}")
        if k2.cacheable and k3.cacheable:
            fixed_c = fixed + k2.build(args.train, args.val) + k3.build(args.train, args.val)
            ep2c, ep3c = k2.epoch_cached(args.train, args.val), k3.epoch_cached(args.train, args.val)
            total_c = args.epochs_2d * ep2c + args.epochs_3d * ep3c + fixed_c
            line += f" {total_c / 60:7.1f} {_fit(budget - fixed_c, ep2c + ep3c):4d}"
        else:
            line += f" {'-':>7} {'-':>4}"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
