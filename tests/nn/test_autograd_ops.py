"""Every differentiable Tensor operation against float64 finite differences, with broadcasting."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_gradients

from audioembed.nn import Tensor, functional

rng = np.random.default_rng(1234)


def r(*shape: int) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(*shape: int) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


BINARY = [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
]
BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((2, 3, 4), (4,)),
    ((3, 1), (1, 5)),
    ((4,), (2, 3, 4)),
    ((2, 1, 3), (5, 1)),
]


@pytest.mark.parametrize("name, op", BINARY)
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
def test_binary_operators_broadcast(name, op, shapes) -> None:
    a, b = r(*shapes[0]), positive(*shapes[1])
    check_gradients(op, a, b)


def test_operators_with_scalars_and_arrays_on_either_side() -> None:
    constant = r(3, 4)
    check_gradients(
        lambda a: 2.0 * a - 1.5 + a / 3 - constant * a + (constant - a) + 1 / (a * a + 1), r(3, 4)
    )
    check_gradients(lambda a: -a + a**3 + (a * a + 1) ** 0.5 + (a * a + 1) ** -1.5, r(5))
    t = Tensor(r(4))
    for result in (constant[0] + t, constant[0] * t, constant[0] - t, constant[0] / (t * t + 1)):
        assert isinstance(result, Tensor)


@pytest.mark.parametrize(
    "shapes",
    [
        ((3, 4), (4, 5)),
        ((2, 3, 4), (4, 2)),
        ((4,), (4, 3)),
        ((3, 4), (4,)),
        ((4,), (4,)),
        ((2, 1, 3, 4), (5, 4, 2)),
    ],
)
def test_matmul(shapes) -> None:
    check_gradients(lambda a, b: a @ b, r(*shapes[0]), r(*shapes[1]))


@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_sum_and_mean(axis, keepdims) -> None:
    x = r(2, 3, 4)
    check_gradients(lambda a: a.sum(axis=axis, keepdims=keepdims), x)
    check_gradients(lambda a: a.mean(axis=axis, keepdims=keepdims), x)
    np.testing.assert_allclose(
        Tensor(x).mean(axis=axis, keepdims=keepdims).data, x.mean(axis=axis, keepdims=keepdims)
    )


def test_shape_operations() -> None:
    x = r(2, 3, 4)
    check_gradients(lambda a: a.reshape(4, 6), x)
    check_gradients(lambda a: a.reshape((-1,)), x)
    check_gradients(lambda a: a.transpose(), x)
    check_gradients(lambda a: a.transpose(1, 2, 0), x)
    check_gradients(lambda a: a.transpose((2, 0, 1)), x)
    check_gradients(lambda a: a.swapaxes(0, 2), x)
    check_gradients(lambda a: a.T, r(3, 5))
    assert Tensor(x).swapaxes(0, 2).shape == (4, 3, 2)


@pytest.mark.parametrize(
    "index",
    [
        1,
        (slice(None), 2),
        (Ellipsis, slice(1, 3)),
        (slice(None, None, -1), None, 0),
        (np.array([0, 2, 2, 1]),),
    ],
)
def test_getitem_basic_and_advanced(index) -> None:
    check_gradients(lambda a: a[index], r(4, 3, 5))


def test_getitem_repeated_advanced_index_adds_gradients() -> None:
    x = Tensor(np.zeros(3), requires_grad=True)
    x[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 0.0, 1.0])
    logits = r(4, 5)
    targets = np.array([0, 4, 2, 2])
    check_gradients(lambda a: a[np.arange(4), Tensor(targets)], logits)


def test_elementwise_functions() -> None:
    check_gradients(lambda a: a.exp() + functional.exp(a * 0.5), r(3, 4))
    check_gradients(lambda a: a.log() + functional.log(a * 2), positive(3, 4))
    check_gradients(lambda a: functional.sigmoid(a) + a.sigmoid() * 2, r(3, 4) * 3)
    x = r(3, 4)
    x[np.abs(x) < 1e-3] = 0.5  # away from the kink at 0
    check_gradients(lambda a: functional.relu(a) + a.relu(), x)
    check_gradients(lambda a: functional.log_softmax(a), r(3, 5))
    check_gradients(lambda a: functional.log_softmax(a, axis=0), r(3, 5))
    x = Tensor(r(3), requires_grad=True)
    y = x.astype(np.float32)
    assert y.dtype == np.float32 and x.astype(np.float64) is x
    (y * 2).sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad, [2.0, 2.0, 2.0])


def test_functions_are_stable_and_match_numpy_on_arrays() -> None:
    big = np.array([[1000.0, 0.0, -1000.0]])
    np.testing.assert_allclose(functional.log_softmax(big), [[0.0, -1000.0, -2000.0]])
    np.testing.assert_allclose(functional.sigmoid(np.array([-1000.0, 0.0, 1000.0])), [0.0, 0.5, 1.0])
    x = r(4)
    assert isinstance(functional.exp(x), np.ndarray) and isinstance(functional.relu(x), np.ndarray)
    np.testing.assert_allclose(functional.exp(x), np.exp(x))
    assert functional.relu(Tensor(np.float32([-1, 2]))).dtype == np.float32


def test_power_takes_a_scalar_exponent_only() -> None:
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(TypeError, match=r"takes a scalar exponent, got Tensor"):
        _ = x ** Tensor(np.array(2.0))
    with pytest.raises(TypeError, match=r"takes a scalar exponent, got bool True"):
        _ = x**True
    (x**2).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 4.0])
