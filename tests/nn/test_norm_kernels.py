"""The normalisation and dropout kernels: forward definitions, and every backward against finite differences.

Shapes are drawn at random per seed; all gradient checks run in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from finite_diff import assert_grad_close, numerical_grad

from audioembed.errors import InvalidInputError, InvalidOptionError, ShapeError
from audioembed.nn import functional_norm as fn
from audioembed.nn.functional_dropout import check_probability, dropout_backward, dropout_forward

SEEDS = [0, 1, 2]


def _check_grads(forward, backward, arrays: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    """``backward(G)`` equals the numerical gradient of ``sum(forward() * G)`` for each named array."""
    probe = rng.standard_normal(forward().shape)
    analytic = backward(probe)
    for name, array in arrays.items():
        numeric = numerical_grad(lambda: float(np.sum(forward() * probe)), array)
        assert_grad_close(analytic[name], numeric, name)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_backward_matches_finite_differences(seed: int, training: bool) -> None:
    rng = np.random.default_rng(seed)
    shape = (
        int(rng.integers(2, 5)),
        *(int(s) for s in rng.integers(1, 4, size=seed % 3)),
        int(rng.integers(1, 4)),
    )
    c = shape[-1]
    x, weight, bias = rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)

    def forward() -> np.ndarray:
        # Copies of the running stats: the training forward updates them in place.
        return fn.batch_norm_forward(x, rm.copy(), rv.copy(), weight, bias, training, 0.1, 1e-5)[0]

    def backward(g: np.ndarray) -> dict[str, np.ndarray]:
        _, saved = fn.batch_norm_forward(x, rm.copy(), rv.copy(), weight, bias, training, 0.1, 1e-5)
        gx, gw, gb = fn.norm_backward(g, saved, (c,))
        return {"x": gx, "weight": gw, "bias": gb}

    _check_grads(forward, backward, {"x": x, "weight": weight, "bias": bias}, rng)


def test_batch_norm_forward_uses_batch_stats_and_updates_running_stats_unbiased() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 3, 4)) * 3 + 2  # [N, L, C]
    rm, rv = np.zeros(4), np.ones(4)
    y, _ = fn.batch_norm_forward(x, rm, rv, None, None, True, 0.25, 1e-5)
    flat = x.reshape(-1, 4)
    expected = (flat - flat.mean(0)) / np.sqrt(flat.var(0) + 1e-5)
    np.testing.assert_allclose(y.reshape(-1, 4), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(rm, 0.25 * flat.mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.75 + 0.25 * flat.var(0, ddof=1), rtol=1e-12)
    # Eval: the running statistics normalise, and nothing is updated.
    before = rm.copy(), rv.copy()
    y_eval, _ = fn.batch_norm_forward(x, rm, rv, None, np.full(4, 0.5), False, 0.25, 1e-5)
    np.testing.assert_allclose(y_eval, (x - rm) / np.sqrt(rv + 1e-5) + 0.5, rtol=1e-12)
    np.testing.assert_array_equal(rm, before[0])
    np.testing.assert_array_equal(rv, before[1])


def test_batch_norm_keeps_float32() -> None:
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    for training in (True, False):
        y, _ = fn.batch_norm_forward(
            x, rm, rv, np.ones(3, np.float32), np.zeros(3, np.float32), training, 0.1, 1e-5
        )
        assert y.dtype == np.float32
    assert rm.dtype == rv.dtype == np.float32


@pytest.mark.parametrize("seed", SEEDS)
def test_layer_norm_backward_matches_finite_differences(seed: int) -> None:
    rng = np.random.default_rng(seed)
    normalized = tuple(int(s) for s in rng.integers(2, 4, size=1 + seed % 2))
    shape = (*(int(s) for s in rng.integers(1, 4, size=1 + seed % 2)), *normalized)
    x, weight, bias = (
        rng.standard_normal(shape),
        rng.standard_normal(normalized),
        rng.standard_normal(normalized),
    )

    def backward(g: np.ndarray) -> dict[str, np.ndarray]:
        _, saved = fn.layer_norm_forward(x, normalized, weight, bias, 1e-5)
        gx, gw, gb = fn.norm_backward(g, saved, normalized)
        return {"x": gx, "weight": gw, "bias": gb}

    forward = lambda: fn.layer_norm_forward(x, normalized, weight, bias, 1e-5)[0]  # noqa: E731
    _check_grads(forward, backward, {"x": x, "weight": weight, "bias": bias}, rng)


def test_layer_norm_forward_normalises_each_example_over_trailing_axes() -> None:
    x = np.random.default_rng(1).standard_normal((3, 4, 5)) * 2 + 1
    y, _ = fn.layer_norm_forward(x, (4, 5), None, None, 1e-5)
    flat = x.reshape(3, -1)
    expected = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(y.reshape(3, -1), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("use_input_stats", [True, False])
def test_instance_norm_backward_matches_finite_differences(seed: int, use_input_stats: bool) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(2, 4, size=4))
    c = shape[-1]
    x, weight, bias = rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c)
    rm, rv = rng.standard_normal(c), rng.uniform(0.5, 2, c)

    def forward() -> np.ndarray:
        return fn.instance_norm_forward(x, rm.copy(), rv.copy(), weight, bias, use_input_stats, 0.1, 1e-5)[0]

    def backward(g: np.ndarray) -> dict[str, np.ndarray]:
        _, saved = fn.instance_norm_forward(x, rm.copy(), rv.copy(), weight, bias, use_input_stats, 0.1, 1e-5)
        gx, gw, gb = fn.norm_backward(g, saved, (c,))
        return {"x": gx, "weight": gw, "bias": gb}

    _check_grads(forward, backward, {"x": x, "weight": weight, "bias": bias}, rng)


def test_instance_norm_forward_per_example_and_channel_with_averaged_running_stats() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 4, 5)) + np.arange(5)
    rm, rv = np.zeros(5), np.ones(5)
    y, _ = fn.instance_norm_forward(x, rm, rv, None, None, True, 0.5, 1e-5)
    np.testing.assert_allclose(y.mean(axis=(1, 2)), 0, atol=1e-12)
    np.testing.assert_allclose(
        y.var(axis=(1, 2)), x.var(axis=(1, 2)) / (x.var(axis=(1, 2)) + 1e-5), rtol=1e-10
    )
    np.testing.assert_allclose(rm, 0.5 * x.mean(axis=(1, 2)).mean(0), rtol=1e-12)
    np.testing.assert_allclose(rv, 0.5 + 0.5 * x.var(axis=(1, 2), ddof=1).mean(0), rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: fn.batch_norm_forward(np.ones((1, 3)), None, None, None, None, True, 0.1, 1e-5),
            ShapeError,
            r"more than 1 value per channel, got input of shape \(1, 3\)",
        ),
        (
            lambda: fn.batch_norm_forward(np.ones(3), None, None, None, None, True, 0.1, 1e-5),
            ShapeError,
            r"\[N, \.\.\., C\], got shape \(3,\)",
        ),
        (
            lambda: fn.batch_norm_forward(np.ones((2, 3)), None, None, np.ones(4), None, True, 0.1, 1e-5),
            ShapeError,
            r"weight must have shape \(3,\) .* got \(4,\)",
        ),
        (
            lambda: fn.batch_norm_forward(np.ones((2, 3)), np.ones(3), None, None, None, True, 0.1, 1e-5),
            InvalidInputError,
            "both running_mean and running_var",
        ),
        (
            lambda: fn.layer_norm_forward(np.ones((2, 3)), (4,), None, None, 1e-5),
            ShapeError,
            r"\[\.\.\., 4\], got shape \(2, 3\)",
        ),
        (
            lambda: fn.instance_norm_forward(np.ones((2, 1, 1, 3)), None, None, None, None, True, 0.1, 1e-5),
            ShapeError,
            r"more than 1 spatial element .* \(2, 1, 1, 3\)",
        ),
        (
            lambda: fn.instance_norm_forward(np.ones((2, 3, 3)), None, None, None, None, True, 0.1, 1e-5),
            ShapeError,
            r"\[N, H, W, C\], got shape \(2, 3, 3\)",
        ),
        (
            lambda: fn.check_eps_momentum(0.0, 0.1),
            InvalidOptionError,
            "eps must be a positive number, got 0.0",
        ),
        (lambda: fn.check_eps_momentum(1e-5, 1.5), InvalidOptionError, r"momentum .* got 1\.5"),
    ],
)
def test_norm_kernels_reject_bad_input(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("p", [0.0, 0.3, 0.9, 1.0])
def test_dropout_is_inverted_and_its_backward_reuses_the_mask(p: float) -> None:
    x = np.random.default_rng(0).standard_normal((40, 50))

    def forward() -> np.ndarray:
        return dropout_forward(x, p, True, np.random.default_rng(7))[0]  # same seed, same mask

    y, mask = dropout_forward(x, p, True, np.random.default_rng(7))
    kept = y != 0
    if p < 1.0:
        np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)
        assert abs(1 - kept.mean() - p) < 0.05  # 2000 Bernoulli draws: within ~4 standard deviations
    else:
        assert not kept.any()
    probe = np.random.default_rng(1).standard_normal(x.shape)
    numeric = numerical_grad(lambda: float(np.sum(forward() * probe)), x)
    assert_grad_close(dropout_backward(probe, mask), numeric, "x")


def test_dropout_eval_is_identity_and_seeded_masks_repeat() -> None:
    x = np.ones((8, 8), np.float32)
    y, mask = dropout_forward(x, 0.5, False, np.random.default_rng(0))
    assert y is x and mask is None
    a = dropout_forward(x, 0.5, True, np.random.default_rng(3))[0]
    b = dropout_forward(x, 0.5, True, np.random.default_rng(3))[0]
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32


@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True, None])
def test_dropout_probability_is_checked(p: object) -> None:
    with pytest.raises(InvalidOptionError, match=f"in \\[0, 1\\], got {p!r}"):
        check_probability(p)  # type: ignore[arg-type]
