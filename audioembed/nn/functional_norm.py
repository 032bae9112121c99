"""Normalisation kernels as forward/backward pairs: batch, layer and instance norm over NHWC arrays.

Every norm standardises ``x`` over some axes (``x_hat = (x - mean) * inv_std``) and then applies a
per-feature affine map (``y = x_hat * weight + bias``); they differ only in the axes. So one pair of kernels
(:func:`normalize` / :func:`normalize_backward`) does the statistics and one pair (:func:`affine` /
:func:`affine_backward`) the affine map, and the three norms are thin compositions of them. Arrays in,
arrays out, the input's floating dtype kept; the forward returns what its backward needs, so the pairs
serve both the no-graph inference path and the autograd ``Function`` wrappers. Running statistics are
updated in place, with PyTorch's formulas (the running variance takes the *unbiased* batch variance).

Each backward has a float64 finite-difference test in ``tests/nn/test_norm_kernels.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audioembed.errors import InvalidInputError, InvalidOptionError, ShapeError

Axes = tuple[int, ...]


@dataclass(frozen=True)
class NormSaved:
    """What a norm's backward needs from its forward (arrays are keepdims-shaped, broadcastable to ``x``).

    ``batch_stats`` is False when the forward used running statistics (eval): then ``mean``/``inv_std`` are
    constants and the input gradient is a plain rescaling.
    """

    x_hat: np.ndarray
    inv_std: np.ndarray
    weight: np.ndarray | None
    stat_axes: Axes
    param_axes: Axes
    batch_stats: bool


def check_eps_momentum(eps: float, momentum: float | None) -> None:
    """Raise :class:`InvalidOptionError` for ``eps <= 0`` or a momentum outside ``[0, 1]``."""
    if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and eps > 0):
        raise InvalidOptionError(f"eps must be a positive number, got {eps!r}")
    if momentum is not None and not (
        isinstance(momentum, (int, float)) and not isinstance(momentum, bool) and 0.0 <= momentum <= 1.0
    ):
        raise InvalidOptionError(f"momentum must be a number in [0, 1] or None, got {momentum!r}")


def normalize(x: np.ndarray, axes: Axes, eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Standardise ``x`` over ``axes`` with its own statistics.

    Parameters
    ----------
    x : np.ndarray [shape=(...)], floating
    axes : tuple of int
        Axes the statistics are taken over (the others index independent groups).
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    x_hat : np.ndarray [shape=x.shape]
    mean, var, inv_std : np.ndarray [shape=x.shape with ``axes`` set to 1]
        The group means, *biased* variances (divided by the group size) and ``1 / sqrt(var + eps)``.
    """
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    # Two passes (mean, then mean of squared deviations): no cancellation, unlike E[x²] - E[x]².
    var = np.mean(centered * centered, axis=axes, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + x.dtype.type(eps))
    return centered * inv_std, mean, var, inv_std


def normalize_backward(
    grad_x_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axes: Axes
) -> np.ndarray:
    """Gradient of :func:`normalize`'s ``x_hat`` with respect to ``x`` (the statistics depend on ``x`` too).

    ``dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat))`` with the means over ``axes``.
    """
    mean_g = grad_x_hat.mean(axis=axes, keepdims=True)
    mean_gx = np.mean(grad_x_hat * x_hat, axis=axes, keepdims=True)
    return inv_std * (grad_x_hat - mean_g - x_hat * mean_gx)


def affine(x_hat: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None) -> np.ndarray:
    """``x_hat * weight + bias``, each optional; ``weight``/``bias`` broadcast over leading axes."""
    y = x_hat * weight if weight is not None else x_hat
    return y + bias if bias is not None else y


def affine_backward(
    grad_y: np.ndarray,
    x_hat: np.ndarray,
    weight: np.ndarray | None,
    param_axes: Axes,
    param_shape: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`affine`: ``(grad_x_hat, grad_weight, grad_bias)``, summed over ``param_axes``."""
    grad_x_hat = grad_y * weight if weight is not None else grad_y
    grad_weight = np.sum(grad_y * x_hat, axis=param_axes).reshape(param_shape)
    grad_bias = np.sum(grad_y, axis=param_axes).reshape(param_shape)
    return grad_x_hat, grad_weight, grad_bias


def _check_features(
    x: np.ndarray, what: str, param: np.ndarray | None, name: str, shape: tuple[int, ...]
) -> None:
    if param is not None and tuple(param.shape) != shape:
        raise ShapeError(
            f"{what}: {name} must have shape {shape} for an input of shape {x.shape}, got {param.shape}"
        )


def _update_running(
    running_mean: np.ndarray,
    running_var: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    count: int,
    momentum: float,
) -> None:
    """PyTorch's in-place update ``r = (1 - m) r + m * stat``, variance unbiased by ``n / (n - 1)``."""
    unbiased = var * (count / (count - 1))
    running_mean *= 1.0 - momentum
    running_mean += momentum * mean.astype(running_mean.dtype, copy=False)
    running_var *= 1.0 - momentum
    running_var += momentum * unbiased.astype(running_var.dtype, copy=False)


def _check_channel_params(
    x: np.ndarray,
    what: str,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
) -> None:
    """Every per-channel array given must be ``[C]``; the running statistics come both or neither."""
    channels = x.shape[-1]
    for name, param in (
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        _check_features(x, what, param, name, (channels,))
    if (running_mean is None) != (running_var is None):
        raise InvalidInputError(f"{what} takes both running_mean and running_var, or neither")


def batch_norm_forward(
    x: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[np.ndarray, NormSaved]:
    """Batch norm of channel-last ``x``: statistics per channel (last axis) over every other axis.

    Parameters
    ----------
    x : np.ndarray [shape=(N, ..., C)], floating
    running_mean, running_var : np.ndarray [shape=(C,)] or None
        Used instead of the batch statistics when ``training`` is False; updated in place (momentum
        ``momentum``, unbiased variance) when ``training`` is True. Both or neither.
    weight, bias : np.ndarray [shape=(C,)] or None
    training : bool
        Batch statistics (True) or running statistics (False; requires them).
    momentum, eps : float

    Returns
    -------
    y : np.ndarray [shape=x.shape]
    saved : NormSaved
        For :func:`batch_norm_backward`.
    """
    if x.ndim < 2:
        raise ShapeError(f"batch_norm expects input of shape [N, ..., C], got shape {x.shape}")
    channels = x.shape[-1]
    _check_channel_params(x, "batch_norm", weight, bias, running_mean, running_var)
    axes = tuple(range(x.ndim - 1))
    if training or running_mean is None:
        count = x.size // channels if channels else 0
        if count <= 1:
            raise ShapeError(
                f"batch_norm in training needs more than 1 value per channel, got input of shape {x.shape}"
            )
        x_hat, mean, var, inv_std = normalize(x, axes, eps)
        if training and running_mean is not None:
            _update_running(running_mean, running_var, mean.reshape(-1), var.reshape(-1), count, momentum)
        batch_stats = True
    else:
        inv_std = (1.0 / np.sqrt(running_var + eps)).astype(x.dtype, copy=False)
        x_hat = (x - running_mean.astype(x.dtype, copy=False)) * inv_std
        batch_stats = False
    return affine(x_hat, weight, bias), NormSaved(x_hat, inv_std, weight, axes, axes, batch_stats)


def norm_backward(
    grad_y: np.ndarray, saved: NormSaved, param_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(grad_x, grad_weight, grad_bias)`` of any norm here, from its :class:`NormSaved`."""
    grad_x_hat, grad_weight, grad_bias = affine_backward(
        grad_y, saved.x_hat, saved.weight, saved.param_axes, param_shape
    )
    if saved.batch_stats:
        grad_x = normalize_backward(grad_x_hat, saved.x_hat, saved.inv_std, saved.stat_axes)
    else:
        grad_x = grad_x_hat * saved.inv_std
    return grad_x, grad_weight, grad_bias


def layer_norm_forward(
    x: np.ndarray,
    normalized_shape: tuple[int, ...],
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    eps: float,
) -> tuple[np.ndarray, NormSaved]:
    """Layer norm: statistics per example over the trailing ``normalized_shape`` axes.

    Parameters
    ----------
    x : np.ndarray [shape=(..., *normalized_shape)], floating
    normalized_shape : tuple of int
    weight, bias : np.ndarray [shape=normalized_shape] or None
    eps : float

    Returns
    -------
    y : np.ndarray [shape=x.shape]
    saved : NormSaved
    """
    k = len(normalized_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k :]) != tuple(normalized_shape):
        raise ShapeError(
            f"layer_norm expects input of shape [..., {', '.join(map(str, normalized_shape))}], "
            f"got shape {x.shape}"
        )
    _check_features(x, "layer_norm", weight, "weight", tuple(normalized_shape))
    _check_features(x, "layer_norm", bias, "bias", tuple(normalized_shape))
    stat_axes = tuple(range(x.ndim - k, x.ndim))
    x_hat, _, _, inv_std = normalize(x, stat_axes, eps)
    param_axes = tuple(range(x.ndim - k))
    return affine(x_hat, weight, bias), NormSaved(x_hat, inv_std, weight, stat_axes, param_axes, True)


def instance_norm_forward(
    x: np.ndarray,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    use_input_stats: bool,
    momentum: float,
    eps: float,
) -> tuple[np.ndarray, NormSaved]:
    """Instance norm of NHWC images: statistics per example and channel over height and width.

    When ``use_input_stats`` and running statistics are given, they are updated in place as PyTorch does:
    with the batch average of the per-instance means and unbiased variances. When not
    ``use_input_stats``, the running statistics normalise instead (eval with ``track_running_stats``).

    Parameters
    ----------
    x : np.ndarray [shape=(N, H, W, C)], floating
    running_mean, running_var : np.ndarray [shape=(C,)] or None
    weight, bias : np.ndarray [shape=(C,)] or None
    use_input_stats : bool
    momentum, eps : float

    Returns
    -------
    y : np.ndarray [shape=x.shape]
    saved : NormSaved
    """
    if x.ndim != 4:
        raise ShapeError(f"instance_norm expects input of shape [N, H, W, C], got shape {x.shape}")
    _check_channel_params(x, "instance_norm", weight, bias, running_mean, running_var)
    param_axes = (0, 1, 2)
    if use_input_stats or running_mean is None:
        count = x.shape[1] * x.shape[2]
        if count <= 1:
            raise ShapeError(
                f"instance_norm needs more than 1 spatial element per channel, got input of shape {x.shape}"
            )
        x_hat, mean, var, inv_std = normalize(x, (1, 2), eps)
        if running_mean is not None:
            # Each instance updates its own copy of the running stats; the copies are then averaged.
            _update_running(
                running_mean,
                running_var,
                mean.mean(axis=(0, 1, 2)),
                var.mean(axis=(0, 1, 2)),
                count,
                momentum,
            )
        return affine(x_hat, weight, bias), NormSaved(x_hat, inv_std, weight, (1, 2), param_axes, True)
    inv_std = (1.0 / np.sqrt(running_var + eps)).astype(x.dtype, copy=False)
    x_hat = (x - running_mean.astype(x.dtype, copy=False)) * inv_std
    return affine(x_hat, weight, bias), NormSaved(x_hat, inv_std, weight, (1, 2), param_axes, False)
