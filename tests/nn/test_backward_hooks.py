"""Module backward hooks with PyTorch's full backward hook semantics (saliency maps: tests/vggish)."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.errors import GradientError
from audioembed.nn import Linear, ReLU, Sequential, Tensor


def net() -> Sequential:
    rng = np.random.default_rng(0)
    return Sequential(Linear(4, 3, rng=rng), ReLU(), Linear(3, 2, rng=rng)).double()


def test_pre_hook_then_full_hook_see_the_gradients_around_a_module() -> None:
    model = net()
    calls: list[tuple] = []
    model[2].register_full_backward_pre_hook(lambda m, g_out: calls.append(("pre", m, g_out)))
    model[2].register_full_backward_hook(lambda m, g_in, g_out: calls.append(("full", m, g_in, g_out)))
    x = Tensor(np.random.default_rng(1).standard_normal((5, 4)), requires_grad=True)
    out = model(x)
    seed = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(seed)
    assert [c[0] for c in calls] == ["pre", "full"]
    _, module, grad_output = calls[0]
    assert module is model[2] and isinstance(grad_output, tuple)
    np.testing.assert_array_equal(grad_output[0], seed)
    _, _, grad_input, grad_output_again = calls[1]
    np.testing.assert_allclose(grad_input[0], seed @ model[2].weight.data.T)  # d out / d (module input)
    np.testing.assert_array_equal(grad_output_again[0], seed)


def test_hooks_returning_a_value_replace_the_gradient() -> None:
    model = net()
    x_data = np.random.default_rng(3).standard_normal((5, 4))
    plain = Tensor(x_data, requires_grad=True)
    model(plain).sum().backward()
    reference = plain.grad.copy()
    model.zero_grad()

    pre = model[2].register_full_backward_pre_hook(lambda m, g_out: (g_out[0] * 2,))
    doubled = Tensor(x_data, requires_grad=True)
    model(doubled).sum().backward()
    np.testing.assert_allclose(doubled.grad, 2 * reference)
    pre.remove()

    full = model[0].register_full_backward_hook(lambda m, g_in, g_out: (np.zeros_like(g_in[0]),))
    zeroed = Tensor(x_data, requires_grad=True)
    model(zeroed).sum().backward()
    assert not zeroed.grad.any() and model[0].weight.grad is not None
    full.remove()
    again = Tensor(x_data, requires_grad=True)
    model(again).sum().backward()
    np.testing.assert_allclose(again.grad, reference)


def test_a_hook_returning_a_wrong_shape_is_a_gradient_error() -> None:
    model = net()
    model[2].register_full_backward_pre_hook(lambda m, g_out: (np.ones(3),))
    with pytest.raises(
        GradientError, match=r"pre-hook '<lambda>' of Linear returned .*shape \(3,\), expected \(5, 2\)"
    ):
        model(Tensor(np.ones((5, 4)), requires_grad=True)).sum().backward()
    model = net()
    model[0].register_full_backward_hook(lambda m, g_in, g_out: (np.ones(4), np.ones(4)))
    with pytest.raises(
        GradientError, match=r"full backward hook '<lambda>' of Linear returned 2 gradient\(s\), expected 1"
    ):
        model(Tensor(np.ones((5, 4)), requires_grad=True)).sum().backward()


def test_grad_input_is_none_for_an_input_that_does_not_require_grad() -> None:
    model = net()
    seen: list[tuple] = []
    model[0].register_full_backward_hook(lambda m, g_in, g_out: seen.append((g_in, g_out)))
    model(Tensor(np.ones((2, 4)))).sum().backward()  # a plain batch: only the parameters need gradients
    (grad_input, grad_output) = seen[0]
    assert grad_input == (None,) and grad_output[0].shape == (2, 3)
    assert model[0].weight.grad is not None


def test_hooks_do_not_fire_on_the_inference_path() -> None:
    model = net()
    fired: list[str] = []
    model[0].register_full_backward_hook(lambda *a: fired.append("full"))
    assert isinstance(model(np.ones((1, 4))), np.ndarray) and not fired
