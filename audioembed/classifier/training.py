"""Training a head on embedded clips: window-level loss, clip-level validation, early stopping.

Every window of a training clip is one example carrying its clip's label(s). After each epoch the head
scores the validation clips (window scores pooled as configured) and the epoch with the best validation
metric (macro-F1, or mAP for multi-label) is kept; training stops after ``patience`` epochs without
improvement. One seed drives the initialisation, the shuffling and dropout, and every reduction runs in a
fixed order, so a seeded run gives bit-identical weights.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from audioembed import nn
from audioembed.classifier.evaluation import evaluate_clips
from audioembed.classifier.heads import ClassifierHead, HeadConfig
from audioembed.classifier.metrics import Metrics
from audioembed.classifier.windows import Clips
from audioembed.errors import InvalidOptionError
from audioembed.nn import functional
from audioembed.nn.optim import AdamW

CLASS_WEIGHTS = ("balanced", "none")


@dataclass(frozen=True)
class TrainOptions:
    """How a head is trained; recorded in the classifier file.

    Attributes
    ----------
    epochs : int
        At most this many passes over the training windows.
    batch_size : int
        Windows per optimiser step.
    learning_rate, weight_decay : float
        AdamW's step size and decoupled weight decay.
    patience : int
        Stop after this many epochs without a better validation metric.
    class_weight : {"balanced", "none"}
        ``"balanced"`` weights each class's loss by the inverse of its window frequency (single-label), or
        each class's positives by negatives / positives (multi-label), so a rare class counts as much as a
        common one.
    label_smoothing : float
        Single-label only: cross-entropy's label smoothing.
    seed : int
    """

    epochs: int = 200
    batch_size: int = 32  # small steps: a few hundred clips give only a few hundred windows
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    patience: int = 20
    class_weight: str = "balanced"
    label_smoothing: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise InvalidOptionError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if not self.weight_decay >= 0:
            raise InvalidOptionError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise InvalidOptionError(
                f"class_weight must be one of {CLASS_WEIGHTS}, got {self.class_weight!r}"
            )
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InvalidOptionError(f"label_smoothing must be in [0, 1), got {self.label_smoothing!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidOptionError(f"seed must be a non-negative integer, got {self.seed!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainOutcome:
    """The trained head and how training went."""

    head: ClassifierHead
    best_epoch: int
    epochs_run: int
    validation: Metrics
    history: list[dict] = field(default_factory=list)  # per epoch: loss, validation metric


def class_weights(clips: Clips) -> np.ndarray:
    """Balanced loss weights ``[C]`` from the training windows (see :class:`TrainOptions`)."""
    targets = clips.window_targets()
    classes = len(clips.labels)
    if clips.multi_label:
        positives = targets.sum(axis=0).astype(np.float64)
        negatives = targets.shape[0] - positives
        return np.where(positives > 0, negatives / np.maximum(positives, 1.0), 1.0).astype(np.float32)
    counts = np.bincount(targets, minlength=classes).astype(np.float64)
    return np.where(counts > 0, counts.sum() / (classes * np.maximum(counts, 1.0)), 0.0).astype(np.float32)


def _loss(logits, targets: np.ndarray, *, multi_label: bool, weights: np.ndarray | None, smoothing: float):
    if multi_label:
        return functional.binary_cross_entropy_with_logits(logits, targets, pos_weight=weights)
    return functional.cross_entropy(logits, targets, weight=weights, label_smoothing=smoothing)


def _validation_loss(
    head: ClassifierHead, val: Clips, weights: np.ndarray | None, options: TrainOptions
) -> float:
    """The training loss over the validation windows (eval mode, no graph)."""
    head.eval()
    logits = head(head.normalize(val.features))
    return float(
        _loss(
            logits,
            val.window_targets(),
            multi_label=val.multi_label,
            weights=weights,
            smoothing=options.label_smoothing,
        )
    )


def train_head(
    train: Clips,
    val: Clips,
    config: HeadConfig,
    options: TrainOptions,
    *,
    on_epoch: Callable[[dict], None] | None = None,
) -> TrainOutcome:
    """Train a head on ``train``'s windows, selecting the epoch by ``val``'s clip-level metric.

    Parameters
    ----------
    train, val : Clips
        Embedded clips; ``val`` is used only for model selection and early stopping.
    config : HeadConfig
    options : TrainOptions
    on_epoch : callable, optional
        Called after each epoch with ``{"epoch", "loss", "metric", "best"}`` (progress bars).

    Returns
    -------
    TrainOutcome
        The head holds the weights of the best epoch, in eval mode.
    """
    rng = np.random.default_rng(options.seed)
    head = ClassifierHead(config, rng=rng)
    head.fit_normalization(train.features)
    inputs = head.normalize(train.features)  # [W, 128] float32, fixed: the normalisation is not trained
    targets = train.window_targets()
    weights = class_weights(train) if options.class_weight == "balanced" else None
    optimizer = AdamW(head.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    best_state, best_metric, best_loss, best_epoch, best_metrics = None, -np.inf, np.inf, 0, None
    history: list[dict] = []
    epoch = 0
    for epoch in range(1, options.epochs + 1):
        head.train()
        order = rng.permutation(inputs.shape[0])
        total, seen = 0.0, 0
        for start in range(0, order.size, options.batch_size):
            batch = order[start : start + options.batch_size]
            logits = head(nn.Tensor(inputs[batch]))
            loss = _loss(
                logits,
                targets[batch],
                multi_label=train.multi_label,
                weights=weights,
                smoothing=options.label_smoothing,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.item()) * batch.size
            seen += batch.size
        metrics = evaluate_clips(head, val, multi_label=train.multi_label)
        metric = metrics.headline()
        val_loss = _validation_loss(head, val, weights, options)
        # A small validation set moves its metric in coarse steps: on a tie, the lower loss wins.
        if metric > best_metric or (metric == best_metric and val_loss < best_loss):
            best_state, best_epoch, best_metrics = copy.deepcopy(head.state_dict()), epoch, metrics
            best_metric, best_loss = metric, val_loss
        record = {
            "epoch": epoch,
            "loss": total / max(seen, 1),
            "val_loss": val_loss,
            "metric": metric,
            "best": best_metric,
        }
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
        if epoch - best_epoch >= options.patience:
            break
    head.load_state_dict(best_state)
    head.eval()
    return TrainOutcome(
        head=head, best_epoch=best_epoch, epochs_run=epoch, validation=best_metrics, history=history
    )
