"""Loss kernels as forward/backward pairs, with PyTorch's exact formulas; the class axis is the LAST axis.

* **Cross-entropy** from logits ``[..., C]``, with integer class targets ``[...]`` or class-probability
  targets ``[..., C]``. Both cases reduce to one form: ``loss_i = -sum_c q[i, c] * log_softmax(x_i)[c]`` with
  a coefficient matrix ``q``. For class indices ``q = (1 - ε) w[y_i] onehot(y_i) + (ε / C) w``; the mean
  divides by ``sum_i w[y_i]`` (PyTorch normalises a weighted mean by the weights of the targets, the
  smoothing term included). For probabilities ``q = (t (1 - ε) + ε / C) w``; the mean divides by the
  number of examples. So one backward serves both: ``dloss_i/dx = softmax(x_i) sum_c q[i, c] - q[i]``.
* **Binary cross-entropy with logits** (multi-label): ``(1 - t) x - ((pw - 1) t + 1) log σ(x)``, times
  ``weight``; ``log σ(x) = min(x, 0) - log1p(exp(-|x|))`` never overflows.
* **MSE**: ``(x - t)²``.

``reduction`` is 'mean', 'sum' or 'none'. Targets are validated (shape, dtype, class range, finiteness) and
a bad one raises an error quoting the value and where it is. Class and positive weights are constants
(no gradient); targets of BCE, MSE and probability cross-entropy get a gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audioembed.errors import InvalidInputError, InvalidOptionError, ShapeError

REDUCTIONS = ("mean", "sum", "none")
IGNORE_INDEX = -100  # PyTorch's default: a class-index target of -100 is ignored


def check_reduction(reduction: str) -> str:
    """Return ``reduction`` after checking it is one of 'mean', 'sum', 'none'."""
    if reduction not in REDUCTIONS:
        raise InvalidOptionError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


def _check_logits(x: np.ndarray, what: str) -> None:
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidInputError(f"{what} expects floating-point input, got dtype {x.dtype}")
    if x.ndim < 1 or x.size == 0:
        raise ShapeError(f"{what} expects a non-empty input of shape [..., C], got shape {x.shape}")


def _check_finite_target(target: np.ndarray, what: str, shape: tuple[int, ...]) -> None:
    if not np.issubdtype(target.dtype, np.floating):
        raise InvalidInputError(f"{what} expects a floating-point target, got dtype {target.dtype}")
    if target.shape != shape:
        raise ShapeError(f"{what} expects a target of the input's shape {shape}, got shape {target.shape}")
    bad = ~np.isfinite(target)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidInputError(
            f"{what}: the target holds {float(target[where])!r} at index {where}; it must be finite"
        )


def _check_constant(value: np.ndarray | None, name: str, shape: tuple[int, ...], what: str) -> None:
    """``value`` (a weight) must broadcast to ``shape`` without growing it."""
    if value is None:
        return
    try:
        grown = np.broadcast_shapes(value.shape, shape)
    except ValueError:
        grown = None
    if grown != shape:
        raise ShapeError(
            f"{what}: {name} of shape {value.shape} does not broadcast to the input's shape {shape}"
        )


def _reduce(loss: np.ndarray, reduction: str, denominator: float | np.ndarray) -> np.ndarray:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total / denominator if reduction == "mean" else total


def _reduction_grad(
    grad: np.ndarray, reduction: str, denominator: float | np.ndarray, dtype: np.dtype
) -> np.ndarray:
    """The per-element factor that ``_reduce``'s output gradient becomes (broadcastable to the loss)."""
    grad = np.asarray(grad, dtype=dtype)
    return grad / denominator if reduction == "mean" else grad


def log_softmax(x: np.ndarray) -> np.ndarray:
    """``log(softmax(x))`` over the last axis, via the max-shifted log-sum-exp (no overflow)."""
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class CrossEntropySaved:
    """What :func:`cross_entropy_backward` needs."""

    log_probs: np.ndarray
    coefficients: np.ndarray  # q, [..., C]
    reduction: str
    denominator: float | np.ndarray
    smoothing_weight: (
        np.ndarray | None
    )  # (1 - ε) w, for the gradient of probability targets; None for indices
    ignored: np.ndarray | None = None  # [...] bool, targets equal to ignore_index; None for probabilities


def cross_entropy_forward(
    logits: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    ignore_index: int = IGNORE_INDEX,
) -> tuple[np.ndarray, CrossEntropySaved]:
    """Cross-entropy of ``logits`` against class indices or class probabilities.

    Parameters
    ----------
    logits : np.ndarray [shape=(..., C)], floating
    target : np.ndarray [shape=(...)] of integers in ``[0, C)``, or [shape=(..., C)] floating probabilities
    weight : np.ndarray [shape=(C,)] or None
        Per-class rescaling.
    label_smoothing : float in [0, 1]
    reduction : {'mean', 'sum', 'none'}
    ignore_index : int
        Class-index targets equal to it contribute nothing: their loss (and gradient) is 0 and the mean
        leaves them out of its denominator (all ignored: a NaN mean with zero gradients, as in PyTorch).
        With class probabilities it must be negative (PyTorch refuses a class to ignore there).

    Returns
    -------
    loss : np.ndarray, 0-d, or [shape=(...)] for 'none'
    saved : CrossEntropySaved
    """
    what = "cross_entropy"
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
        raise InvalidOptionError(f"ignore_index must be an integer, got {ignore_index!r}")
    _check_logits(logits, what)
    check_reduction(reduction)
    if isinstance(label_smoothing, bool) or not (
        isinstance(label_smoothing, (int, float)) and 0.0 <= label_smoothing <= 1.0
    ):
        raise InvalidOptionError(f"label_smoothing must be a number in [0, 1], got {label_smoothing!r}")
    n_classes = logits.shape[-1]
    dtype = logits.dtype
    if weight is not None:
        if weight.shape != (n_classes,):
            raise ShapeError(
                f"{what}: weight must have shape ({n_classes},) (one per class), got {weight.shape}"
            )
        weight = weight.astype(dtype, copy=False)
    eps = dtype.type(label_smoothing)
    class_weight = weight if weight is not None else np.ones(n_classes, dtype)
    log_probs = log_softmax(logits)
    if np.issubdtype(target.dtype, np.integer):
        kept = target != ignore_index
        target = _check_class_indices(np.where(kept, target, 0), logits.shape, kept)
        onehot_weight = np.zeros_like(logits)
        target_weight = np.where(kept, class_weight[target], 0).astype(dtype)  # w[y_i], 0 if ignored
        np.put_along_axis(onehot_weight, target[..., None], target_weight[..., None], axis=-1)
        coefficients = (1 - eps) * onehot_weight + (eps / n_classes) * class_weight * kept[..., None]
        denominator = target_weight.sum()
        smoothing_weight = None
        ignored = ~kept
    elif np.issubdtype(target.dtype, np.floating):
        if target.shape == logits.shape[:-1] and logits.ndim > 1:
            raise InvalidInputError(
                f"{what}: class indices must be integers, got dtype {target.dtype} of shape {target.shape} "
                f"(cast them, or give class probabilities of shape {logits.shape})"
            )
        if ignore_index >= 0:  # as PyTorch: a class to ignore means nothing for class probabilities
            raise InvalidOptionError(
                f"{what}: ignore_index ({ignore_index}) applies to class-index targets only, not to "
                "class probabilities"
            )
        _check_finite_target(target, what, logits.shape)
        ignored = None
        smoothing_weight = (1 - eps) * class_weight
        coefficients = (target.astype(dtype, copy=False) * (1 - eps) + eps / n_classes) * class_weight
        denominator = dtype.type(logits.size // n_classes)
    else:
        raise InvalidInputError(
            f"{what} expects integer class indices or floating class probabilities as target, "
            f"got dtype {target.dtype}"
        )
    loss = -(coefficients * log_probs).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):  # all-zero target weights give NaN, as in PyTorch
        value = _reduce(loss, reduction, denominator)
    saved = CrossEntropySaved(log_probs, coefficients, reduction, denominator, smoothing_weight, ignored)
    return value, saved


def _check_class_indices(target: np.ndarray, logits_shape: tuple[int, ...], kept: np.ndarray) -> np.ndarray:
    """``target`` as indices after checking its shape and, where ``kept``, its range."""
    n_classes = logits_shape[-1]
    if target.shape != logits_shape[:-1]:
        raise ShapeError(
            f"cross_entropy expects class indices of shape {logits_shape[:-1]} for logits of shape "
            f"{logits_shape}, got shape {target.shape}"
        )
    bad = ((target < 0) | (target >= n_classes)) & kept
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidInputError(
            f"cross_entropy: target class {int(target[where])} at index {where} is out of range "
            f"[0, {n_classes}) for {n_classes} classes"
        )
    return target.astype(np.intp, copy=False)


def cross_entropy_backward(
    grad: np.ndarray, saved: CrossEntropySaved
) -> tuple[np.ndarray, np.ndarray | None]:
    """Gradients ``(grad_logits, grad_target)``; ``grad_target`` is None for class indices."""
    dtype = saved.log_probs.dtype
    with np.errstate(divide="ignore", invalid="ignore"):  # a mean over no kept target divides by 0
        scale = _reduction_grad(grad, saved.reduction, saved.denominator, dtype)
        if saved.reduction == "none":
            scale = scale[..., None]
        q = saved.coefficients
        grad_logits = (np.exp(saved.log_probs) * q.sum(axis=-1, keepdims=True) - q) * scale
    if saved.ignored is not None and saved.ignored.any():
        grad_logits[saved.ignored] = 0  # as PyTorch, also when every target is ignored (0 · ∞ would be NaN)
    grad_target = None
    if saved.smoothing_weight is not None:
        grad_target = -(saved.smoothing_weight * saved.log_probs) * scale
    return grad_logits, grad_target


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    """``log σ(x) = min(x, 0) - log1p(exp(-|x|))``: exact in both tails, never overflows."""
    return np.minimum(x, 0) - np.log1p(np.exp(-np.abs(x)))


@dataclass(frozen=True)
class BCESaved:
    """What :func:`binary_cross_entropy_with_logits_backward` needs."""

    logits: np.ndarray
    target: np.ndarray
    weight: np.ndarray | None
    pos_weight: np.ndarray | None
    reduction: str


def binary_cross_entropy_with_logits_forward(
    logits: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    pos_weight: np.ndarray | None = None,
    reduction: str = "mean",
) -> tuple[np.ndarray, BCESaved]:
    """Sigmoid + binary cross-entropy in one stable step, for independent (multi-label) classes.

    Parameters
    ----------
    logits : np.ndarray [shape=(..., C)], floating
    target : np.ndarray [shape=logits.shape], floating, finite (usually 0/1; soft labels allowed)
    weight : np.ndarray broadcastable to logits.shape, or None
        Rescales each element's loss.
    pos_weight : np.ndarray broadcastable to logits.shape (usually [C]), or None
        Weight of the positive term per class (> 1 favours recall).
    reduction : {'mean', 'sum', 'none'}

    Returns
    -------
    loss : np.ndarray, 0-d, or [shape=logits.shape] for 'none'
    saved : BCESaved
    """
    what = "binary_cross_entropy_with_logits"
    _check_logits(logits, what)
    check_reduction(reduction)
    _check_finite_target(target, what, logits.shape)
    _check_constant(weight, "weight", logits.shape, what)
    _check_constant(pos_weight, "pos_weight", logits.shape, what)
    dtype = logits.dtype
    target = target.astype(dtype, copy=False)
    weight = None if weight is None else weight.astype(dtype, copy=False)
    pos_weight = None if pos_weight is None else pos_weight.astype(dtype, copy=False)
    log_weight = 1 if pos_weight is None else (pos_weight - 1) * target + 1
    loss = (1 - target) * logits - log_weight * _log_sigmoid(logits)
    if weight is not None:
        loss = loss * weight
    value = _reduce(loss, reduction, dtype.type(loss.size))
    return value, BCESaved(logits, target, weight, pos_weight, reduction)


def binary_cross_entropy_with_logits_backward(
    grad: np.ndarray, saved: BCESaved
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients ``(grad_logits, grad_target)``.

    ``d/dx = (1 - t) - lw σ(-x)`` and ``d/dt = -x - (pw - 1) log σ(x)``, times ``weight``.
    """
    x, t = saved.logits, saved.target
    scale = _reduction_grad(grad, saved.reduction, x.dtype.type(x.size), x.dtype)
    if saved.weight is not None:
        scale = scale * saved.weight
    log_weight = 1 if saved.pos_weight is None else (saved.pos_weight - 1) * t + 1
    grad_logits = ((1 - t) - log_weight * np.exp(_log_sigmoid(-x))) * scale
    grad_target = -x if saved.pos_weight is None else -x - (saved.pos_weight - 1) * _log_sigmoid(x)
    return grad_logits, np.broadcast_to(grad_target * scale, x.shape)


@dataclass(frozen=True)
class MSESaved:
    """What :func:`mse_loss_backward` needs."""

    diff: np.ndarray
    reduction: str


def mse_loss_forward(
    input: np.ndarray, target: np.ndarray, reduction: str = "mean"
) -> tuple[np.ndarray, MSESaved]:
    """Squared error ``(input - target)²``, element-wise, reduced.

    Parameters
    ----------
    input : np.ndarray [shape=(...)], floating
    target : np.ndarray [shape=input.shape], floating, finite
    reduction : {'mean', 'sum', 'none'}

    Returns
    -------
    loss : np.ndarray, 0-d, or [shape=input.shape] for 'none'
    saved : MSESaved
    """
    what = "mse_loss"
    if not np.issubdtype(input.dtype, np.floating):
        raise InvalidInputError(f"{what} expects floating-point input, got dtype {input.dtype}")
    if input.size == 0:
        raise ShapeError(f"{what} expects a non-empty input, got shape {input.shape}")
    check_reduction(reduction)
    _check_finite_target(target, what, input.shape)
    diff = input - target.astype(input.dtype, copy=False)
    value = _reduce(diff * diff, reduction, input.dtype.type(input.size))
    return value, MSESaved(diff, reduction)


def mse_loss_backward(grad: np.ndarray, saved: MSESaved) -> tuple[np.ndarray, np.ndarray]:
    """Gradients ``(grad_input, grad_target)`` = ``±2 (input - target)`` times the reduction's factor."""
    diff = saved.diff
    grad_input = 2 * diff * _reduction_grad(grad, saved.reduction, diff.dtype.type(diff.size), diff.dtype)
    return grad_input, -grad_input
