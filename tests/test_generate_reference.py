"""``svd.generator: reference``: precomputed clips imported and matched back to their images.

A fake reference folder is made from a curated fake dataset the way the reference run made its
clips (each frame in the reference geometry, H.264), with the train clips shuffled within each
label, so the truth is known: val by order, train by content, one-to-one.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import FAKE_CLASSES, REAL_DATA, make_tiny_imagenet, run_dag_in
from gva.config import config_from_dict
from gva.errors import ConfigError, DatasetError

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_CLIPS = REAL_DATA.parents[1] / "reference-run" / "svd_videos"
CLIP_SIDE = 48  # the fake clips' side (the real ones are 224): the importer resizes to the curated size


def curated(tmp_path: Path, n_train: int = 12, n_val: int = 4) -> tuple[Path, object]:
    from gva.data import curate
    from gva.data.arrays import open_images

    data = make_tiny_imagenet(tmp_path / "tin", n_train=n_train, n_val=n_val)
    cfg = config_from_dict({"data": {"source": str(data), "classes": FAKE_CLASSES, "md5": None,
                                     "val_fraction": 0.0, "image_size": 32}})
    curate.run(cfg, tmp_path / "curated", tmp_path / "dl")
    return tmp_path / "curated", open_images(tmp_path / "curated")


def make_folder(folder: Path, store, seed: int = 0) -> dict[int, str]:
    """The reference layout for ``store``'s images; returns the true clip of every row id."""
    from gva.data.video import write_mp4
    from gva.generate.postprocess import reference_geometry

    rng = np.random.default_rng(seed)
    truth: dict[int, str] = {}
    val = sorted((r for r in store.rows if "val/images/" in r.source),
                 key=lambda r: int(re.search(r"val_(\d+)", r.source).group(1)))
    train = [r for r in store.rows if "val/images/" not in r.source]
    listing = {"val": [(r, f"{k:05d}.mp4") for k, r in enumerate(val)], "train": []}
    k = 0
    for label in sorted({r.label for r in train}):
        own = [r for r in train if r.label == label]
        for i in rng.permutation(len(own)):
            listing["train"].append((own[i], f"{k:05d}.mp4"))
            k += 1
    for split, rows in listing.items():
        (folder / split).mkdir(parents=True)
        with open(folder / f"{split}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["video_path", "label"])
            for row, name in rows:
                frame = reference_geometry(store.array[row.id][None], 1024, 576, CLIP_SIDE)[0]
                clip = np.stack([np.roll(frame, t, axis=1) for t in range(3)])  # a little motion
                write_mp4(folder / split / name, clip, fps=6)
                w.writerow([name, row.label])
                truth[row.id] = f"{split}/{name}"
    return truth


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    curated_dir, store = curated(tmp)
    truth = make_folder(tmp / "svd_videos", store)
    return curated_dir, store, tmp / "svd_videos", truth


def copy_folder(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_every_image_gets_its_own_clip_val_by_order_train_by_content(fake):
    from gva.generate.reference import match_rows

    _, store, folder, truth = fake
    matches = match_rows(folder, store.array, store.rows)
    assert [m.clip for m in matches] == [truth[r.id] for r in store.rows]
    assert len({m.clip for m in matches}) == len(matches)  # one-to-one
    hows = {m.how for r, m in zip(store.rows, matches) if "val/images/" in r.source}
    assert hows == {"order"} and {m.how for r, m in zip(store.rows, matches) if "train/" in r.source} == {"content"}
    assert all(m.content_agrees for m in matches if m.how == "order")
    assert sum(m.confident for m in matches) >= 0.9 * len(matches)


def test_a_subset_of_images_still_matches_one_to_one(fake):
    """data.limit_per_class: fewer images than clips; each still gets its own, right clip."""
    from gva.generate.reference import match_rows

    _, store, folder, truth = fake
    keep = [i for i, r in enumerate(store.rows) if r.label != 1 or "val/" in r.source][::2]
    rows = [store.rows[i] for i in keep]
    matches = match_rows(folder, store.array[keep], rows)
    train = [(r, m) for r, m in zip(rows, matches) if m.how == "content"]
    assert train and all(m.clip == truth[r.id] for r, m in train)


def test_a_wrong_val_label_is_an_error(fake, tmp_path):
    from gva.generate.reference import match_rows

    _, store, folder, _ = fake
    folder = copy_folder(folder, tmp_path / "f")
    lines = (folder / "val.csv").read_text().splitlines()
    name, label = lines[1].split(",")
    lines[1] = f"{name},{(int(label) + 1) % 3}"
    (folder / "val.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"val\.csv line 2: .*disagree"):
        match_rows(folder, store.array, store.rows)


def test_train_labels_that_do_not_fit_the_images_are_an_error(fake, tmp_path):
    """Swapping two labels' CSV rows: each label's clips now look like another label's images."""
    from gva.generate.reference import match_rows

    _, store, folder, _ = fake
    folder = copy_folder(folder, tmp_path / "f")
    rows = list(csv.reader(open(folder / "train.csv")))
    swap = {"0": "1", "1": "0"}
    with open(folder / "train.csv", "w", newline="") as f:
        csv.writer(f).writerows([rows[0]] + [[n, swap.get(lb, lb)] for n, lb in rows[1:]])
    with pytest.raises(DatasetError, match=r"train\.csv: .*do not look like the images of label"):
        match_rows(folder, store.array, store.rows)


def test_missing_and_corrupt_clips_are_named(fake, tmp_path):
    from gva.generate.reference import ReferenceGenerator, match_rows, read_listing

    _, store, folder, truth = fake
    folder = copy_folder(folder, tmp_path / "f")
    (folder / "train" / "00003.mp4").unlink()
    with pytest.raises(DatasetError, match=r"train/00003\.mp4: missing \(listed in train\.csv line 5\)"):
        read_listing(folder)
    folder = copy_folder(fake[2], tmp_path / "g")
    matches = match_rows(folder, store.array, store.rows)
    (folder / matches[0].clip).write_bytes(b"not an mp4 at all" * 10)
    gen = ReferenceGenerator(folder, frames=3)
    with pytest.raises(DatasetError, match=re.escape(str(folder / matches[0].clip)) + ": not a readable MP4"):
        gen.generate(store.array[:1], [0], matches[:1])


def run_stage(tmp_path: Path, curated_dir: Path, folder: Path, generator: str = "reference", **svd):
    from gva.generate.stage import run

    cfg = config_from_dict({"svd": {"generator": generator, "model": str(folder), "previews_per_class": 1,
                                    "chunk_size": 16, **svd}})
    return run(cfg, curated_dir=curated_dir, out_dir=tmp_path / f"clips_{generator}",
               cache_root=tmp_path / "cache", run_file=tmp_path / f"run_{generator}.json", progress=False)


def test_stage_imports_resumes_and_records_every_match(fake, tmp_path):
    curated_dir, store, folder, truth = fake
    first = run_stage(tmp_path, curated_dir, folder)
    assert first["run"]["generated_images"] == len(store.rows)
    clips = np.load(tmp_path / "clips_reference" / "clips.npy")
    assert clips.shape == (len(store.rows), 3, 32, 32, 3)
    assert not np.array_equal(clips[:, 0], store.array)  # frame 0 is the clip's own, not the image
    generation = json.loads((tmp_path / "clips_reference" / "generation.json").read_text())
    record = generation["reference"]
    assert [m["clip"] for m in record["matches"]] == [truth[r.id] for r in store.rows]
    assert record["summary"]["order"]["content_agrees"] == record["summary"]["order"]["images"]
    before = (tmp_path / "clips_reference" / "clips.npy").read_bytes()
    again = run_stage(tmp_path, curated_dir, folder)  # same folder, same images: nothing re-done
    assert again["run"]["generated_images"] == 0 and again["run"]["resumed_images"] == len(store.rows)
    assert (tmp_path / "clips_reference" / "clips.npy").read_bytes() == before


def test_static_control_repeats_the_clips_frame_0(fake, tmp_path):
    curated_dir, store, folder, _ = fake
    run_stage(tmp_path, curated_dir, folder)
    run_stage(tmp_path, curated_dir, folder, generator="reference-static")
    moving = np.load(tmp_path / "clips_reference" / "clips.npy")
    static = np.load(tmp_path / "clips_reference-static" / "clips.npy")
    np.testing.assert_array_equal(static[:, 0], moving[:, 0])
    assert all(np.array_equal(static[:, t], static[:, 0]) for t in range(3))
    assert not np.array_equal(moving[:, 2], moving[:, 0])


@pytest.mark.parametrize("svd", [{"geometry": "reference"}, {"codec": "h264"}, {"model": None},
                                 {"model": "no/such/folder"}])
def test_settings_the_clips_cannot_take_are_refused(fake, tmp_path, svd):
    curated_dir, _, folder, _ = fake
    with pytest.raises(ConfigError, match="svd\\.(geometry|model)"):
        run_stage(tmp_path, curated_dir, folder, **svd)


def test_wrong_frame_count_is_named(fake, tmp_path):
    curated_dir, _, folder, _ = fake
    with pytest.raises(DatasetError, match="3 frames, but svd.frames is 4"):
        run_stage(tmp_path, curated_dir, folder, frames=4)


def test_predict_cannot_import_a_clip_for_a_new_image(fake):
    from gva.errors import GenerationError
    from gva.generate.reference import ReferenceGenerator

    _, store, folder, _ = fake
    with pytest.raises(GenerationError, match="cannot make a clip for any other image"):
        ReferenceGenerator(folder, frames=3).generate(store.array[:1], [0])


@pytest.mark.slow
def test_whole_dag_on_imported_clips(fake, tmp_path, monkeypatch):
    """curate -> svd_generate (reference) -> ... -> evaluate through `gva <stage>`, with the frame
    protocols and train2d.frames: all."""
    data = make_tiny_imagenet(tmp_path / "tin", n_train=12, n_val=4)  # the same images as the fixture's
    _, store, folder, _ = fake
    overrides = {
        "data": {"source": str(data), "classes": FAKE_CLASSES, "image_size": 32, "md5": None, "val_fraction": 0.25},
        "svd": {"generator": "reference", "model": str(folder), "previews_per_class": 1},
        "model": {"arch": "timm:test_resnet", "pretrained": False},
        "train": {"image_size": 32, "lr": 0.05, "num_workers": 0, "device": "cpu"},
        "train2d": {"epochs": 1, "batch_size": 8, "frames": "all"}, "train3d": {"epochs": 1, "batch_size": 4},
        "evaluate": {"bootstrap": 50, "latency_batch_sizes": [1], "latency_repeats": 1,
                     "extra_protocols": ["frame0", "frames_mean"]},
    }
    metrics, generation = run_dag_in(tmp_path, monkeypatch, ROOT / "params.yaml", overrides)
    assert {"model2d", "model3d", "model2d_frame0", "model2d_frames_mean"} <= set(metrics)
    assert generation["reference"]["summary"]["content"]["images"] > 0


@pytest.mark.skipif(not REFERENCE_CLIPS.is_dir(), reason=f"reference clips not found at {REFERENCE_CLIPS}")
def test_matcher_recovers_the_real_val_order_blind(real_data):
    """On the reference run's 500 val clips, where the order gives the truth, matching by content
    alone (per label, one-to-one) recovers at least 98 % (measured: 493 of 500)."""
    from PIL import Image

    from gva.generate.matching import frame_features, image_features, match_by_content
    from gva.generate.reference import read_clip, read_listing

    listing = read_listing(REFERENCE_CLIPS)["val"]
    ann = [line.split("\t")[:2] for line in (real_data / "val" / "val_annotations.txt").read_text().splitlines()]
    wnids = sorted({w for _, w in ann})
    images = np.stack([np.asarray(Image.open(real_data / "val" / "images" / n).convert("RGB")) for n, _ in ann])
    labels = [wnids.index(w) for _, w in ann]
    assert labels == [lb for _, lb in listing]
    names = [n for n, _ in listing]
    frames = np.stack([read_clip(REFERENCE_CLIPS / n)[0] for n in names])
    matches = match_by_content(image_features(images), labels, frame_features(frames), labels, names)
    recovered = sum(m.clip == n for m, n in zip(matches, names))
    assert recovered >= 490, recovered
    assert all(m.clip == n for m, n in zip(matches, names) if m.confident)  # confident matches are right
