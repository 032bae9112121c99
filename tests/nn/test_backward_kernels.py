"""Backward of every layer kernel against float64 finite differences, on randomised geometries.

Each case draws shapes, kernel sizes, strides and paddings from a seeded generator; the gradients of the
input, the weights and the bias all come out of one backward pass and are checked by central differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import check_gradients
from naive import naive_conv2d

from audioembed.nn import Flatten, Tensor, functional
from audioembed.nn import functional_backward as fb


def _conv_cases(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kernel = tuple(int(k) for k in rng.integers(1, 5, 2))
        stride = tuple(int(s) for s in rng.integers(1, 4, 2))
        padding = ["same", "valid", int(rng.integers(0, 3))][len(cases) % 3]
        height, width = (int(v) for v in rng.integers(3, 10, 2))
        pad = 0 if padding in ("same", "valid") else padding
        if padding != "same" and (height + 2 * pad < kernel[0] or width + 2 * pad < kernel[1]):
            continue
        shape = (int(rng.integers(1, 3)), height, width, int(rng.integers(1, 4)))
        cases.append(
            {
                "shape": shape,
                "kernel": kernel,
                "stride": stride,
                "padding": padding,
                "c_out": int(rng.integers(1, 4)),
            }
        )
    return cases


@pytest.mark.parametrize(
    "case", _conv_cases(15, seed=10), ids=lambda c: f"{c['kernel']}-s{c['stride']}-{c['padding']}"
)
def test_conv2d_gradients_match_finite_differences(case) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(case["shape"])
    weight = rng.standard_normal((*case["kernel"], case["shape"][3], case["c_out"]))
    bias = rng.standard_normal(case["c_out"])

    def conv(x, w, b):
        return functional.conv2d(x, w, b, stride=case["stride"], padding=case["padding"])

    np.testing.assert_allclose(  # the recorded forward is the reference forward
        conv(Tensor(x), Tensor(weight), Tensor(bias)).data,
        naive_conv2d(x, weight, bias, stride=case["stride"], padding=case["padding"]),
        rtol=1e-12,
        atol=1e-12,
    )
    check_gradients(conv, x, weight, bias, max_entries=40)


def _pool_cases(count: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    cases = []
    while len(cases) < count:
        kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
        stride = None if len(cases) % 4 == 0 else tuple(int(s) for s in rng.integers(1, 4, 2))
        padding = ["same", "valid"][len(cases) % 2]
        height, width = (int(v) for v in rng.integers(3, 9, 2))
        if padding == "valid" and (height < kernel[0] or width < kernel[1]):
            continue
        cases.append({"shape": (2, height, width, 3), "kernel": kernel, "stride": stride, "padding": padding})
    return cases


@pytest.mark.parametrize(
    "case", _pool_cases(12, seed=11), ids=lambda c: f"{c['kernel']}-s{c['stride']}-{c['padding']}"
)
def test_max_pool2d_gradients_match_finite_differences(case) -> None:
    x = np.random.default_rng(1).standard_normal(case["shape"])  # distinct values: no ties, FD is exact

    def pool(t):
        return functional.max_pool2d(t, case["kernel"], case["stride"], padding=case["padding"])

    np.testing.assert_array_equal(pool(Tensor(x, requires_grad=True)).data, pool(x))
    check_gradients(pool, x, max_entries=80)


def test_max_pool2d_sends_a_tied_window_gradient_to_its_first_maximum_only() -> None:
    # PyTorch's rule (the first maximum in row-major window order): matters for exact gradient parity.
    x = Tensor(np.array([[[[1.0], [3.0]], [[3.0], [0.0]]]]), requires_grad=True)  # [1, 2, 2, 1]
    functional.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad[0, :, :, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_linear_relu_flatten_gradients() -> None:
    rng = np.random.default_rng(2)
    check_gradients(
        functional.linear, rng.standard_normal((5, 4)), rng.standard_normal((4, 3)), rng.standard_normal(3)
    )
    check_gradients(
        lambda x, w: functional.linear(x, w), rng.standard_normal((2, 3, 4)), rng.standard_normal((4, 2))
    )
    x = rng.standard_normal((3, 7))
    x[np.abs(x) < 1e-3] = 0.1
    check_gradients(functional.relu, x)
    check_gradients(lambda t: Flatten()(t), rng.standard_normal((2, 3, 2, 4)))


@pytest.mark.parametrize("shape", [(2, 12, 16, 16), (1, 48, 32, 24)])
def test_conv_input_gradient_by_winograd_matches_float64(shape) -> None:
    # float32 3×3 SAME layers with enough channels and pixels take the Winograd engine for grad_x.
    rng = np.random.default_rng(3)
    grad_y = rng.standard_normal((*shape[:3], 20)).astype(np.float32)
    weight = rng.standard_normal((3, 3, shape[3], 20)).astype(np.float32)
    flipped = np.ascontiguousarray(weight[::-1, ::-1].transpose(0, 1, 3, 2))
    uses_winograd = fb.winograd.pays_off(grad_y, flipped, (1, 1), ((1, 1), (1, 1)))
    assert uses_winograd == (shape[0] * shape[1] * shape[2] >= fb.winograd.MIN_PIXELS)
    fast = fb.conv2d_backward_input(grad_y, weight, shape)
    exact = fb.conv2d_backward_input(grad_y.astype(np.float64), weight.astype(np.float64), shape)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, exact, rtol=0, atol=1e-4 * np.abs(exact).max())


def test_conv_weight_gradient_in_float32_matches_float64() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 10, 8, 5)).astype(np.float32)
    grad_y = rng.standard_normal((3, 5, 4, 6)).astype(np.float32)
    fast = fb.conv2d_backward_weight(grad_y, x, (3, 3, 5, 6), stride=2, padding="same")
    exact = fb.conv2d_backward_weight(grad_y.astype(np.float64), x.astype(np.float64), (3, 3, 5, 6), stride=2)
    assert fast.dtype == np.float32
    np.testing.assert_allclose(fast, exact, rtol=1e-4, atol=1e-4)
