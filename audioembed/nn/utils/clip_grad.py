"""Gradient clipping: by global norm (``clip_grad_norm_``) and by value (``clip_grad_value_``)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from audioembed.errors import GradientError, InvalidOptionError
from audioembed.nn.optim.optimizer import check_number, is_parameter

_EPS = 1e-6  # added to the norm before dividing, as PyTorch does: a zero gradient stays finite


def _gradients(parameters: Any) -> list[np.ndarray]:
    """The non-None ``.grad`` arrays of one parameter or an iterable of them."""
    if is_parameter(parameters):
        parameters = [parameters]
    elif not isinstance(parameters, Iterable):
        raise TypeError(
            f"parameters must be a parameter or an iterable of them, got {type(parameters).__name__}"
        )
    grads = []
    for param in parameters:
        if not is_parameter(param):
            raise TypeError(f"expected parameters (with .data and .grad), got {type(param).__name__}")
        if param.grad is not None:
            if not param.grad.flags.writeable:
                param.grad = np.array(param.grad, copy=True)
            grads.append(param.grad)
    return grads


def clip_grad_norm_(
    parameters: Any, max_norm: float, norm_type: float = 2.0, error_if_nonfinite: bool = False
) -> float:
    """Scale the gradients in place so that their global norm is at most ``max_norm``.

    The global norm is the ``norm_type``-norm of all gradients taken together (the norm of the per-gradient
    norms). When it exceeds ``max_norm``, every gradient is multiplied by ``max_norm / (norm + 1e-6)``, as in
    PyTorch. Parameters without a gradient are skipped.

    Parameters
    ----------
    parameters : Parameter or iterable of Parameter
        E.g. ``model.parameters()``.
    max_norm : float
        The largest norm allowed, >= 0.
    norm_type : float
        The p of the p-norm, > 0; ``float("inf")`` for the largest absolute value.
    error_if_nonfinite : bool
        Raise instead of clipping when the norm is NaN or infinite (the gradients are left untouched).

    Returns
    -------
    total_norm : float
        The global norm *before* clipping (0.0 when no parameter has a gradient).

    Raises
    ------
    GradientError
        The norm is not finite and ``error_if_nonfinite`` is set.
    InvalidOptionError
        ``max_norm`` < 0 or ``norm_type`` <= 0.
    """
    max_norm = check_number("max_norm", max_norm)
    norm_type = check_number("norm_type", norm_type)
    if norm_type == 0:
        raise InvalidOptionError(f"norm_type must be > 0, got {norm_type!r}")
    grads = _gradients(parameters)
    if not grads:
        return 0.0
    if norm_type == math.inf:
        total = max(float(np.max(np.abs(g), initial=0.0)) for g in grads)
    else:
        # Accumulate in float64: per-gradient norms first, then the norm of those (PyTorch's order).
        norms = np.array([np.linalg.norm(g.ravel().astype(np.float64), ord=norm_type) for g in grads])
        total = float(np.linalg.norm(norms, ord=norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise GradientError(
            f"the total {norm_type}-norm of the gradients is {total}: they hold NaN or inf, so clipping "
            "cannot make them usable (pass error_if_nonfinite=False to clip anyway)"
        )
    coefficient = min(max_norm / (total + _EPS), 1.0)
    if coefficient < 1.0 or not math.isfinite(total):
        with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in PyTorch: the caller chose to clip anyway
            for grad in grads:
                grad *= coefficient
    return total


def clip_grad_value_(parameters: Any, clip_value: float) -> None:
    """Clamp every gradient element into ``[-clip_value, clip_value]``, in place.

    Raises
    ------
    InvalidOptionError
        ``clip_value`` < 0.
    """
    clip_value = check_number("clip_value", clip_value)
    for grad in _gradients(parameters):
        np.clip(grad, -clip_value, clip_value, out=grad)
