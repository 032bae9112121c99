"""Inverted dropout as a forward/backward pair of kernels.

In training every element is zeroed with probability ``p`` and the survivors are scaled by ``1 / (1 - p)``,
so the expected activation is unchanged and evaluation needs no rescaling (identity). The mask is drawn
from a caller-supplied :class:`numpy.random.Generator`, so a seeded run is reproducible.
"""

from __future__ import annotations

import numpy as np

from audioembed.errors import InvalidOptionError


def check_probability(p: float) -> float:
    """Return ``p`` as a float after checking it is a number in ``[0, 1]``."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise InvalidOptionError(f"dropout probability must be a number in [0, 1], got {p!r}")
    return float(p)


def dropout_mask(shape: tuple[int, ...], p: float, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """The scaled keep-mask: ``1 / (1 - p)`` where kept (probability ``1 - p``), 0 where dropped.

    ``p == 1`` drops everything (an all-zero mask, not a division by zero).
    """
    if p >= 1.0:
        return np.zeros(shape, dtype)
    keep = rng.random(shape, dtype=np.float64 if dtype == np.float64 else np.float32) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def dropout_forward(
    x: np.ndarray, p: float, training: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """Inverted dropout of ``x`` (any shape, floating).

    Returns
    -------
    y : np.ndarray [shape=x.shape]
        ``x`` itself when not ``training`` or ``p == 0`` (no mask is drawn then).
    mask : np.ndarray [shape=x.shape] or None
        The scaled keep-mask for :func:`dropout_backward`; None when ``y`` is ``x``.
    """
    if not training or p == 0.0:
        return x, None
    mask = dropout_mask(x.shape, p, x.dtype, rng)
    return x * mask, mask


def dropout_backward(grad_y: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Gradient of :func:`dropout_forward`: the same mask applied to the incoming gradient."""
    return grad_y if mask is None else grad_y * mask
