"""What a prediction costs a user who starts from one photo: image -> clip -> 3-D model, vs 2-D alone.

Runs the real `gva predict` path (gva.predict.Predictor) on real JPEGs, with randomly initialised
models (latency does not depend on the weights) saved as checkpoints, for each generator, and
prints per-image latency per stage (median over images) and images/s, side by side in one run.

    python benchmarks/end_to_end.py                          # CPU: repeat, motion, tiny-svd
    python benchmarks/end_to_end.py --generators svd-full --device cuda   # on a GPU: full-size SVD
                                                                          # architecture, random weights
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from gva.config import REFERENCE_CLASSES, config_from_dict
from gva.models import build_backbone, inflate_with_report
from gva.models.checkpoint import CheckpointMeta, ClassInfo, InflationPlan, save_checkpoint
from gva.predict import Predictor, expand_inputs

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "tiny-imagenet-10" / "val" / "images"


def make_run(root: Path, arch: str, size: int, last_n: int | None, frames: int) -> None:
    """Random-weight 2-D and 3-D checkpoints, as train2d/train3d would write them."""
    torch.manual_seed(0)
    m2 = build_backbone(arch, 10, pretrained=False).eval()
    m3, report = inflate_with_report(m2, time_kernel=3, init="centre", last_n=last_n)
    meta2 = CheckpointMeta(kind="2d", arch=arch, pretrained=False,
                           classes=[ClassInfo(w, f"c{i}") for i, w in enumerate(REFERENCE_CLASSES)],
                           input_size=size, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    meta3 = CheckpointMeta(**{**vars(meta2), "kind": "3d", "frames": frames,
                              "inflation": InflationPlan("train2d", report.to_dict())})
    save_checkpoint(root / "models/model2d.pt", m2, meta2)
    save_checkpoint(root / "models/model3d.pt", m3.eval(), meta3)


def measure(predictor: Predictor, files: list[Path], batch_size: int) -> dict:
    list(predictor.predict_files(files[:batch_size], batch_size=batch_size))  # warm-up
    start = time.perf_counter()
    preds = list(predictor.predict_files(files, batch_size=batch_size))
    wall = time.perf_counter() - start
    bad = [p for p in preds if not p.ok]
    if bad:
        raise SystemExit(f"{bad[0].file}: {bad[0].error}")
    lat = {k: statistics.median(p.latency_ms[k] for p in preds) for k in preds[0].latency_ms}
    return {"images_per_s": len(preds) / wall, **lat}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=Path, default=DATA, help="folder of images (default: the real val set)")
    ap.add_argument("-n", type=int, default=32, help="images per measurement")
    ap.add_argument("--generators", nargs="+", default=["repeat", "motion", "tiny-svd"])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=64, help="model input size (train.image_size)")
    ap.add_argument("--last-n", type=int, default=None, help="inflate.last_n (default: all convs)")
    ap.add_argument("--batch-size", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--steps", type=int, default=12, help="SVD steps (tiny-svd / svd-full)")
    ap.add_argument("--svd-size", type=int, default=64, help="svd.height = svd.width for tiny-svd")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)
    if not args.images.is_dir():
        print(f"{args.images}: no images folder; pass --images", file=sys.stderr)
        return 2
    files = expand_inputs([args.images])[: args.n]
    print(f"{len(files)} images from {args.images}; {args.arch} at {args.size}px, last_n={args.last_n}, "
          f"device {args.device}, torch threads {torch.get_num_threads()}")
    print(f"{'model':<18}{'batch':>6}{'img/s':>9}{'decode ms':>11}{'generate ms':>13}{'classify ms':>13}{'total ms':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_run(root, args.arch, args.size, args.last_n, frames=3)
        runs = [("2d", "2-D alone", {"generator": "repeat"})]
        for g in args.generators:
            svd = {"generator": g, "steps": args.steps, "dtype": "fp32" if args.device == "cpu" else "fp16"}
            if g == "tiny-svd":
                svd.update(height=args.svd_size, width=args.svd_size)
            if g == "svd-full":  # the real architecture, random weights, loaded like a local model dir
                sys.path.insert(0, str(Path(__file__).resolve().parent))  # full_builds.py beside this script
                from full_builds import full_random_svd_pipeline

                full_random_svd_pipeline(args.device, svd["dtype"]).save_pretrained(root / "svd-full")
                svd.update(generator="svd", model=str(root / "svd-full"))
            runs.append(("3d", f"3-D + {g}", svd))
        for kind, label, svd in runs:
            cfg = config_from_dict({"data": {"classes": list(REFERENCE_CLASSES)},
                                    "model": {"arch": args.arch, "pretrained": False}, "svd": svd})
            predictor = Predictor(cfg, root / "models" / f"model{kind}.pt", kind, args.device)
            for bs in args.batch_size:
                r = measure(predictor, files, bs)
                print(f"{label:<18}{bs:>6}{r['images_per_s']:>9.1f}{r['decode']:>11.2f}{r['generate']:>13.2f}"
                      f"{r['classify']:>13.2f}{r['total']:>10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
