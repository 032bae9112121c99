"""Loss Modules: ``CrossEntropyLoss``, ``BCEWithLogitsLoss``, ``MSELoss`` (the class axis is the last axis).

Each holds its options (class weights are buffers, so they follow ``.double()`` and ``state_dict``) and
calls one function of :mod:`audioembed.nn.training_ops`. Called on ndarrays a loss returns a ``float``
('mean' / 'sum') or an ndarray ('none').
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn import training_ops
from audioembed.nn.functional_loss import IGNORE_INDEX, check_reduction
from audioembed.nn.module import Module


def _weight_buffer(value: Any, name: str) -> np.ndarray | None:
    if value is None:
        return None
    array = np.array(value, dtype=np.result_type(np.asarray(value).dtype, np.float32))
    if not np.issubdtype(array.dtype, np.floating) or array.ndim != 1 or array.size == 0:
        raise InvalidOptionError(f"{name} must be a non-empty 1-D array of floats, got {value!r}")
    return array


class _Loss(Module):
    def __init__(self, reduction: str) -> None:
        super().__init__()
        self.reduction = check_reduction(reduction)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" if self.reduction != "mean" else ""


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits ``[..., C]`` against class indices ``[...]`` or probabilities.

    Parameters
    ----------
    weight : array [shape=(C,)], optional
        Per-class rescaling (e.g. inverse class frequencies for imbalanced data).
    reduction : {'mean', 'sum', 'none'}
    label_smoothing : float in [0, 1]
    ignore_index : int
        Class-index targets equal to it are left out (loss, gradient and the mean's denominator); -100
        by default, as in PyTorch.
    """

    def __init__(
        self,
        weight: np.ndarray | None = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
        ignore_index: int = IGNORE_INDEX,
    ) -> None:
        super().__init__(reduction)
        if isinstance(label_smoothing, bool) or not (
            isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing <= 1.0
        ):
            raise InvalidOptionError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise InvalidOptionError(f"ignore_index must be an integer, got {ignore_index!r}")
        self.label_smoothing = float(label_smoothing)
        self.ignore_index = int(ignore_index)
        self.register_buffer("weight", _weight_buffer(weight, "weight"))

    def forward(self, logits: np.ndarray, target: np.ndarray) -> Any:
        return training_ops.cross_entropy(
            logits, target, self.weight, self.label_smoothing, self.reduction, self.ignore_index
        )

    def extra_repr(self) -> str:
        parts = [super().extra_repr()]
        parts += [f"label_smoothing={self.label_smoothing}"] if self.label_smoothing else []
        parts += [f"ignore_index={self.ignore_index}"] if self.ignore_index != IGNORE_INDEX else []
        return ", ".join(p for p in parts if p)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy per class (multi-label, AudioSet-style) from logits ``[..., C]``.

    Parameters
    ----------
    weight : array broadcastable to the logits, optional
        Rescales each element's loss.
    reduction : {'mean', 'sum', 'none'}
    pos_weight : array [shape=(C,)], optional
        Weight of the positive examples per class (``n_negative / n_positive`` balances a rare class).
    """

    def __init__(
        self, weight: np.ndarray | None = None, reduction: str = "mean", pos_weight: np.ndarray | None = None
    ) -> None:
        super().__init__(reduction)
        if weight is not None and np.asarray(weight).ndim == 0:
            raise ShapeError(f"weight must have at least one axis, got {weight!r}")
        weight_array = None if weight is None else np.array(weight)
        if weight_array is not None and not np.issubdtype(weight_array.dtype, np.floating):
            weight_array = weight_array.astype(np.float32)
        self.register_buffer("weight", weight_array)
        self.register_buffer("pos_weight", _weight_buffer(pos_weight, "pos_weight"))

    def forward(self, logits: np.ndarray, target: np.ndarray) -> Any:
        return training_ops.binary_cross_entropy_with_logits(
            logits, target, self.weight, self.pos_weight, self.reduction
        )


class MSELoss(_Loss):
    """Mean squared error between an input and a target of the same shape; ``reduction`` as the others."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__(reduction)

    def forward(self, input: np.ndarray, target: np.ndarray) -> Any:
        return training_ops.mse_loss(input, target, self.reduction)
