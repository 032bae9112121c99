"""Finite-difference gradient checks in float64, shared by the autograd tests.

``check_gradients(fn, *arrays)`` builds the scalar ``sum(fn(*tensors) * R)`` for a fixed random ``R`` (so
every output element matters, with distinct weights) and compares the gradients that backward puts in
each input's ``.grad`` with central differences, on every entry of small inputs or a random sample of
entries of larger ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from audioembed.nn import Tensor

EPS = 1e-6


def numeric_gradient(
    loss: Callable[[], float], array: np.ndarray, rng: np.random.Generator, max_entries: int
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of ``loss()`` with respect to entries of ``array`` (perturbed in place).

    Returns the flat indices probed and the derivative at each.
    """
    flat = array.reshape(-1)  # a view: perturbing it perturbs array
    count = flat.size
    indices = np.arange(count) if count <= max_entries else rng.choice(count, max_entries, replace=False)
    derivatives = np.empty(len(indices))
    for k, i in enumerate(indices):
        saved = flat[i]
        flat[i] = saved + EPS
        up = loss()
        flat[i] = saved - EPS
        down = loss()
        flat[i] = saved
        derivatives[k] = (up - down) / (2 * EPS)
    return indices, derivatives


def check_gradients(
    fn: Callable[..., Any],
    *arrays: np.ndarray,
    seed: int = 0,
    max_entries: int = 60,
    rtol: float = 1e-5,
    atol: float = 1e-7,
) -> list[np.ndarray]:
    """Assert that backward through ``fn(*Tensors)`` matches finite differences for every input.

    ``fn`` gets Tensors that require grad (float64) and returns a Tensor. Returns the analytic gradients.
    """
    rng = np.random.default_rng(seed)
    arrays = tuple(np.array(a, dtype=np.float64) for a in arrays)
    tensors = [Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*tensors)
    weights = rng.standard_normal(out.shape)
    (out * weights).sum().backward()
    grads = [t.grad for t in tensors]

    def loss() -> float:
        return float((np.asarray(fn(*(Tensor(a) for a in arrays)).data) * weights).sum())

    for position, (array, grad) in enumerate(zip(arrays, grads, strict=True)):
        assert grad is not None, f"no gradient reached input {position}"
        assert grad.shape == array.shape and grad.dtype == np.float64
        indices, numeric = numeric_gradient(loss, array, rng, max_entries)
        scale = max(np.abs(numeric).max(), 1.0)
        np.testing.assert_allclose(
            grad.reshape(-1)[indices], numeric, rtol=rtol, atol=atol * scale, err_msg=f"input {position}"
        )
    return grads
