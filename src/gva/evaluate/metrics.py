"""Classification metrics from logits: top-k accuracy, confusion matrix, per-class and macro P/R/F1.

Computed with numpy from the confusion matrix (the tests check them against scikit-learn).
Conventions follow scikit-learn's: macro averages run over *all* ``num_classes`` labels, a
precision or recall whose denominator is zero counts as 0, and macro F1 is the mean of the
per-class F1 scores (not the F1 of macro precision and macro recall).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClassificationReport:
    """Everything measured on one prediction set; arrays are indexed by label."""

    top1: float
    top3: float
    precision_macro: float
    recall_macro: float
    f1_macro: float
    balanced_error: float      # mean over classes of the off-diagonal share of each confusion row
                               # (1 - balanced top-1; on a balanced test set exactly 1 - top-1)
    confusion: np.ndarray      # [C, C] counts, rows = actual, columns = predicted
    precision: np.ndarray      # [C]
    recall: np.ndarray         # [C]
    f1: np.ndarray             # [C]
    support: np.ndarray        # [C] number of samples of each actual class

    @property
    def balanced(self) -> bool:
        """Every class present has the same number of test samples."""
        present = self.support[self.support > 0]
        return bool(present.size == 0 or np.all(present == present[0]))

    def summary(self) -> dict[str, float]:
        """The scalar metrics, for metrics.json; ``balanced_top1`` (mean per-class recall) only
        when the test set is unbalanced: on a balanced one it equals ``top1``."""
        out = {
            "top1": self.top1,
            "top3": self.top3,
            "precision_macro": self.precision_macro,
            "recall_macro": self.recall_macro,
            "f1_macro": self.f1_macro,
        }
        if not self.balanced:
            out["balanced_top1"] = 1.0 - self.balanced_error
        return out


def _check_labels(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    return labels.astype(np.int64)


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of samples whose label is among the ``k`` highest scores (k is capped at C)."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {logits.shape}")
    labels = _check_labels(labels, logits.shape[1])
    if logits.shape[0] != labels.shape[0]:
        raise ValueError(f"logits {logits.shape} do not match labels {labels.shape}")
    if labels.size == 0:
        raise ValueError("no samples to score")
    k = min(k, logits.shape[1])
    # Rank = number of classes scoring strictly higher than the true class (ties count in its
    # favour; with distinct scores this equals sklearn.metrics.top_k_accuracy_score).
    true_scores = logits[np.arange(len(labels)), labels]
    rank = (logits > true_scores[:, None]).sum(axis=1)
    return float((rank < k).mean())


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """[C, C] counts; rows are actual classes, columns predicted classes."""
    labels = _check_labels(labels, num_classes)
    preds = _check_labels(preds, num_classes)
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and predictions {preds.shape} differ in shape")
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(
        num_classes, num_classes).astype(np.int64)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = num.astype(np.float64)
    den = den.astype(np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class_prf(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (0 where undefined)."""
    tp = np.diag(confusion)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, actual)
    f1 = _safe_div(2 * tp, predicted + actual)  # = 2PR/(P+R), and 0 when tp = 0
    return precision, recall, f1, actual


def offdiagonal_mass(confusion: np.ndarray, normalize: str = "true") -> float:
    """Off-diagonal share of a confusion matrix.

    ``normalize="all"``: misclassified share of all samples (= 1 - top-1).
    ``normalize="true"``: each row scaled to sum to 1 first, then the off-diagonal mass averaged
    over classes present (= 1 - balanced accuracy), so every class weighs the same.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    if normalize == "all":
        total = confusion.sum()
        return float((total - np.trace(confusion)) / total) if total else 0.0
    if normalize == "true":
        rows = confusion.sum(axis=1)
        present = rows > 0
        if not present.any():
            return 0.0
        correct = np.diag(confusion)[present] / rows[present]
        return float(np.mean(1.0 - correct))
    raise ValueError(f"normalize must be 'true' or 'all', got {normalize!r}")


def classification_report(logits: np.ndarray, labels: np.ndarray) -> ClassificationReport:
    """Score ``logits`` [N, C] against integer ``labels`` [N]; predictions are the argmax."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, C], got shape {logits.shape}")
    num_classes = logits.shape[1]
    labels = _check_labels(labels, num_classes)
    preds = logits.argmax(axis=1)
    cm = confusion_matrix(labels, preds, num_classes)
    precision, recall, f1, support = per_class_prf(cm)
    return ClassificationReport(
        top1=float(np.trace(cm) / cm.sum()),
        top3=top_k_accuracy(logits, labels, 3),
        precision_macro=float(precision.mean()),
        recall_macro=float(recall.mean()),
        f1_macro=float(f1.mean()),
        balanced_error=offdiagonal_mass(cm, "true"),
        confusion=cm,
        precision=precision,
        recall=recall,
        f1=f1,
        support=support,
    )
