"""The train/eval ops and losses as public functions (re-exported by :mod:`audioembed.nn.functional`).

Each op checks its options and calls one :class:`~audioembed.nn.autograd.Function` of
:mod:`training_functions`, i.e. one kernel pair of :mod:`functional_norm`, :mod:`functional_dropout` or
:mod:`functional_loss`. Given plain ndarrays an op computes the forward only and returns an ndarray (a
loss reduced with 'mean' or 'sum' returns a Python ``float``); no graph is ever recorded on that path.
Given a :class:`~audioembed.nn.Tensor` (input, target, or a Parameter as weight) it returns a Tensor,
with a graph when grad mode is on and some Tensor argument requires grad; a reduced loss is then a 0-d
Tensor to call ``backward()`` on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audioembed.errors import InvalidInputError
from audioembed.nn import functional_norm as fn
from audioembed.nn import training_functions
from audioembed.nn.autograd import Tensor
from audioembed.nn.functional_dropout import check_probability
from audioembed.nn.functional_loss import IGNORE_INDEX

# Draws the masks of dropout() calls that pass no generator; seeded from the OS, like torch's default.
_DEFAULT_RNG = np.random.default_rng()


def _array(value: object, name: str) -> np.ndarray | Tensor | None:
    """``value`` kept when a Tensor (Parameters are Tensors) or None, else as an ndarray."""
    if value is None or isinstance(value, Tensor):
        return value
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"{name} must be an array, got {type(value).__name__}") from e


def _constant(value: object, name: str) -> np.ndarray | None:
    """Running statistics and class weights: plain arrays, never differentiated (a Tensor's data)."""
    return value.data if isinstance(value, Tensor) else _array(value, name)


def _floating(x: object, name: str) -> np.ndarray | Tensor:
    array = _array(x, name)
    if not np.issubdtype(array.dtype, np.floating):
        raise InvalidInputError(f"{name} must be a floating-point array, got dtype {array.dtype}")
    return array


def _loss_value(value: np.ndarray | Tensor, reduction: str) -> float | np.ndarray | Tensor:
    """A float for an ndarray loss reduced to one number; anything else (Tensor, 'none') as it is."""
    return float(value) if reduction != "none" and not isinstance(value, Tensor) else value


def dropout(
    x: np.ndarray, p: float = 0.5, training: bool = True, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Inverted dropout: zero each element with probability ``p``, scale the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    x : np.ndarray [shape=(...)], floating
    p : float in [0, 1]
    training : bool
        False returns ``x`` unchanged.
    rng : np.random.Generator, optional
        Draws the mask; pass a seeded one for a reproducible run.
    """
    p = check_probability(p)
    x = _floating(x, "dropout input")
    if not training or p == 0.0:
        return x  # the identity: nothing to draw, nothing to record
    return training_functions.DropoutFunction.apply(x, p, rng or _DEFAULT_RNG)


def batch_norm(
    x: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> np.ndarray:
    """Batch norm of channel-last ``x`` [N, ..., C] per channel (kernel: ``batch_norm_forward``).

    In training the batch statistics normalise and the running statistics (if given) are updated in
    place with ``momentum`` and the unbiased batch variance; otherwise the running statistics normalise.
    """
    fn.check_eps_momentum(eps, momentum)
    return training_functions.BatchNormFunction.apply(
        _floating(x, "batch_norm input"),
        _array(weight, "weight"),
        _array(bias, "bias"),
        _constant(running_mean, "running_mean"),
        _constant(running_var, "running_var"),
        training,
        momentum,
        eps,
    )


def layer_norm(
    x: np.ndarray,
    normalized_shape: int | Sequence[int],
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    eps: float = 1e-5,
) -> np.ndarray:
    """Layer norm of ``x`` [..., *normalized_shape] over its trailing ``normalized_shape`` axes."""
    fn.check_eps_momentum(eps, None)
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    return training_functions.LayerNormFunction.apply(
        _floating(x, "layer_norm input"), _array(weight, "weight"), _array(bias, "bias"), shape, eps
    )


def instance_norm(
    x: np.ndarray,
    running_mean: np.ndarray | None = None,
    running_var: np.ndarray | None = None,
    weight: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    use_input_stats: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> np.ndarray:
    """Instance norm of NHWC ``x`` per example and channel over height and width."""
    fn.check_eps_momentum(eps, momentum)
    return training_functions.InstanceNormFunction.apply(
        _floating(x, "instance_norm input"),
        _array(weight, "weight"),
        _array(bias, "bias"),
        _constant(running_mean, "running_mean"),
        _constant(running_var, "running_var"),
        use_input_stats,
        momentum,
        eps,
    )


def cross_entropy(
    logits: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
    ignore_index: int = IGNORE_INDEX,
) -> float | np.ndarray:
    """Cross-entropy from ``logits`` [..., C] against class indices [...] or class probabilities [..., C].

    PyTorch's formulas: with class ``weight`` the mean is normalised by the summed weights of the target
    classes; ``label_smoothing`` ε mixes ``(1 - ε)`` of the target with ε spread uniformly over the
    classes (weighted likewise); class-index targets equal to ``ignore_index`` (default -100, as in
    PyTorch) count for nothing, in the loss, the gradient and the mean's denominator. See
    :mod:`audioembed.nn.functional_loss` for the exact form.

    Returns (ndarray inputs) a ``float`` for 'mean' / 'sum', an ndarray [...] for 'none'; a Tensor when
    a Tensor is involved.
    """
    value = training_functions.CrossEntropyFunction.apply(
        _array(logits, "logits"),
        _array(target, "target"),
        _constant(weight, "weight"),
        label_smoothing,
        reduction,
        ignore_index,
    )
    return _loss_value(value, reduction)


def binary_cross_entropy_with_logits(
    logits: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray | None = None,
    pos_weight: np.ndarray | None = None,
    reduction: str = "mean",
) -> float | np.ndarray:
    """Per-class sigmoid + binary cross-entropy (multi-label), stable for any logit.

    Returns (ndarray inputs) a ``float`` for 'mean' / 'sum', an ndarray of the logits' shape for 'none';
    a Tensor when a Tensor is involved.
    """
    value = training_functions.BCEWithLogitsFunction.apply(
        _array(logits, "logits"),
        _array(target, "target"),
        _constant(weight, "weight"),
        _constant(pos_weight, "pos_weight"),
        reduction,
    )
    return _loss_value(value, reduction)


def mse_loss(input: np.ndarray, target: np.ndarray, reduction: str = "mean") -> float | np.ndarray:
    """Mean (or summed, or element-wise) squared error; ``target`` must have ``input``'s shape."""
    value = training_functions.MSEFunction.apply(_array(input, "input"), _array(target, "target"), reduction)
    return _loss_value(value, reduction)
