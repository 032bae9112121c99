"""Classification metrics at clip level: accuracy, macro-F1, per-class precision / recall, mAP.

Single-label: each clip has one true class and one predicted class (the best clip score). Multi-label:
``y_true`` is a 0/1 matrix and a class is predicted when its clip score reaches ``threshold``; average
precision per class ranks clips by score, as scikit-learn's ``average_precision_score`` defines it (the
mean of the precisions at each true positive's rank), and mAP averages it over classes that have positives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from audioembed.errors import ShapeError


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall, F1 and support (true clips) of one class."""

    precision: float
    recall: float
    f1: float
    support: int
    average_precision: float | None = None  # multi-label only


@dataclass(frozen=True)
class Metrics:
    """Clip-level metrics of a classifier on a labelled set.

    Attributes
    ----------
    labels : tuple of str
    multi_label : bool
    clips : int
    accuracy : float
        Single-label: fraction of clips whose best class is the true one. Multi-label: fraction of clips
        whose predicted label set is exactly the true one (subset accuracy).
    macro_f1 : float
        Unweighted mean of per-class F1 over classes with support or predictions.
    mean_average_precision : float or None
        Multi-label only: mean of per-class average precision over classes with positives.
    per_class : dict of str to ClassMetrics
    confusion : np.ndarray [shape=(C, C), int64]
        Rows: true class, columns: predicted class. Multi-label: counts of (true label, predicted label)
        pairs over clips, so the diagonal is true positives and a row's off-diagonal shows confusions.
    """

    labels: tuple[str, ...]
    multi_label: bool
    clips: int
    accuracy: float
    macro_f1: float
    mean_average_precision: float | None
    per_class: dict[str, ClassMetrics]
    confusion: np.ndarray = field(repr=False)

    def headline(self) -> float:
        """The number early stopping watches: mAP for multi-label, macro-F1 otherwise."""
        return self.mean_average_precision if self.multi_label else self.macro_f1

    def to_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "multi_label": self.multi_label,
            "clips": self.clips,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "mean_average_precision": self.mean_average_precision,
            "per_class": {label: vars(m) for label, m in self.per_class.items()},
            "confusion": self.confusion.tolist(),
        }


def _safe_ratio(numerator: float, denominator: float) -> float:
    return float(numerator / denominator) if denominator else 0.0


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision of one class: ``y_true`` 0/1 ``[M]``, ``scores`` ``[M]``; None with no positives.

    Tied scores are ranked together (each tie group counts as one threshold), so the value does not depend
    on the input order.
    """
    y_true = np.asarray(y_true, dtype=bool)
    positives = int(y_true.sum())
    if positives == 0:
        return None
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    sorted_scores = np.asarray(scores, dtype=np.float64)[order]
    hits = y_true[order].astype(np.float64)
    # One threshold per distinct score: the last index of each run of equal scores.
    last_of_group = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    true_positives = np.cumsum(hits)[last_of_group]
    predicted = (np.arange(1, hits.size + 1))[last_of_group]
    precision = true_positives / predicted
    recall_steps = np.diff(np.r_[0.0, true_positives]) / positives
    return float(np.sum(precision * recall_steps))


def single_label_metrics(y_true: np.ndarray, clip_scores: np.ndarray, labels: tuple[str, ...]) -> Metrics:
    """Metrics from true class indices ``[M]`` and clip scores ``[M, C]`` (prediction = arg max)."""
    y_true = np.asarray(y_true, dtype=np.int64)
    clip_scores = np.asarray(clip_scores)
    count = len(labels)
    if clip_scores.ndim != 2 or clip_scores.shape != (y_true.shape[0], count):
        raise ShapeError(f"clip scores must be [{y_true.shape[0]}, {count}], got {list(clip_scores.shape)}")
    y_pred = np.argmax(clip_scores, axis=1) if y_true.size else np.zeros(0, np.int64)
    confusion = np.zeros((count, count), np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class, f1s = {}, []
    for index, label in enumerate(labels):
        tp = confusion[index, index]
        precision = _safe_ratio(tp, confusion[:, index].sum())
        recall = _safe_ratio(tp, confusion[index, :].sum())
        f1 = _safe_ratio(2 * precision * recall, precision + recall)
        support = int(confusion[index, :].sum())
        per_class[label] = ClassMetrics(precision, recall, f1, support)
        if support or confusion[:, index].sum():
            f1s.append(f1)
    return Metrics(
        labels=labels,
        multi_label=False,
        clips=int(y_true.size),
        accuracy=_safe_ratio(np.trace(confusion), y_true.size),
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        mean_average_precision=None,
        per_class=per_class,
        confusion=confusion,
    )


def multi_label_metrics(
    y_true: np.ndarray, clip_scores: np.ndarray, labels: tuple[str, ...], *, threshold: float = 0.5
) -> Metrics:
    """Metrics from 0/1 targets ``[M, C]`` and clip scores ``[M, C]`` (predicted: score >= threshold)."""
    y_true = np.asarray(y_true, dtype=bool)
    clip_scores = np.asarray(clip_scores, dtype=np.float64)
    if y_true.ndim != 2 or clip_scores.shape != y_true.shape or y_true.shape[1] != len(labels):
        raise ShapeError(
            f"targets and clip scores must both be [M, {len(labels)}], "
            f"got {list(y_true.shape)} and {list(clip_scores.shape)}"
        )
    y_pred = clip_scores >= threshold
    confusion = (y_true.T.astype(np.int64) @ y_pred.astype(np.int64)).astype(np.int64)
    per_class, f1s, aps = {}, [], []
    for index, label in enumerate(labels):
        tp = int(np.sum(y_true[:, index] & y_pred[:, index]))
        precision = _safe_ratio(tp, y_pred[:, index].sum())
        recall = _safe_ratio(tp, y_true[:, index].sum())
        f1 = _safe_ratio(2 * precision * recall, precision + recall)
        ap = average_precision(y_true[:, index], clip_scores[:, index])
        per_class[label] = ClassMetrics(precision, recall, f1, int(y_true[:, index].sum()), ap)
        if y_true[:, index].any() or y_pred[:, index].any():
            f1s.append(f1)
        if ap is not None:
            aps.append(ap)
    exact = np.all(y_true == y_pred, axis=1)
    return Metrics(
        labels=labels,
        multi_label=True,
        clips=int(y_true.shape[0]),
        accuracy=_safe_ratio(exact.sum(), exact.size),
        macro_f1=float(np.mean(f1s)) if f1s else 0.0,
        mean_average_precision=float(np.mean(aps)) if aps else 0.0,
        per_class=per_class,
        confusion=confusion,
    )
