"""Your own images: ImageFolder and CSV datasets through `curate`, and through the whole DAG.

Datasets are generated on the fly in tmp_path (class-coloured images of various sizes, formats and
modes, an EXIF-rotated JPEG, a non-image file, a corrupt file).
"""

from __future__ import annotations

import csv
import json
import logging
import re
import shutil
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from conftest import make_tiny_imagenet
from gva.config import ConfigError, config_from_dict
from gva.data.arrays import open_images, read_index, write_array_rows
from gva.data.curate import curate
from gva.data.formats import detect, open_dataset
from gva.data.images import decode_image
from gva.data.sources import open_source
from gva.errors import DatasetError

CLASSES = ["cat", "dog", "zebra"]
COLOURS = {"cat": (200, 40, 40), "dog": (40, 200, 40), "zebra": (40, 40, 200)}


def coloured(colour, size=(48, 40), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    px = np.clip(np.array(colour, dtype=np.int16) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    return Image.fromarray(px.astype(np.uint8))


def save_variant(im: Image.Image, folder: Path, k: int) -> Path:
    """The k-th file of a class: cycles through formats, sizes and modes."""
    folder.mkdir(parents=True, exist_ok=True)
    kind = k % 6
    if kind == 0:
        path = folder / f"img{k:02d}.jpg"
        im.save(path, quality=95)
    elif kind == 1:
        path = folder / f"img{k:02d}.png"
        im.resize((70, 30)).save(path)
    elif kind == 2:
        path = folder / f"img{k:02d}.webp"
        im.save(path, lossless=True)
    elif kind == 3:
        path = folder / f"img{k:02d}.bmp"
        im.resize((33, 50)).save(path)
    elif kind == 4:
        path = folder / f"img{k:02d}.png"
        im.quantize(16).save(path)                         # palette
    else:
        path = folder / f"img{k:02d}.PNG"
        im.convert("RGBA").save(path)                      # opaque RGBA, upper-case suffix
    return path


def make_imagefolder(root: Path, n_train=10, n_test=0, n_val=0, classes=CLASSES) -> Path:
    for c, cls in enumerate(classes):
        for s, (split, n) in enumerate((("train", n_train), ("test", n_test), ("val", n_val))):
            for k in range(n):   # every image distinct: identical bytes in two splits are refused (leakage)
                save_variant(coloured(COLOURS[cls], seed=1000 * s + 100 * c + k), root / split / cls, k)
    return root


def data_cfg(source, **kw):
    return config_from_dict({"data": {"source": str(source), "classes": None, **kw}}).data


def run_curate(tmp_path: Path, source, out="curated", **kw):
    summary = curate(data_cfg(source, **kw), out_dir=tmp_path / out, download_dir=tmp_path / "dl")
    return open_images(tmp_path / out), summary


def mean_colour(store, i) -> np.ndarray:
    return store.array[i].reshape(-1, 3).mean(0)


# --- detection --------------------------------------------------------------------------------

def test_auto_detects_each_format_and_logs_it(tmp_path, caplog):
    tin = make_tiny_imagenet(tmp_path / "tin", n_train=2, n_val=1)
    folder = make_imagefolder(tmp_path / "folder", n_train=2)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\nfolder/train/cat/img00.jpg,cat\n")
    caplog.set_level(logging.INFO, logger="gva")
    assert detect(open_source(str(tin), tmp_path))[0] == "tinyimagenet"
    assert detect(open_source(str(folder), tmp_path)) == ("imagefolder", "")
    assert open_dataset(str(manifest), "auto", None, tmp_path).format == "csv"
    assert open_dataset(str(folder), "auto", None, tmp_path).format == "imagefolder"
    assert "data.format auto: detected imagefolder" in caplog.text
    # a zip with one top folder (as Kaggle and macOS make them, __MACOSX included)
    zpath = tmp_path / "photos.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                zf.write(f, "my-photos/" + f.relative_to(folder).as_posix())
        zf.writestr("__MACOSX/my-photos/._x", b"junk")
    assert detect(open_source(str(zpath), tmp_path)) == ("imagefolder", "my-photos/")
    a, _ = run_curate(tmp_path, folder, out="a")
    b, summary = run_curate(tmp_path, zpath, out="b")
    assert summary["format"] == "imagefolder" and [r.source for r in a.rows] == [r.source for r in b.rows]
    np.testing.assert_array_equal(a.array, b.array)


def test_ambiguous_or_unknown_layouts_say_what_to_set(tmp_path):
    tin = make_tiny_imagenet(tmp_path / "tin", n_train=2, n_val=1)
    (tin / "wnids.txt").unlink()   # words.txt and val_annotations.txt remain: damaged TIN or class folders?
    with pytest.raises(DatasetError, match="set data.format: tinyimagenet .* or data.format: imagefolder"):
        run_curate(tmp_path, tin)
    with pytest.raises(DatasetError, match=r"val/n00000001: class folder missing"):   # val/images/ is no class
        run_curate(tmp_path, tin, format="imagefolder", classes=["n00000001", "n00000002"])
    shutil.rmtree(tin / "val")
    store, summary = run_curate(tmp_path, tin, format="imagefolder", classes=["n00000001", "n00000002"])
    assert summary["format"] == "imagefolder" and store.rows[0].source.startswith("train/n00000001/images/")
    (tmp_path / "empty" / "stuff").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no dataset found"):
        run_curate(tmp_path, tmp_path / "empty")
    with pytest.raises(DatasetError, match="not an ImageFolder"):
        run_curate(tmp_path, tmp_path / "empty", format="imagefolder")
    folder = make_imagefolder(tmp_path / "folder", n_train=2)
    with pytest.raises(DatasetError, match="not Tiny ImageNet"):
        run_curate(tmp_path, folder, format="tinyimagenet")
    with pytest.raises(DatasetError, match="data.format csv needs a .csv manifest file"):
        run_curate(tmp_path, folder, format="csv")


@pytest.mark.parametrize("raw, match", [
    ({"format": "parquet"}, r"data.format: 'parquet' is not one of"),
    ({"resize": "stretch"}, r"data.resize: 'stretch' is not one of"),
    ({"test_fraction": 1.0}, r"data.test_fraction must be in"),
    ({"classes": ["cat", "cat"]}, r"data.classes has duplicates"),
    ({"classes": [" cat"]}, r"data.classes must list non-empty names"),
])
def test_new_keys_are_validated_naming_the_key(raw, match):
    with pytest.raises(ConfigError, match=match):
        config_from_dict({"data": raw})
    assert config_from_dict({"data": {"classes": []}}).num_classes is None


# --- ImageFolder: classes, ids, splits ---------------------------------------------------------

def test_imagefolder_classes_ids_and_index(tmp_path):
    folder = make_imagefolder(tmp_path / "f", n_train=7, n_test=3)
    store, summary = run_curate(tmp_path, folder)
    assert store.class_names() == CLASSES and store.array.shape == (30, 64, 64, 3)
    assert summary["splits"]["test"] == "test/" and summary["per_class"]["dog"]["test"] == 3
    for i, r in enumerate(store.rows):
        assert r.wnid == r.class_name == CLASSES[r.label]
        assert r.source.split("/")[:2] == ["train" if r.split != "test" else "test", r.wnid]
        assert np.argmax(mean_colour(store, i)) == r.label   # the pixels of that class
    # ids: classes in order, files sorted by name, train then test; rows in id order
    ids = [r.id for r in store.rows]
    assert ids == sorted(ids) == list(range(30))
    train = [r.source for r in store.rows if r.split != "test"]
    assert train == sorted(train)
    # data.classes picks and orders; the other class is ignored
    picked, _ = run_curate(tmp_path, folder, out="picked", classes=["zebra", "cat"])
    assert picked.class_names() == ["zebra", "cat"] and len(picked.rows) == 20
    assert {r.label for r in picked.rows if r.wnid == "zebra"} == {0}
    with pytest.raises(DatasetError, match=r"no folder for class 'lion' .*cat, dog, zebra.*data.classes: null"):
        run_curate(tmp_path, folder, out="x", classes=["cat", "lion"])


def test_imagefolder_held_out_splits_are_stratified_and_seeded(tmp_path):
    folder = make_imagefolder(tmp_path / "f", n_train=10)
    a, summary = run_curate(tmp_path, folder, out="a", test_fraction=0.2, val_fraction=0.25)
    assert summary["splits"]["test"].startswith("held out of train")
    per = Counter((r.label, r.split) for r in a.rows)
    assert all(per[(c, "test")] == 2 and per[(c, "val")] == 2 and per[(c, "train")] == 6 for c in range(3))
    b, _ = run_curate(tmp_path, folder, out="b", test_fraction=0.2, val_fraction=0.25)
    c, _ = run_curate(tmp_path, folder, out="c", test_fraction=0.2, val_fraction=0.25, seed=1)
    split_of = lambda s: {r.source: r.split for r in s.rows}
    assert split_of(a) == split_of(b) and split_of(a) != split_of(c)
    assert [r.id for r in a.rows] == [r.id for r in c.rows]   # ids do not depend on the split draw
    # limit_per_class keeps ids
    small, _ = run_curate(tmp_path, folder, out="s", test_fraction=0.2, val_fraction=0.25, limit_per_class=1)
    ids = {r.source: r.id for r in a.rows}
    assert len(small.rows) == 9 and all(ids[r.source] == r.id for r in small.rows)
    with pytest.raises(DatasetError, match="no test split.*data.test_fraction"):
        run_curate(tmp_path, folder, out="d", test_fraction=0.0)
    with pytest.raises(DatasetError, match="class cat: 1 train image"):
        run_curate(tmp_path, make_imagefolder(tmp_path / "one", n_train=1), out="e")


def test_imagefolder_given_folders_are_respected(tmp_path):
    # val/ alone is the test split (as Tiny ImageNet's official val); val is held out of train
    only_val = make_imagefolder(tmp_path / "v", n_train=10, n_val=2)
    store, summary = run_curate(tmp_path, only_val, out="a", val_fraction=0.2)
    assert summary["splits"] == {"test": "val/", "val": "held out of train (data.val_fraction 0.2)"}
    assert {r.source.split("/")[0] for r in store.rows if r.split == "test"} == {"val"}
    assert Counter(r.split for r in store.rows) == {"train": 24, "val": 6, "test": 6}
    # test/ and val/: both given, nothing held out
    both = make_imagefolder(tmp_path / "both", n_train=4, n_test=2, n_val=3)
    store, summary = run_curate(tmp_path, both, out="b")
    assert summary["splits"] == {"test": "test/", "val": "val/"}
    assert all(r.source.split("/")[0] == r.split for r in store.rows)
    assert Counter(r.split for r in store.rows) == {"train": 12, "val": 9, "test": 6}
    # a class without its test folder, or a test class that train lacks
    (both / "test" / "cat").rename(both / "test" / "lion")
    with pytest.raises(DatasetError, match=r"test/lion: a class folder with no train/lion"):
        run_curate(tmp_path, both, out="c")
    with pytest.raises(DatasetError, match=r"test/cat: class folder missing"):
        run_curate(tmp_path, both, out="c", classes=CLASSES)


# --- CSV manifests -----------------------------------------------------------------------------

def write_manifest(path: Path, rows, header=("path", "label", "split")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_csv_with_a_split_column(tmp_path):
    images = tmp_path / "data" / "imgs"
    rows = []
    for c, label in enumerate(["0", "1", "10", "2"]):   # integer labels sort by value
        for k in range(5):
            p = save_variant(coloured(list(COLOURS.values())[c % 3], seed=c * 10 + k), images, c * 10 + k)
            rows.append([f"imgs/{p.name}", label, "test" if k == 4 else ("val" if k == 3 else "train")])
    manifest = write_manifest(tmp_path / "data" / "labels.csv", rows[::-1])   # order of rows does not matter
    store, summary = run_curate(tmp_path, manifest)
    assert summary["format"] == "csv" and store.class_names() == ["0", "1", "2", "10"]
    assert summary["splits"] == {"test": "the manifest's split column", "val": "the manifest's split column"}
    assert Counter(r.split for r in store.rows) == {"train": 12, "val": 4, "test": 4}
    given = {r[0]: r[2] for r in rows}
    assert all(given[r.source] == r.split for r in store.rows)
    assert [r.id for r in store.rows] == list(range(20))
    # without a split column: the hold-outs, as for an ImageFolder
    plain = write_manifest(tmp_path / "data" / "plain.csv", [[r[1], r[0]] for r in rows], header=("label", "path"))
    store, summary = run_curate(tmp_path, plain, out="p", test_fraction=0.2, val_fraction=0.25)
    assert Counter(r.split for r in store.rows) == {"train": 12, "val": 4, "test": 4}
    assert summary["splits"]["test"].startswith("held out")


@pytest.mark.parametrize("edit, match", [
    (lambda rows: rows + [["imgs/missing.png", "a", "train"]], r"labels.csv:\d+: names imgs/missing.png, which does not exist"),
    (lambda rows: rows + [["imgs/x.jpg", "a", "holdout"]], r"labels.csv:\d+: split 'holdout' is not train, val or test"),
    (lambda rows: rows + [rows[0]], r"labels.csv:\d+: imgs/a0.png is listed twice \(also on line 2\)"),
    (lambda rows: rows + [["imgs/a0.png", "a/b", "train"]], r"label 'a/b' cannot name a class"),
    (lambda rows: [r for r in rows if not (r[1] == "b" and r[2] == "test")], r"class b has no test images"),
])
def test_csv_errors_name_the_line(tmp_path, edit, match):
    images = tmp_path / "imgs"
    images.mkdir()
    rows = []
    for label in "ab":
        for k, split in enumerate(("train", "train", "test")):
            coloured((9, 9, 9), seed=k).save(images / f"{label}{k}.png")
            rows.append([f"imgs/{label}{k}.png", label, split])
    manifest = write_manifest(tmp_path / "labels.csv", edit(rows))
    with pytest.raises(DatasetError, match=match):
        run_curate(tmp_path, manifest, val_fraction=0.0)
    assert not (tmp_path / "curated").exists()


@pytest.mark.parametrize("spelling", ["./imgs/a0.png", "imgs//a0.png", "imgs/../imgs/a0.png", "ABSOLUTE"])
def test_csv_the_same_file_spelled_another_way_is_listed_twice(tmp_path, spelling):
    """Issue 26: ``imgs/a0.png`` (train) and ``./imgs/a0.png`` (test, another label) were the same
    bytes as a train and a test image, silently; paths are compared resolved."""
    images = tmp_path / "imgs"
    images.mkdir()
    rows = []
    for label in "ab":
        for k, split in enumerate(("train", "train", "test")):
            coloured(COLOURS["cat" if label == "a" else "dog"], seed=10 * k + ord(label)).save(images / f"{label}{k}.png")
            rows.append([f"imgs/{label}{k}.png", label, split])
    other = str(images / "a0.png") if spelling == "ABSOLUTE" else spelling
    manifest = write_manifest(tmp_path / "labels.csv", rows + [[other, "b", "test"]])
    with pytest.raises(DatasetError, match=rf"labels.csv:8: {re.escape(other)} is listed twice \(also on line 2"):
        run_curate(tmp_path, manifest, val_fraction=0.0)
    assert not (tmp_path / "curated").exists()


def test_identical_bytes_in_test_and_train_fail_naming_both_files(tmp_path):
    """The same image under two names, one in train and one in test: leakage, refused."""
    folder = make_imagefolder(tmp_path / "f", n_train=4, n_test=2)
    shutil.copyfile(folder / "train" / "dog" / "img03.bmp", folder / "test" / "dog" / "copy.bmp")
    with pytest.raises(DatasetError, match=r"train/dog/img03.bmp \(train\) and .*test/dog/copy.bmp \(test\) have "
                                           r"identical bytes.*\(1 such pair"):
        run_curate(tmp_path, folder, val_fraction=0.0)
    assert not (tmp_path / "curated").exists()


def test_identical_bytes_in_one_split_or_train_and_val_warn_with_a_count(tmp_path, caplog):
    folder = make_imagefolder(tmp_path / "f", n_train=4, n_test=2, n_val=2)
    shutil.copyfile(folder / "train" / "dog" / "img03.bmp", folder / "train" / "dog" / "copy.bmp")
    shutil.copyfile(folder / "train" / "cat" / "img00.jpg", folder / "train" / "cat" / "copy.jpg")
    shutil.copyfile(folder / "train" / "cat" / "img01.png", folder / "val" / "cat" / "copy.png")
    with caplog.at_level(logging.WARNING):
        _, summary = run_curate(tmp_path, folder)
    assert summary["duplicates"] == {"same_split": 2, "train_val": 1}
    assert "2 image(s) have the same bytes as another image of their split" in caplog.text
    assert "1 val image(s) have the same bytes as a train image" in caplog.text


def test_csv_header_is_required(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("a.png,cat\n")
    with pytest.raises(DatasetError, match="header row with columns path,label"):
        run_curate(tmp_path, manifest)


# --- pixels: modes, resize policies, EXIF --------------------------------------------------------

def test_every_mode_and_format_decodes_to_rgb(tmp_path):
    rng = np.random.default_rng(0)
    red = Image.new("RGB", (40, 30), (220, 10, 10))
    files = {}
    red.save(files.setdefault("jpeg", tmp_path / "a.jpg"), quality=100)
    red.save(files.setdefault("webp", tmp_path / "a.webp"), lossless=True)
    red.save(files.setdefault("bmp", tmp_path / "a.bmp"))
    red.save(files.setdefault("tiff", tmp_path / "a.tiff"))
    red.quantize(4).save(files.setdefault("palette", tmp_path / "p.png"))
    red.save(files.setdefault("gif", tmp_path / "a.gif"))
    red.convert("CMYK").save(files.setdefault("cmyk", tmp_path / "c.jpg"), quality=100)
    for name, path in files.items():
        px = decode_image(path, 16)
        assert px.shape == (16, 16, 3) and px.dtype == np.uint8, name
        assert abs(px[..., 0].mean() - 220) < 12 and px[..., 1:].mean() < 25, name
    grey = decode_image(_save(Image.fromarray(rng.integers(0, 255, (30, 50), dtype=np.uint8)),
                              tmp_path / "g.png"), 16)
    assert (grey[..., 0] == grey[..., 1]).all() and (grey[..., 1] == grey[..., 2]).all()
    # 16-bit greyscale: scaled to 8 bits, not clipped
    ramp = np.linspace(0, 65535, 64)[None, :].repeat(64, 0).astype(np.uint16)
    deep = decode_image(_save(Image.fromarray(ramp), tmp_path / "deep.png"), 64)
    assert deep[0, 0, 0] < 10 and deep[0, -1, 0] > 245 and len(np.unique(deep[0, :, 0])) > 30
    # transparency: composited on white
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[:, :10] = (0, 0, 255, 255)          # opaque blue left, fully transparent right
    px = decode_image(_save(Image.fromarray(rgba), tmp_path / "t.png"), 20, "squash")
    assert (px[:, :8] == (0, 0, 255)).all() and (px[:, 12:] == 255).all()
    la = Image.fromarray(np.dstack([np.full((20, 20), 0, np.uint8), np.zeros((20, 20), np.uint8)]))
    assert (decode_image(_save(la, tmp_path / "la.png"), 8) == 255).all()


def _save(im: Image.Image, path: Path) -> Path:
    im.save(path)
    return path


def test_resize_policies(tmp_path):
    """A 2:1 image, red | green | blue in thirds of its width (30 | 60 | 30 px)."""
    px = np.zeros((60, 120, 3), dtype=np.uint8)
    px[:, :30] = (255, 0, 0)
    px[:, 30:90] = (0, 255, 0)
    px[:, 90:] = (0, 0, 255)
    path = _save(Image.fromarray(px), tmp_path / "wide.png")
    crop = decode_image(path, 32, "center_crop").astype(int)   # the central 60x60 square: all green
    inner = crop[:, 1:-1]   # (the bicubic filter of the edge columns reaches past the crop a little)
    assert crop.shape == (32, 32, 3) and (inner[..., 1] > 240).all() and (inner[..., [0, 2]] < 15).all()
    squash = decode_image(path, 32, "squash").astype(int)      # all of it, 4x narrower
    assert (squash[:, :6, 0] > 240).all() and (squash[:, 10:22, 1] > 240).all() and (squash[:, -6:, 2] > 240).all()
    pad = decode_image(path, 32, "pad").astype(int)            # 32x16 in the middle, black above and below
    assert (pad[:8] == 0).all() and (pad[24:] == 0).all()
    assert (pad[9:23, :6, 0] > 240).all() and (pad[9:23, -6:, 2] > 240).all()
    # a square image is only resized: all three agree
    sq = _save(Image.fromarray(px[:, 30:90]), tmp_path / "sq.png")
    a, b, c = (decode_image(sq, 16, p) for p in ("center_crop", "squash", "pad"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # curate applies data.resize
    folder = tmp_path / "f"
    for cls in ("a", "b"):
        for k in range(3):
            (folder / "train" / cls).mkdir(parents=True, exist_ok=True)
            distinct = px.copy()   # one pixel apart: identical files in train and test are refused
            distinct[30, 40 + 3 * k + (cls == "b")] = (0, 254, 0)
            Image.fromarray(distinct).save(folder / "train" / cls / f"{k}.png")
    store, _ = run_curate(tmp_path, folder, resize="pad", image_size=32, test_fraction=0.3)
    assert (store.array[:, :8] == 0).all()


def test_exif_orientation_is_applied(tmp_path):
    px = np.zeros((20, 40, 3), dtype=np.uint8)   # stored wide: red left half, blue right half
    px[:, :20] = (255, 0, 0)
    px[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6                              # "rotate 90 CW to display": the left goes to the top
    path = tmp_path / "phone.jpg"
    Image.fromarray(px).save(path, quality=100, exif=exif)
    out = decode_image(path, 16, "squash").astype(int)
    assert out[:6, :, 0].mean() > 200 and out[:6, :, 2].mean() < 50      # top: red
    assert out[-6:, :, 2].mean() > 200 and out[-6:, :, 0].mean() < 50     # bottom: blue
    upright = ImageOps.exif_transpose(Image.open(path)).convert("RGB").resize((16, 16), Image.Resampling.BICUBIC)
    np.testing.assert_array_equal(out, np.asarray(upright))


# --- bad input: skipped and counted, or named and nothing written --------------------------------

def test_non_image_files_are_skipped_and_counted(tmp_path):
    folder = make_imagefolder(tmp_path / "f", n_train=6, n_test=2)
    (folder / "train" / "cat" / "notes.txt").write_text("hello")
    (folder / "train" / "cat" / ".DS_Store").write_bytes(b"junk")
    (folder / "train" / "cat" / "._img00.jpg").write_bytes(b"AppleDouble")   # not an image despite its name
    (folder / "train" / "dog" / ".ipynb_checkpoints").mkdir()
    (folder / "train" / "dog" / ".ipynb_checkpoints" / "img00.jpg").write_bytes(b"x")
    (folder / "train" / "README.md").write_text("my photos")
    (folder / "test" / "zebra" / "more").mkdir()
    save_variant(coloured(COLOURS["zebra"]), folder / "test" / "zebra" / "more", 0)   # sub-folders are read
    store, summary = run_curate(tmp_path, folder)
    assert summary["skipped"] == {"non-image files in train/": 5}
    assert Counter(r.split for r in store.rows if r.wnid == "zebra")["test"] == 3
    assert "test/zebra/more/img00.jpg" in {r.source for r in store.rows}


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_image_is_named_and_nothing_is_left(tmp_path, damage):
    folder = make_imagefolder(tmp_path / "f", n_train=6, n_test=2)
    bad = folder / "train" / "dog" / "img01.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png" if damage == "garbage" else bad.read_bytes()[:80])
    good, _ = run_curate(tmp_path, make_imagefolder(tmp_path / "g", n_train=6, n_test=2))
    before = (tmp_path / "curated" / "images.npy").read_bytes()
    with pytest.raises(DatasetError, match=r"train/dog/img01.png: corrupt or unreadable image"):
        run_curate(tmp_path, folder)
    assert (tmp_path / "curated" / "images.npy").read_bytes() == before   # the old store, whole
    assert list(tmp_path.glob(".curated*")) == []
    with pytest.raises(DatasetError):
        run_curate(tmp_path, folder, out="fresh")
    assert not (tmp_path / "fresh").exists()


def test_rows_are_written_through_a_memory_map_and_atomically(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, (300, 16, 16, 3), dtype=np.uint8)
    with write_array_rows(tmp_path / "a.npy", data.shape, release_every=7) as w:
        assert not (tmp_path / "a.npy").exists()
        for i, row in enumerate(data):
            w[i] = row
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), data)
    with pytest.raises(RuntimeError):
        with write_array_rows(tmp_path / "b.npy", data.shape) as w:
            w[0] = data[0]
            raise RuntimeError("decode failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy"]
    # curate never allocates the whole array in memory
    real_empty = np.empty

    def small_empty(shape, *a, **kw):
        assert np.prod(shape) < 64 * 64 * 3 * 10, f"np.empty{shape}: the whole array in memory"
        return real_empty(shape, *a, **kw)

    monkeypatch.setattr(np, "empty", small_empty)
    store, _ = run_curate(tmp_path, make_imagefolder(tmp_path / "f", n_train=6, n_test=2))
    assert store.array.shape[0] == 24


# --- the whole DAG on an ImageFolder -----------------------------------------------------------

@pytest.mark.slow
def test_whole_dag_on_an_imagefolder_and_predict_shows_folder_names(tmp_path):
    import subprocess
    import sys

    from test_pipeline import STAGES, TINY_RUN, make_repo, ran, sh

    folder = make_imagefolder(tmp_path / "photos", n_train=6, n_test=2)
    overrides = {**TINY_RUN, "data.source": str(folder), "data.classes": None, "train2d.epochs": 1,
                 "svd.frames": 2, "svd.previews_per_class": 0, "evaluate.bootstrap": 50,
                 "evaluate.latency_batch_sizes": [1], "evaluate.latency_repeats": 1}
    repo = make_repo(tmp_path, overrides)
    assert ran(sh(["dvc", "repro", "dvc.yaml"], repo)) == STAGES
    metrics = json.loads((repo / "metrics" / "metrics.json").read_text())
    assert "model3d" in json.dumps(metrics)
    rows = read_index(repo / "data" / "curated" / "index.csv")
    assert sorted({r.class_name for r in rows}) == CLASSES
    per_class = json.loads((repo / "metrics" / "per_class.json").read_text())
    assert set(CLASSES) <= set(json.dumps(per_class).replace('"', " ").split())
    proc = subprocess.run([sys.executable, "-m", "gva.cli", "predict", "--run", str(repo), "--json",
                           str(folder / "test" / "zebra" / "img00.jpg")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    top = json.loads(proc.stdout)["predictions"]
    assert {p["class_name"] for p in top} <= set(CLASSES) and len(top) == 3


def test_a_file_name_that_is_not_utf8_fails_naming_it(tmp_path):
    """Issue 26: a non-UTF-8 file name in an ImageFolder ended in a UnicodeEncodeError traceback
    from write_index."""
    import os

    folder = make_imagefolder(tmp_path / "f", n_train=4, n_test=2)
    shutil.copyfile(folder / "train" / "cat" / "img00.jpg", os.fsencode(folder / "train" / "cat") + b"/caf\xe9.jpg")
    (folder / "train" / "cat" / "img00.jpg").unlink()   # (else the copy is a duplicate, warned about)
    with pytest.raises(DatasetError, match=r"train/cat/caf\\xe9.jpg: the file name is not valid UTF-8"):
        run_curate(tmp_path, folder, val_fraction=0.0)
    assert not (tmp_path / "curated").exists()
