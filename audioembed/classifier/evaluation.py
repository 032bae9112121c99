"""Clip-level scoring of embedded clips by a head, and the metrics that follow."""

from __future__ import annotations

import numpy as np

from audioembed.classifier.heads import ClassifierHead, scores_from_logits
from audioembed.classifier.metrics import Metrics, multi_label_metrics, single_label_metrics
from audioembed.classifier.windows import Clips
from audioembed.errors import InvalidOptionError


def pool_by_clip(
    window_scores: np.ndarray, clip_of_window: np.ndarray, num_clips: int, pool: str
) -> np.ndarray:
    """Pool window scores ``[W, C]`` into clip scores ``[M, C]`` by each window's clip index ``[W]``."""
    classes = window_scores.shape[1]
    if pool == "mean":
        sums = np.zeros((num_clips, classes), np.float64)
        np.add.at(sums, clip_of_window, window_scores)
        counts = np.bincount(clip_of_window, minlength=num_clips).astype(np.float64)[:, None]
        return (sums / np.maximum(counts, 1.0)).astype(np.float32)
    if pool == "max":
        best = np.zeros((num_clips, classes), np.float32)  # scores are in [0, 1]: 0 is a neutral start
        np.maximum.at(best, clip_of_window, window_scores)
        return best
    raise InvalidOptionError(f"pool must be 'mean' or 'max', got {pool!r}")


def clip_scores(head: ClassifierHead, clips: Clips, *, multi_label: bool, batch: int = 4096) -> np.ndarray:
    """Clip scores ``[M, C]`` of ``clips`` under ``head`` (in eval mode, no graph)."""
    was_training = head.training
    head.eval()
    try:
        parts = [
            scores_from_logits(
                head(head.normalize(clips.features[start : start + batch])), multi_label=multi_label
            )
            for start in range(0, clips.features.shape[0], batch)
        ]
    finally:
        head.train(was_training)
    windows = np.concatenate(parts, axis=0) if parts else np.zeros((0, len(clips.labels)), np.float32)
    return pool_by_clip(windows, clips.clip_of_window, clips.num_clips, head.config.pool)


def evaluate_clips(
    head: ClassifierHead, clips: Clips, *, multi_label: bool, threshold: float = 0.5
) -> Metrics:
    """Clip-level metrics of ``head`` on ``clips``."""
    scores = clip_scores(head, clips, multi_label=multi_label)
    if multi_label:
        return multi_label_metrics(clips.targets, scores, clips.labels, threshold=threshold)
    return single_label_metrics(clips.targets, scores, clips.labels)
