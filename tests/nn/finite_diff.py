"""Central finite differences in float64: the twin every hand-written backward is checked against."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def numerical_grad(fn: Callable[[], float], array: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """``d fn() / d array`` by central differences, perturbing ``array`` in place one element at a time.

    ``fn`` reads ``array`` (a float64 array it closes over) and returns a scalar.
    """
    grad = np.zeros(array.shape, np.float64)
    flat, out = array.reshape(-1), grad.reshape(-1)  # views: writes reach ``array``
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + step
        upper = fn()
        flat[i] = saved - step
        lower = fn()
        flat[i] = saved
        out[i] = (upper - lower) / (2 * step)
    return grad


def assert_grad_close(analytic: np.ndarray, numeric: np.ndarray, what: str) -> None:
    """Analytic and numerical gradients agree to finite-difference accuracy (float64, step 1e-6)."""
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7, err_msg=what)
