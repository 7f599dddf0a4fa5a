"""Which precomputed clip belongs to which curated image: the reference run's clips, matched back.

The reference run (``svd.generator: reference``, :mod:`gva.generate.reference`) published one SVD
clip per image but not which image: its val clips follow ``val_annotations.txt`` (so the order
gives the image), its train clips follow a directory listing that was not recorded (so only the
content does). This module is that matching, pure numpy/scipy:

* **features** -- a generated frame 0 resembles its image after the reference geometry (the image
  stretched to 16:9, ``Resize`` + ``CenterCrop`` back to a square: :func:`image_features` applies
  it), not pixel for pixel (SVD regenerates it, H.264 compresses it). Both sides become 32x32
  grey thumbnails, zero mean and unit norm; the cost of a pair is ``1 - cosine``.
* **assignment** -- within each label, images and clips are matched one-to-one by a minimum-cost
  assignment (Hungarian: ``scipy.optimize.linear_sum_assignment``), not by each clip's nearest
  image, so two images never share a clip.
* **confidence** -- a pair's *margin* is how much more its best alternative costs (another image
  for the clip, or another clip for the image). A pair is *confident* when the margin is at least
  :data:`CONFIDENT_MARGIN`; on the 500 val clips, where the truth is known, every confident pair
  is right (docs/generators.md, "Measured on the real clips"). An unconfident pair is still used (it is a clip
  of the same class, possibly another image's), counted and flagged.
* **label check** -- the clips a label's images were given should look like that label's images:
  when fewer than :data:`LABEL_AGREEMENT` of them have their nearest image (over every label) in
  that label, the CSV's labels and the images disagree, and that is an error, never a silent
  match (:func:`check_label_agreement`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np

#: Thumbnail side of the matching features.
FEATURE_SIDE = 32
#: The reference run's SVD canvas (width, height), divided by 8: the same 16:9 stretch, cheaper.
CANVAS = (128, 72)
#: A pair is confident when its best alternative costs at least this much more.
CONFIDENT_MARGIN = 0.05
#: Below this share of a label's clips nearest to an image of that label, its CSV labels are wrong.
LABEL_AGREEMENT = 0.5


@dataclass(frozen=True)
class Match:
    """One image's clip: ``clip`` is its path inside the folder (``train/00012.mp4``); ``how`` is
    ``order`` (val: the annotation order) or ``content`` (train: the assignment); ``cost`` and
    ``margin`` as in the module docstring (for ``order`` too: how well the content agrees);
    ``content_agrees`` (``order`` only): whether matching by content alone picks the same clip."""

    clip: str
    how: str
    cost: float
    margin: float
    confident: bool
    content_agrees: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


class LabelMismatch(ValueError):
    """A clip's CSV label disagrees with the image its content matches; the message names both."""


def _normalise(grey: np.ndarray) -> np.ndarray:
    x = grey.reshape(grey.shape[0], -1).astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def _grey_thumbnails(frames: np.ndarray) -> np.ndarray:
    from PIL import Image

    out = np.empty((frames.shape[0], FEATURE_SIDE, FEATURE_SIDE), dtype=np.float64)
    for i, f in enumerate(frames):
        small = Image.fromarray(f).resize((FEATURE_SIDE, FEATURE_SIDE), Image.Resampling.BOX)
        out[i] = np.asarray(small, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    return out


def image_features(images: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] curated images -> [N,D] features in the reference geometry."""
    from gva.generate.postprocess import reference_geometry

    return _normalise(_grey_thumbnails(reference_geometry(images, *CANVAS, size=4 * FEATURE_SIDE)))


def frame_features(frames: np.ndarray) -> np.ndarray:
    """uint8 [N,H,W,3] clip frames (frame 0 of each clip) -> [N,D] features."""
    return _normalise(_grey_thumbnails(frames))


def costs(image_feats: np.ndarray, clip_feats: np.ndarray) -> np.ndarray:
    """[images, clips] matrix of ``1 - cosine``."""
    return 1.0 - image_feats @ clip_feats.T


def _margins(cost: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """For each assigned (row, col): the cheapest alternative for either side minus its cost."""
    out = np.empty(len(rows))
    for k, (r, c) in enumerate(zip(rows, cols)):
        alt = np.inf
        if cost.shape[0] > 1:
            alt = min(alt, np.min(np.delete(cost[:, c], r)))
        if cost.shape[1] > 1:
            alt = min(alt, np.min(np.delete(cost[r, :], c)))
        out[k] = alt - cost[r, c]
    return out


def assign(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost one-to-one assignment of [images, clips] (images <= clips): for every image
    (in order) the column of its clip, and each pair's margin."""
    from scipy.optimize import linear_sum_assignment

    if cost.shape[0] > cost.shape[1]:
        raise ValueError(f"{cost.shape[0]} images but only {cost.shape[1]} clips to match them with")
    rows, cols = linear_sum_assignment(cost)
    order = np.argsort(rows)
    rows, cols = rows[order], cols[order]
    return cols, _margins(cost, rows, cols)


def match_by_content(image_feats: np.ndarray, image_labels: Sequence[int] | np.ndarray, clip_feats: np.ndarray,
                     clip_labels: Sequence[int] | np.ndarray, clip_names: Sequence[str],
                     check_labels: bool = True) -> list[Match]:
    """Per label, the assignment of images to clips; then (``check_labels``) :func:`check_labels`."""
    image_labels, clip_labels = np.asarray(image_labels), np.asarray(clip_labels)
    cost = costs(image_feats, clip_feats)
    out: list[Match | None] = [None] * len(image_labels)
    assigned = np.empty(len(image_labels), dtype=int)
    for label in np.unique(image_labels):
        ii, cc = np.flatnonzero(image_labels == label), np.flatnonzero(clip_labels == label)
        if len(ii) > len(cc):
            raise ValueError(f"label {int(label)}: {len(ii)} images but only {len(cc)} clips")
        cols, margins = assign(cost[np.ix_(ii, cc)])
        assigned[ii] = cc[cols]
        for i, c, m in zip(ii, cc[cols], margins):
            out[i] = Match(clip_names[c], "content", float(cost[i, c]), float(m), bool(m >= CONFIDENT_MARGIN))
    if check_labels:
        check_label_agreement(cost, image_labels, assigned, clip_labels, clip_names)
    return cast(list[Match], out)  # every image assigned (each label has enough clips)


def check_label_agreement(cost: np.ndarray, image_labels: np.ndarray, assigned: np.ndarray,
                          clip_labels: np.ndarray, clip_names: Sequence[str]) -> None:
    """Raise :class:`LabelMismatch` for a label whose clips do not look like its images: fewer than
    :data:`LABEL_AGREEMENT` of the clips assigned to its images have their nearest image (over all
    labels) in that label. One clip nearer another label's image happens with correct labels
    (similar scenes); a wrong CSV label makes it the rule."""
    nearest_label = image_labels[np.argmin(cost[:, assigned], axis=0)]
    for label in np.unique(image_labels):
        own = image_labels == label
        if own.sum() < 10:  # too few to judge
            continue
        share = float(np.mean(nearest_label[own] == label))
        if share < LABEL_AGREEMENT:
            example = clip_names[assigned[np.flatnonzero(own & (nearest_label != label))[0]]]
            raise LabelMismatch(
                f"the clips labelled {int(label)} in the CSV do not look like the images of label {int(label)}: only "
                f"{share:.0%} of them have their nearest image in that label (e.g. {example}); the CSV's labels and "
                "the images disagree")


def match_by_order(image_feats: np.ndarray, labels: Sequence[int] | np.ndarray, clip_feats: np.ndarray,
                   clip_names: Sequence[str]) -> list[Match]:
    """Image k takes clip k (the caller pairs them, ``labels`` theirs); cost and margin say how well
    the content agrees, and the blind content assignment within each label is run beside it
    (``content_agrees``): on the reference run's val clips, this proves the matcher."""
    cost = costs(image_feats, clip_feats)
    idx = np.arange(len(clip_names))
    margins = _margins(cost, idx, idx)
    blind = match_by_content(image_feats, labels, clip_feats, labels, clip_names, check_labels=False)
    return [Match(clip_names[k], "order", float(cost[k, k]), float(margins[k]), bool(margins[k] >= CONFIDENT_MARGIN),
                  blind[k].clip == clip_names[k]) for k in idx.tolist()]


def summary(matches: Sequence[Match]) -> dict[str, Any]:
    """Counts and cost/margin quantiles, per way of matching (for generation.json and the log)."""
    out: dict[str, Any] = {}
    for how in sorted({m.how for m in matches}):
        ms = [m for m in matches if m.how == how]
        cost = np.array([m.cost for m in ms])
        margin = np.array([m.margin for m in ms])
        q = [5, 50, 95]
        out[how] = {"images": len(ms), "confident": int(sum(m.confident for m in ms)),
                    **({"content_agrees": int(sum(bool(m.content_agrees) for m in ms))} if how == "order" else {}),
                    "cost_p5_p50_p95": [round(float(v), 4) for v in np.percentile(cost, q)],
                    "margin_p5_p50_p95": [round(float(v), 4) for v in np.percentile(margin, q)]}
    return out
