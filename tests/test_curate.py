"""The curate stage: splits, ids, pixels, sources, and every bad input named in the issue."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import FAKE_CLASSES
from gva.config import config_from_dict
from gva.data.arrays import open_images
from gva.data.curate import curate
from gva.data.tinyimagenet import DatasetError


def data_cfg(source, **kw):
    return config_from_dict({"data": {"source": str(source), "classes": FAKE_CLASSES, **kw}}).data


def run_curate(tmp_path: Path, source, **kw):
    out = tmp_path / "curated"
    summary = curate(data_cfg(source, **kw), out_dir=out, download_dir=tmp_path / "dl")
    return open_images(out), summary


def test_splits_counts_and_stratification(tmp_path, fake_tin):
    store, summary = run_curate(tmp_path, fake_tin, val_fraction=0.2)
    counts = Counter((r.label, r.split) for r in store.rows)
    for label in range(3):
        assert counts[(label, "train")] == 8 and counts[(label, "val")] == 2 and counts[(label, "test")] == 4
    assert summary["counts"] == {"train": 24, "val": 6, "test": 12}
    assert store.array.shape == (42, 64, 64, 3) and store.array.dtype == np.uint8
    assert [r.class_name for r in store.rows[:1]] == ["class 0"]  # first words.txt synonym
    assert all(r.source.startswith("val/images/") for r in store.rows if r.split == "test")
    assert all(r.source.startswith(f"train/{r.wnid}/") for r in store.rows if r.split != "test")
    assert len({r.id for r in store.rows}) == len(store.rows)


def test_val_split_is_seeded(tmp_path, fake_tin):
    a, _ = run_curate(tmp_path / "a", fake_tin, seed=1)
    b, _ = run_curate(tmp_path / "b", fake_tin, seed=1)
    c, _ = run_curate(tmp_path / "c", fake_tin, seed=2)
    val = lambda s: [r.source for r in s.rows if r.split == "val"]
    assert val(a) == val(b) and val(a) != val(c)


def test_no_val_split(tmp_path, fake_tin):
    store, _ = run_curate(tmp_path, fake_tin, val_fraction=0.0)
    assert {r.split for r in store.rows} == {"train", "test"}


def test_limit_keeps_first_k_per_class_and_split_and_ids_stable(tmp_path, fake_tin):
    full, _ = run_curate(tmp_path / "full", fake_tin, val_fraction=0.2)
    small, _ = run_curate(tmp_path / "small", fake_tin, val_fraction=0.2, limit_per_class=1)
    assert Counter(r.split for r in small.rows) == {"train": 3, "val": 3, "test": 3}
    by_source = {r.source: (r.id, i) for i, r in enumerate(full.rows)}
    for j, r in enumerate(small.rows):
        rid, i = by_source[r.source]
        assert r.id == rid  # same image, same id, whatever the limit
        np.testing.assert_array_equal(small.array[j], full.array[i])


def test_pixels_match_the_jpeg_and_greyscale_becomes_rgb(tmp_path, fake_tin):
    store, _ = run_curate(tmp_path, fake_tin)
    for i, r in enumerate(store.rows):
        expected = np.asarray(Image.open(fake_tin / r.source).convert("RGB"))
        np.testing.assert_array_equal(store.array[i], expected)
    grey = [i for i, r in enumerate(store.rows) if r.source.endswith(f"{FAKE_CLASSES[0]}_1.JPEG")][0]
    px = store.array[grey].astype(int)
    assert (px[..., 0] == px[..., 1]).all() and (px[..., 1] == px[..., 2]).all() and px.mean() > 20


def test_test_split_follows_annotations(tmp_path, fake_tin):
    store, _ = run_curate(tmp_path, fake_tin)
    ann = dict(l.split("\t")[:2] for l in (fake_tin / "val/val_annotations.txt").read_text().splitlines())
    for r in store.rows:
        if r.split == "test":
            assert ann[r.source.split("/")[-1]] == r.wnid


def test_zip_source_with_top_folder_equals_directory(tmp_path, fake_tin):
    zpath = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for f in sorted(fake_tin.rglob("*")):
            if f.is_file():
                zf.write(f, "tiny-imagenet-200/" + f.relative_to(fake_tin).as_posix())
    a, _ = run_curate(tmp_path / "a", fake_tin)
    b, _ = run_curate(tmp_path / "b", zpath)
    assert a.rows == b.rows
    np.testing.assert_array_equal(a.array, b.array)


def test_image_size_resizes(tmp_path, fake_tin):
    store, _ = run_curate(tmp_path, fake_tin, image_size=32)
    assert store.array.shape[1:] == (32, 32, 3)


# --- bad input: a clear error naming the file/class, and no data/curated left behind ---------

def corrupt(path: Path) -> None:
    path.write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage, match", [
    (lambda r: shutil.rmtree(r / "train" / FAKE_CLASSES[1]), f"train/{FAKE_CLASSES[1]}/images: class directory missing"),
    (lambda r: (r / "wnids.txt").write_text(FAKE_CLASSES[0] + "\n"), f"class {FAKE_CLASSES[1]} .* not listed"),
    (lambda r: corrupt(r / "train" / FAKE_CLASSES[2] / "images" / f"{FAKE_CLASSES[2]}_3.JPEG"),
     f"{FAKE_CLASSES[2]}_3.JPEG: corrupt"),
    (lambda r: truncate(r / "train" / FAKE_CLASSES[0] / "images" / f"{FAKE_CLASSES[0]}_4.JPEG"),
     f"{FAKE_CLASSES[0]}_4.JPEG: corrupt"),
    (lambda r: (r / "val/images/val_0.JPEG").unlink(), r"val_annotations.txt:\d+: names val/images/val_0.JPEG, which does not exist"),
    (lambda r: [p.unlink() for p in (r / "train" / FAKE_CLASSES[1] / "images").iterdir()],
     f"class {FAKE_CLASSES[1]} has no images"),
    (lambda r: (r / "wnids.txt").unlink(), "not Tiny ImageNet"),
    (lambda r: (r / "val/val_annotations.txt").unlink(), r"not Tiny ImageNet \(val/val_annotations.txt missing\)"),
])
def test_bad_input_fails_clearly_and_leaves_nothing(tmp_path, fake_tin, damage, match):
    damage(fake_tin)
    out = tmp_path / "curated"
    with pytest.raises(DatasetError, match=match):
        curate(data_cfg(fake_tin), out_dir=out, download_dir=tmp_path / "dl")
    assert not out.exists() and list(tmp_path.glob(".curated*")) == []


def test_failed_rerun_keeps_previous_output_whole(tmp_path, fake_tin):
    store, _ = run_curate(tmp_path, fake_tin)
    before = (tmp_path / "curated" / "images.npy").read_bytes()
    corrupt(fake_tin / "val/images/val_5.JPEG")
    with pytest.raises(DatasetError):
        run_curate(tmp_path, fake_tin)
    assert (tmp_path / "curated" / "images.npy").read_bytes() == before


def test_non_image_files_are_skipped_and_counted(tmp_path, fake_tin):
    (fake_tin / "train" / FAKE_CLASSES[0] / "images" / ".DS_Store").write_bytes(b"junk")
    store, summary = run_curate(tmp_path, fake_tin)
    assert summary["skipped"] == {"non-image files in train/": 1}
    assert len(store.rows) == 3 * 14


def test_missing_source_and_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="data source not found"):
        run_curate(tmp_path, tmp_path / "nope")
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(DatasetError, match="not a directory or a zip"):
        run_curate(tmp_path, tmp_path / "plain.txt")


def test_unreachable_url(tmp_path):
    # port 9 on loopback: nothing listens, so the connection is refused at once
    with pytest.raises(DatasetError, match=r"http://127.0.0.1:9/tiny-imagenet-200.zip: cannot download"):
        run_curate(tmp_path, "http://127.0.0.1:9/tiny-imagenet-200.zip")
    assert not (tmp_path / "curated").exists()
    assert list((tmp_path / "dl").glob("*")) == [] if (tmp_path / "dl").exists() else True


def test_cli_reports_bad_input_in_one_line(tmp_path, fake_tin):
    shutil.rmtree(fake_tin / "train" / FAKE_CLASSES[0])
    (tmp_path / "params.yaml").write_text(f"data:\n  source: {fake_tin}\n  classes: {FAKE_CLASSES}\n")
    proc = subprocess.run([sys.executable, "-m", "gva.cli", "curate"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "gva curate: error:" in proc.stderr and "class directory missing" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "data" / "curated").exists()


def test_real_tiny_imagenet_10(tmp_path, real_data):
    """The real 10 classes: 4,500 / 500 / 500, 450/50/50 per class, pixels as the JPEGs decode."""
    cfg = config_from_dict({"data": {"source": str(real_data)}}).data
    curate(cfg, out_dir=tmp_path / "curated", download_dir=tmp_path / "dl")
    store = open_images(tmp_path / "curated")
    assert Counter(r.split for r in store.rows) == {"train": 4500, "val": 500, "test": 500}
    per = Counter((r.label, r.split) for r in store.rows)
    assert all(per[(c, s)] == n for c in range(10) for s, n in (("train", 450), ("val", 50), ("test", 50)))
    assert store.class_names()[:2] == ["golden retriever", "Persian cat"]
    rng = np.random.default_rng(0)
    for i in rng.choice(len(store.rows), 50, replace=False):
        expected = np.asarray(Image.open(real_data / store.rows[i].source).convert("RGB"))
        np.testing.assert_array_equal(store.array[i], expected)
    grey = [i for i, r in enumerate(store.rows)
            if Image.open(real_data / r.source).mode == "L"]
    assert len(grey) == 67


# --- cross-fitting: data.folds ------------------------------------------------------------------

def test_folds_partition_every_image_into_test_splits_of_one_store(tmp_path, fake_tin):
    stores = [run_curate(tmp_path / f"f{k}", fake_tin, folds=3, fold=k, val_fraction=0.2)[0] for k in range(3)]
    tests = [{r.id for r in s.rows if r.split == "test"} for s in stores]
    assert sum(map(len, tests)) == len(set.union(*tests)) == 42  # train + official val, each once
    for s in stores:
        assert s.array.tobytes() == stores[0].array.tobytes()    # same images, same order: one clip store
        assert [r.id for r in s.rows] == [r.id for r in stores[0].rows]
        counts = Counter((r.label, r.split) for r in s.rows)
        for label in range(3):  # 14 per class: folds of 5/5/4, val 20 % of the other two folds
            assert counts[(label, "test")] in (4, 5)
            assert counts[(label, "val")] == 2 and counts[(label, "train")] == 14 - 2 - counts[(label, "test")]
    # the folds are drawn by data.seed; ids are the canonical ones whatever the splits
    other = run_curate(tmp_path / "seed1", fake_tin, folds=3, fold=0, seed=1)[0]
    assert {r.id for r in other.rows if r.split == "test"} != tests[0]
    plain = run_curate(tmp_path / "plain", fake_tin)[0]
    assert {(r.id, r.source) for r in plain.rows} == {(r.id, r.source) for r in stores[0].rows}


def test_folds_with_limit_pool_the_first_k_of_each_given_split(tmp_path, fake_tin):
    store, summary = run_curate(tmp_path, fake_tin, folds=2, fold=1, limit_per_class=3, val_fraction=0)
    assert len(store.rows) == 3 * (3 + 3)  # 3 classes x (3 train + 3 official val)
    assert summary["counts"] == {"train": 9, "val": 0, "test": 9}
    assert summary["splits"]["test"].startswith("fold 1 of 2")


@pytest.mark.parametrize("raw, match", [
    ({"fold": 1}, "data.fold is set but data.folds is null"),
    ({"folds": 1}, r"data.folds must be in \[2, 100\]"),
    ({"folds": 3, "fold": 3}, r"data.fold must be in 0..2"),
])
def test_fold_settings_are_validated(raw, match):
    from gva.config import ConfigError

    with pytest.raises(ConfigError, match=match):
        config_from_dict({"data": raw})


def test_too_few_images_for_the_folds_name_the_class(tmp_path, fake_tin):
    with pytest.raises(DatasetError, match=r"class n\d+: 2 image\(s\) cannot fill 3 folds"):
        run_curate(tmp_path, fake_tin, folds=3, limit_per_class=1)
    assert not (tmp_path / "curated").exists()


def test_a_rerun_on_the_same_data_gives_the_same_bytes(tmp_path, fake_tin):
    """Issue 26: summary.json recorded the wall time, so a forced re-curate of identical images
    changed data/curated and marked train2d (which depends on it) modified."""
    cfg = data_cfg(fake_tin)
    curate(cfg, out_dir=tmp_path / "a", download_dir=tmp_path / "dl")
    curate(cfg, out_dir=tmp_path / "b", download_dir=tmp_path / "dl")
    files = lambda d: {p.name: p.read_bytes() for p in sorted(d.iterdir())}  # noqa: E731
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert "seconds" not in (tmp_path / "a" / "summary.json").read_text()
