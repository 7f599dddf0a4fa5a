"""The two-level bootstrap of a paired difference over seeds and shared test images -- and, with
one seed, the ordinary paired bootstrap over images (:func:`gva.stats.paired.paired_bootstrap_diff`
is that case): the one resampling code gva has.

Each replicate draws the seeds with replacement and ONE resample of the test images that all drawn
seeds share, for ``mean over seeds of metric(b) - metric(a)`` (top-1, top-3, macro-F1; the image
counts enter as weights, so every metric is a matrix product). Resampling images independently per
seed would treat the image noise as if it averaged out over seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gva.stats import METRICS

_CHUNK = 2000   # bootstrap replicates per batch: memory is O(_CHUNK * n_images)


# --------------------------------------------------------------------------------------------
# Paired predictions and metrics


def _as_labels(x: object, name: str) -> np.ndarray:
    """Integer array; integral floats are accepted (CSV / JSON round trips), anything else not."""
    arr = np.asarray(x)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return arr.astype(np.int64)
    raise ValueError(f"{name} must hold integer class labels, got dtype {arr.dtype}")


@dataclass
class PairedSeed:
    """One seed's predictions of two models (``a`` = baseline, e.g. 2-D; ``b`` = the other) on
    the shared test images.

    ``labels``: (n,) true classes. ``pred_a`` / ``pred_b``: (n,) top-1 predicted labels or
    (n, k) ranked predictions (column 0 = top-1). ``ids`` (optional): (n,) distinct image ids.
    All seeds given to one analysis must hold the same test images in the same order: the same
    ``ids`` when every seed has them (:func:`align_seeds` puts them in one order), else at least
    the same labels. ``groups`` (optional): (n,) the model within the seed that scored each
    image (its fold, for cross-fitted runs pooled by :mod:`gva.report.folds`).
    """

    labels: np.ndarray
    pred_a: np.ndarray
    pred_b: np.ndarray
    ids: np.ndarray | None = None
    groups: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = _as_labels(self.labels, "labels")
        self.pred_a = _as_labels(self.pred_a, "pred_a")
        self.pred_b = _as_labels(self.pred_b, "pred_b")
        if self.labels.ndim != 1 or self.labels.size == 0:
            raise ValueError(f"labels must be a non-empty 1-D array, got shape {self.labels.shape}")
        n = self.labels.size
        if self.ids is not None:
            self.ids = _as_labels(self.ids, "ids")
            if self.ids.shape != (n,):
                raise ValueError(f"ids must be (n,) with n = {n} images, got shape {self.ids.shape}")
            if np.unique(self.ids).size != n:
                raise ValueError("ids must be distinct: an image id is listed twice")
        if self.groups is not None:
            self.groups = _as_labels(self.groups, "groups")
            if self.groups.shape != (n,):
                raise ValueError(f"groups must be (n,) with n = {n} images, got shape {self.groups.shape}")
        for name, pred in (("pred_a", self.pred_a), ("pred_b", self.pred_b)):
            bad_k = pred.ndim == 2 and pred.shape[1] < 1
            if pred.ndim not in (1, 2) or pred.shape[0] != n or bad_k:
                raise ValueError(f"{name} must be (n,) or (n, k) with n = {n} images, "
                                 f"got shape {pred.shape}")

    @property
    def n_images(self) -> int:
        return int(self.labels.size)


def _top1(pred: np.ndarray) -> np.ndarray:
    return pred if pred.ndim == 1 else pred[:, 0]


def _correct(labels: np.ndarray, pred: np.ndarray, metric: str) -> np.ndarray:
    """Per-image 0/1 correctness for top1 / top3."""
    if metric == "top1":
        return (_top1(pred) == labels).astype(np.float64)
    if pred.ndim != 2 or pred.shape[1] < 3:
        raise ValueError(f"top3 needs (n, k >= 3) ranked predictions, got shape {pred.shape}")
    return (pred[:, :3] == labels[:, None]).any(axis=1).astype(np.float64)


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def model_metric(labels: np.ndarray, pred: np.ndarray, metric: str = "top1") -> float:
    """One model's metric on one seed: ``top1``, ``top3`` (needs (n, k >= 3) predictions) or
    ``f1_macro`` (= ``sklearn.metrics.f1_score(labels, top1, labels=np.unique(labels),
    average="macro", zero_division=0)``: macro F1 over the classes present in ``labels``)."""
    _check_metric(metric)
    seed = PairedSeed(labels, pred, pred)
    prep = _Prepared([seed], metric)
    ones = np.ones((1, seed.n_images))
    return float(prep.per_seed(ones)[0][0, 0])


class _Prepared:
    """The seeds turned into matrices, so that any image re-weighting (a bootstrap resample is
    a vector of counts per image) gives every seed's metric by a matrix product."""

    def __init__(self, seeds: Sequence[PairedSeed], metric: str) -> None:
        self.metric = metric
        self.n_seeds = len(seeds)
        self.n_images = seeds[0].n_images
        labels = seeds[0].labels
        preds = [s.pred_a for s in seeds] + [s.pred_b for s in seeds]   # a's seeds, then b's
        if metric in ("top1", "top3"):
            # (n, 2S): accuracy under image weights w is w @ correct / sum(w)
            self.correct = np.stack([_correct(labels, p, metric) for p in preds], axis=1)
            return
        # Macro-F1 over the classes present in the (full) labels. Per class c,
        # F1_c = 2 tp / (2 tp + fp + fn) = 2 tp / (n_true_c + n_pred_c): all three counts are
        # linear in the image weights, so one-hot matrices turn them into matrix products.
        classes = np.unique(labels)
        self.n_classes = classes.size
        self.true_onehot = (labels[:, None] == classes[None, :]).astype(np.float64)   # (n, C)
        pred_onehot = np.concatenate(
            [(_top1(p)[:, None] == classes[None, :]).astype(np.float64) for p in preds],
            axis=1)                                                                      # (n, 2S*C)
        self.pred_onehot = pred_onehot
        self.tp_onehot = pred_onehot * np.tile(self.true_onehot, (1, len(preds)))

    def per_seed(self, image_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, n) image counts -> metric of model a and of model b per replicate and seed,
        each (B, S)."""
        s = self.n_seeds
        if self.metric in ("top1", "top3"):
            acc = image_counts @ self.correct / image_counts.sum(axis=1, keepdims=True)
            return acc[:, :s], acc[:, s:]
        c = self.n_classes
        n_true = image_counts @ self.true_onehot                                   # (B, C)
        n_pred = (image_counts @ self.pred_onehot).reshape(-1, 2 * s, c)           # (B, 2S, C)
        tp = (image_counts @ self.tp_onehot).reshape(-1, 2 * s, c)
        den = n_true[:, None, :] + n_pred
        # A class with no true and no predicted image scores 0 (sklearn's zero_division=0).
        f1 = np.divide(2.0 * tp, den, out=np.zeros_like(tp), where=den > 0).mean(axis=2)
        return f1[:, :s], f1[:, s:]

    def statistic(self, seed_counts: np.ndarray, image_counts: np.ndarray) -> np.ndarray:
        """Mean over the drawn seeds of metric(b) - metric(a), one value per replicate.

        ``seed_counts`` (B, S): how often each seed was drawn; ``image_counts`` (B, n): how often
        each image was drawn (the same images for every seed of a replicate)."""
        m_a, m_b = self.per_seed(np.asarray(image_counts, dtype=np.float64))
        seed_w = np.asarray(seed_counts, dtype=np.float64)
        seed_w = seed_w / seed_w.sum(axis=1, keepdims=True)
        return ((m_b - m_a) * seed_w).sum(axis=1)


def _check_seeds(seeds: Sequence[PairedSeed]) -> None:
    if len(seeds) == 0:
        raise ValueError("no seeds")
    first = seeds[0]
    for i, s in enumerate(seeds[1:], start=1):
        if s.n_images != first.n_images:
            raise ValueError(f"seed {i} has {s.n_images} test images, seed 0 has {first.n_images}: "
                             "all seeds must score the same test images in the same order")
        if s.ids is not None and first.ids is not None and not np.array_equal(s.ids, first.ids):
            raise ValueError(f"seed {i}'s image ids differ from seed 0's: all seeds must score the "
                             "same test images in the same order")
        if not np.array_equal(s.labels, first.labels):
            raise ValueError(f"seed {i}'s labels differ from seed 0's: all seeds must score the "
                             "same test images in the same order")


def _row_counts(idx: np.ndarray, size: int) -> np.ndarray:
    """(B, m) drawn indices in [0, size) -> (B, size) counts, one bincount for all rows."""
    rows = idx.shape[0]
    flat = idx + (np.arange(rows) * size)[:, None]
    return np.bincount(flat.ravel(), minlength=rows * size).reshape(rows, size)


# --------------------------------------------------------------------------------------------
# Hierarchical bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """``estimate`` on the original data; ``low``/``high`` the percentile interval; ``se`` the
    standard deviation of the replicates (ddof 1); ``replicates`` (n_boot,)."""

    estimate: float
    low: float
    high: float
    se: float
    replicates: np.ndarray
    metric: str
    confidence: float
    n_boot: int
    seed: int
    n_seeds: int
    n_images: int


def hierarchical_bootstrap(seeds: Sequence[PairedSeed], metric: str = "top1",
                           n_boot: int = 10000, seed: int = 0,
                           confidence: float = 0.95) -> BootstrapResult:
    """Bootstrap of ``mean over seeds of metric(b) - metric(a)`` for a crossed seed x image design.

    Each replicate draws the seeds with replacement and ONE resample of the test images that
    all drawn seeds share. Resampling images independently per seed would treat the image
    noise as if it averaged out over seeds, and give too narrow an interval when the seeds'
    errors on an image are correlated (they are: same images, same labels). With one seed
    this is the ordinary paired bootstrap over images.

    Deterministic for a given ``seed`` (``numpy.random.default_rng``).
    """
    _check_metric(metric)
    _check_seeds(seeds)
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    prep = _Prepared(seeds, metric)
    s, n = prep.n_seeds, prep.n_images
    estimate = float(prep.statistic(np.ones((1, s)), np.ones((1, n)))[0])
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot, dtype=np.float64)
    for start in range(0, n_boot, _CHUNK):
        m = min(_CHUNK, n_boot - start)
        seed_counts = _row_counts(rng.integers(0, s, size=(m, s)), s)
        image_counts = _row_counts(rng.integers(0, n, size=(m, n)), n)
        reps[start:start + m] = prep.statistic(seed_counts, image_counts)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(reps, [tail, 1.0 - tail])
    return BootstrapResult(estimate=estimate, low=float(low), high=float(high),
                           se=float(reps.std(ddof=1)), replicates=reps, metric=metric,
                           confidence=confidence, n_boot=n_boot, seed=seed, n_seeds=s, n_images=n)


__all__ = ["PairedSeed", "model_metric", "BootstrapResult", "hierarchical_bootstrap"]
