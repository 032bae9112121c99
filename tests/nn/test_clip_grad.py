"""Gradient clipping: by norm and by value, the no-gradient and non-finite cases, bad options."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.errors import GradientError, InvalidOptionError
from audioembed.nn import Linear, Parameter
from audioembed.nn.utils import clip_grad_norm_, clip_grad_value_


def with_grad(grad: np.ndarray | None, shape: tuple[int, ...] = (2,)) -> Parameter:
    param = Parameter(np.zeros(shape if grad is None else grad.shape))
    param.grad = grad
    return param


def test_global_norm_is_taken_over_all_gradients_and_scaled_in_place() -> None:
    a, b = with_grad(np.array([3.0, 0.0])), with_grad(np.array([[0.0], [4.0]]))
    grad = a.grad
    total = clip_grad_norm_([a, b, with_grad(None)], max_norm=1.0)
    assert total == 5.0
    assert a.grad is grad  # in place
    np.testing.assert_allclose(a.grad, [3.0 / (5.0 + 1e-6), 0.0])
    np.testing.assert_allclose(np.sqrt((a.grad**2).sum() + (b.grad**2).sum()), 1.0, rtol=1e-6)


def test_a_single_parameter_and_a_module_generator_are_accepted() -> None:
    p = with_grad(np.array([0.3, 0.4]))
    assert clip_grad_norm_(p, max_norm=10.0) == pytest.approx(0.5)
    np.testing.assert_array_equal(p.grad, [0.3, 0.4])  # under the limit: unchanged
    layer = Linear(2, 2)
    assert clip_grad_norm_(layer.parameters(), 1.0) == 0.0  # no gradients yet


def test_non_finite_gradients_raise_only_when_asked() -> None:
    p = with_grad(np.array([np.inf, 1.0]))
    with pytest.raises(GradientError, match=r"total 2\.0-norm of the gradients is inf"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad, [np.inf, 1.0])  # untouched
    assert clip_grad_norm_([p], 1.0) == np.inf
    assert np.isnan(p.grad[0]) and p.grad[1] == 0.0  # PyTorch's result: inf * 0 and 1 * 0


def test_read_only_gradients_are_replaced_not_written() -> None:
    grad = np.array([6.0, 8.0])
    grad.flags.writeable = False
    p = with_grad(grad)
    clip_grad_norm_([p], 5.0)
    np.testing.assert_array_equal(grad, [6.0, 8.0])
    np.testing.assert_allclose(p.grad, [3.0, 4.0], rtol=1e-6)


def test_clip_grad_value_clamps_each_element() -> None:
    p = with_grad(np.array([-3.0, 0.2, 9.0]))
    clip_grad_value_([p, with_grad(None)], 1.0)
    np.testing.assert_array_equal(p.grad, [-1.0, 0.2, 1.0])


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda p: clip_grad_norm_(p, -1.0), InvalidOptionError, "invalid max_norm: -1.0"),
        (
            lambda p: clip_grad_norm_(p, 1.0, norm_type=0),
            InvalidOptionError,
            "norm_type must be > 0, got 0.0",
        ),
        (lambda p: clip_grad_norm_(p, 1.0, norm_type=-2), InvalidOptionError, "invalid norm_type: -2"),
        (lambda p: clip_grad_value_(p, -0.5), InvalidOptionError, "invalid clip_value: -0.5"),
        (lambda p: clip_grad_norm_(3.0, 1.0), TypeError, "parameter or an iterable of them, got float"),
        (lambda p: clip_grad_norm_([np.ones(2)], 1.0), TypeError, "expected parameters .* got ndarray"),
    ],
)
def test_bad_arguments(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call([with_grad(np.ones(2))])
