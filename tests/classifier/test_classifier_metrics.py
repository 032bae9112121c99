"""Clip-level metrics: hand-checked cases and a naive twin for average precision."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.classifier.metrics import average_precision, multi_label_metrics, single_label_metrics
from audioembed.errors import ShapeError


def naive_average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """AP as its definition reads: sum over thresholds t of (R(t) - R(previous t)) * P(t)."""
    total, previous_recall = 0.0, 0.0
    for threshold in sorted(set(scores.tolist()), reverse=True):
        predicted = scores >= threshold
        tp = np.sum(predicted & (y_true == 1))
        recall = tp / np.sum(y_true == 1)
        total += (recall - previous_recall) * (tp / np.sum(predicted))
        previous_recall = recall
    return total


@pytest.mark.parametrize("seed", range(20))
def test_average_precision_matches_its_definition(seed):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(2, 40))
    y_true = (rng.random(size) < 0.4).astype(int)
    y_true[0] = 1
    scores = np.round(rng.random(size), 1)  # rounding makes ties, which must count as one threshold
    assert average_precision(y_true, scores) == pytest.approx(naive_average_precision(y_true, scores))


def test_average_precision_perfect_worst_and_undefined():
    assert average_precision(np.array([0, 1, 1]), np.array([0.1, 0.8, 0.9])) == 1.0
    assert average_precision(np.array([1, 0, 0]), np.array([0.1, 0.8, 0.9])) == pytest.approx(1 / 3)
    assert average_precision(np.array([0, 0]), np.array([0.1, 0.2])) is None


def test_single_label_metrics_by_hand():
    labels = ("a", "b", "c")
    y_true = np.array([0, 0, 1, 1, 2, 2])
    scores = np.eye(3)[[0, 1, 1, 1, 2, 0]]  # predictions a b b b c a
    metrics = single_label_metrics(y_true, scores, labels)
    np.testing.assert_array_equal(metrics.confusion, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert metrics.accuracy == pytest.approx(4 / 6)
    assert metrics.per_class["a"].precision == pytest.approx(0.5) and metrics.per_class["a"].recall == 0.5
    assert metrics.per_class["b"].precision == pytest.approx(2 / 3) and metrics.per_class["b"].recall == 1.0
    f1 = [0.5, 0.8, 2 / 3]
    assert metrics.macro_f1 == pytest.approx(np.mean(f1))
    assert metrics.headline() == metrics.macro_f1 and metrics.mean_average_precision is None


def test_multi_label_metrics_by_hand():
    labels = ("x", "y")
    y_true = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    scores = np.array([[0.9, 0.2], [0.7, 0.4], [0.1, 0.8], [0.6, 0.1]])
    metrics = multi_label_metrics(y_true, scores, labels)
    assert metrics.accuracy == pytest.approx(2 / 4)  # rows 0 and 2 are exactly right
    assert metrics.per_class["x"].precision == pytest.approx(2 / 3) and metrics.per_class["x"].recall == 1.0
    assert metrics.per_class["y"].recall == pytest.approx(0.5)
    assert metrics.per_class["x"].average_precision == pytest.approx(1.0)
    assert metrics.per_class["y"].average_precision == pytest.approx(1.0)
    assert metrics.mean_average_precision == pytest.approx(1.0) == metrics.headline()
    np.testing.assert_array_equal(metrics.confusion, [[2, 0], [1, 1]])


def test_shape_mismatches_are_typed_errors():
    with pytest.raises(ShapeError, match=r"\[2, 3\]"):
        single_label_metrics(np.array([0, 1]), np.zeros((2, 2)), ("a", "b", "c"))
    with pytest.raises(ShapeError, match="both be"):
        multi_label_metrics(np.zeros((2, 2)), np.zeros((3, 2)), ("a", "b"))
