"""`curate` on a large ImageFolder: images/s and peak memory (docs/benchmarks.md, docs/data.md#memory).

Builds an ImageFolder of ``--images`` files in a temporary directory (never inside the project:
the Tiny ImageNet images must not be copied into the repository) from the 5,500 JPEGs of the
shared subset: each JPEG is re-encoded once in one of five variants (the 64 px JPEG as it is;
a 256x192 PNG; a 500x375 JPEG; a 128 px lossless WebP; a 96x72 greyscale BMP), then the files are
repeated (hard links, or copies where links fail) under new names until there are ``--images`` of
them, in ``train/<wnid>/`` (test: the ``data.test_fraction`` hold-out). Then it runs curate in a
child process, as ``gva curate`` would, and prints the child's images/s and peak RSS (its
``ru_maxrss``) beside the size of the array it wrote: bounded memory means the peak stays far
below the array's size and does not grow with ``--images``.

    python benchmarks/curate_folder.py                      # 50,000 images (several minutes on 2 cores)
    python benchmarks/curate_folder.py --images 10000       # a shorter run
    python benchmarks/curate_folder.py --image-size 128 --resize pad

Repeated files are read from the page cache after their first use: this measures decoding,
resizing and writing, not a cold disk.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("GVA_TINY_IMAGENET", ROOT.parent / "shared" / "data" / "tiny-imagenet-10"))

VARIANTS = ("jpeg64", "png256x192", "jpeg500x375", "webp128", "bmp96x72grey")

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from gva.config import config_from_dict
from gva.data.curate import curate
rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
params, out, dl = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
t1 = time.perf_counter()
summary = curate(config_from_dict({"data": params}).data, out_dir=__import__("pathlib").Path(out),
                 download_dir=__import__("pathlib").Path(dl))
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t1, "import_s": t1 - t0, "counts": summary["counts"],
                  "rss_after_import_kib": rss_import,
                  "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def source_images(data: Path) -> list[tuple[str, Path]]:
    """(wnid, path) of every JPEG of the subset: train images by folder, val images by annotation."""
    out = []
    for wnid_dir in sorted((data / "train").iterdir()):
        out += [(wnid_dir.name, p) for p in sorted((wnid_dir / "images").glob("*.JPEG"))]
    for line in (data / "val" / "val_annotations.txt").read_text().splitlines():
        name, wnid = line.split("\t")[:2]
        out.append((wnid, data / "val" / "images" / name))
    return out


def encode(src: Path, variant: str) -> tuple[bytes, str]:
    with Image.open(src) as im:
        im = im.convert("RGB")
    buf = io.BytesIO()
    if variant == "jpeg64":
        return src.read_bytes(), ".JPEG"
    if variant == "png256x192":
        im.resize((256, 192), Image.Resampling.BICUBIC).save(buf, "PNG")
        return buf.getvalue(), ".png"
    if variant == "jpeg500x375":
        im.resize((500, 375), Image.Resampling.BICUBIC).save(buf, "JPEG", quality=90)
        return buf.getvalue(), ".jpg"
    if variant == "webp128":
        im.resize((128, 128), Image.Resampling.BICUBIC).save(buf, "WEBP", lossless=True)
        return buf.getvalue(), ".webp"
    im.resize((96, 72), Image.Resampling.BICUBIC).convert("L").save(buf, "BMP")
    return buf.getvalue(), ".bmp"


def build(root: Path, data: Path, n_images: int) -> dict:
    """The ImageFolder under ``root/folder``: one encoded file per source image, then links."""
    start = time.perf_counter()
    base = root / "encoded"
    folder = root / "folder"
    originals = []
    for i, (wnid, src) in enumerate(source_images(data)):
        if len(originals) >= n_images:
            break
        variant = VARIANTS[i % len(VARIANTS)]
        payload, ext = encode(src, variant)
        path = base / wnid / f"{src.stem}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)
        originals.append((wnid, path))
    encoded_s = time.perf_counter() - start
    n = 0
    rep = 0
    while n < n_images:
        for wnid, path in originals:
            if n >= n_images:
                break
            dest = folder / "train" / wnid / f"r{rep:02d}_{path.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, dest)
            except OSError:
                dest.write_bytes(path.read_bytes())
            n += 1
        rep += 1
    size = sum(p.stat().st_size for _, p in originals)
    return {"files": n, "distinct": len(originals), "encoded_mib": size / 2**20,
            "encode_s": encoded_s, "build_s": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=50_000, help="files in the ImageFolder")
    ap.add_argument("--data", type=Path, default=DATA, help="Tiny ImageNet subset to take the JPEGs from")
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--resize", default="center_crop", choices=("center_crop", "squash", "pad"))
    ap.add_argument("--tmp", type=Path, default=None, help="parent of the temporary directory (default: system temp)")
    args = ap.parse_args(argv)
    if not (args.data / "wnids.txt").is_file():
        raise SystemExit(f"{args.data}: the Tiny ImageNet subset is not there (--data or $GVA_TINY_IMAGENET)")
    with tempfile.TemporaryDirectory(prefix="gva-curate-bench-", dir=args.tmp) as tmp:
        root = Path(tmp).resolve()
        if ROOT == root or ROOT in root.parents:
            raise SystemExit(f"{root}: inside the project; the images must not be copied into the repository")
        built = build(root, args.data, args.images)
        print(f"built {built['files']:,} files ({built['distinct']:,} distinct, {built['encoded_mib']:.0f} MiB "
              f"encoded; variants {', '.join(VARIANTS)}) in {built['build_s']:.0f} s under {root}", flush=True)
        params = {"source": str(root / "folder"), "format": "imagefolder", "classes": None,
                  "image_size": args.image_size, "resize": args.resize}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(params), str(root / "curated"),
                               str(root / "dl")], env=env, stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            raise SystemExit(f"curate failed (exit {proc.returncode})")
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        array_mib = (root / "curated" / "images.npy").stat().st_size / 2**20
    n = sum(res["counts"].values())
    print(f"curate: {n:,} images ({', '.join(f'{k} {v:,}' for k, v in res['counts'].items())}) at "
          f"{args.image_size} px ({args.resize}) in {res['seconds']:.1f} s = {n / res['seconds']:.0f} images/s "
          f"(+{res['import_s']:.1f} s imports)")
    print(f"peak RSS {res['peak_rss_kib'] / 1024:.0f} MiB (after imports: {res['rss_after_import_kib'] / 1024:.0f} "
          f"MiB); images.npy {array_mib:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
