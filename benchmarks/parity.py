"""Accuracy parity of a fast execution mode: the offline configuration trained in fp32 and in the
fast mode with the same seeds, test top-1 side by side (a report, not a test).

    python benchmarks/parity.py                                   # channels_last vs fp32, seeds 0 1 2
    python benchmarks/parity.py --fast train.precision=bf16 evaluate.precision=bf16

The settings are the offline run's: ``data.source`` and the preset ``params/offline.yaml``
(:func:`gva.presets.load`, what ``scripts/repro.sh --offline`` runs) on top of ``params.yaml``. Curation and
the ``motion`` clips are made once and shared; every (seed, mode) then runs extra_frames,
train2d, inflate, train3d and evaluate through the library, in its own directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "tiny-imagenet-10"


def offline_overrides(data: Path) -> list[str]:
    """``key=value`` strings of the offline run on ``data``."""
    from gva import presets

    return [f"data.source={data}", *presets.load(ROOT / "params" / "offline.yaml", ROOT / "params.yaml")]


def params_with(overrides: list[str]) -> dict:
    from gva import presets

    return presets.apply(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)


def main(argv: list[str] | None = None) -> int:
    from gva.config import config_from_dict
    from gva.data.curate import run as curate
    from gva.data.frames import run as extra_frames
    from gva.evaluate.stage import run as evaluate
    from gva.generate.stage import run as generate
    from gva.models.stage import run_inflate
    from gva.train.stage import run_train2d, run_train3d

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--fast", nargs="+", default=["train.channels_last=true", "evaluate.channels_last=true"],
                    help="the fast mode's overrides, key=value")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = ap.parse_args(argv)
    base = offline_overrides(args.data)
    modes = {"fp32": [], "fast": args.fast}
    print(f"offline settings: {' '.join(base)}\nfast mode: {' '.join(args.fast)}\nseeds: {args.seeds}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        shared = config_from_dict(params_with(base))
        curate(shared, work / "data/curated", work / "data/.cache/downloads")
        generate(shared, work / "data/curated", work / "data/clips", work / "data/.cache",
                 work / "svd_generate.json", progress=False)
        rows = []
        for seed in args.seeds:
            for mode, extra in modes.items():
                cfg = config_from_dict(params_with(base + [f"train.seed={seed}", *extra]))
                run = work / f"{mode}-s{seed}"
                start = time.perf_counter()
                extra_frames(cfg, work / "data/curated", work / "data/clips", run / "extra")
                m2 = run_train2d(cfg, work / "data/curated", run / "extra", run / "model2d.pt", run / "live2d")
                run_inflate(cfg, run / "model2d.pt", run / "model3d_init.pt")
                m3 = run_train3d(cfg, run / "model3d_init.pt", work / "data/clips", run / "model3d.pt", run / "live3d")
                metrics = evaluate(cfg, work / "data/curated", work / "data/clips", run / "model2d.pt",
                                   run / "model3d.pt", run / "metrics", run / "plots")
                rows.append((seed, mode, metrics["model2d"]["top1"], metrics["model3d"]["top1"],
                             m2.training.train_time_s + m3.training.train_time_s, time.perf_counter() - start))
                print(f"seed {seed} {mode:5}: 2-D top-1 {rows[-1][2]:.3f}, 3-D top-1 {rows[-1][3]:.3f}, "
                      f"train {rows[-1][4]:.0f} s, total {rows[-1][5]:.0f} s", flush=True)
    print("\n| mode | seeds | 2-D top-1 | 3-D top-1 | train time (s) |\n| --- | --- | --- | --- | --- |")
    for mode in modes:
        sel = [r for r in rows if r[1] == mode]
        fmt = lambda i, sel=sel: (f"{statistics.mean(r[i] for r in sel):.3f} ± {statistics.stdev(r[i] for r in sel):.3f}"
                         if len(sel) > 1 else f"{sel[0][i]:.3f}")
        print(f"| {mode} | {len(sel)} | {fmt(2)} | {fmt(3)} | {statistics.mean(r[4] for r in sel):.0f} |")
    diffs = {k: [f[k] - s[k] for f, s in zip([r for r in rows if r[1] == 'fast'],
                                             [r for r in rows if r[1] == 'fp32'])] for k in (2, 3)}
    for k, name in ((2, "2-D"), (3, "3-D")):
        print(f"fast minus fp32, {name} top-1 per seed: {', '.join(f'{d:+.3f}' for d in diffs[k])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
