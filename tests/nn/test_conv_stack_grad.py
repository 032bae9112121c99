"""The trainable fused conv stack against the layer-by-layer float64 path (forward and every gradient)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from audioembed.errors import ShapeError
from audioembed.nn import Tensor, functional
from audioembed.nn import conv_stack_grad as csg
from audioembed.nn import functional_backward as fb

CHANNELS = [1, 8, 20, 20, 24]
POOLS = [True, True, False, True]


def stack_params(rng: np.random.Generator) -> list[np.ndarray]:
    params = []
    for cin, cout in itertools.pairwise(CHANNELS):
        params.append((rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2 / (9 * cin))).astype(np.float32))
        params.append((rng.standard_normal(cout) * 0.1).astype(np.float32))
    return params


def layered(x, params):
    """The same network through the layers' kernels, one recorded op at a time."""
    for index, pool in enumerate(POOLS):
        x = functional.relu(functional.conv2d(x, params[2 * index], params[2 * index + 1]))
        if pool:
            x = functional.max_pool2d(x, 2)
    return x


@pytest.fixture(scope="module")
def stack():
    engine = csg.TrainableConvStack(POOLS, num_workers=2)
    yield engine
    engine.close()


@pytest.mark.parametrize("trained", ["all", "top", "input-only"])
def test_forward_and_gradients_match_the_layer_path(stack, trained) -> None:
    rng = np.random.default_rng(0)
    params = stack_params(rng)
    x = rng.standard_normal((5, 16, 16, 1)).astype(np.float32)  # 5 images: uneven chunks
    seed = rng.standard_normal((5, 2, 2, 24)).astype(np.float32)
    wants = {
        "all": ([True] * 8, True),
        "top": ([False] * 4 + [True] * 4, False),
        "input-only": ([False] * 8, True),
    }[trained]
    ref_params = [
        Tensor(p.astype(np.float64), requires_grad=w) for p, w in zip(params, wants[0], strict=True)
    ]
    ref_x = Tensor(x.astype(np.float64), requires_grad=wants[1])
    reference = layered(ref_x, ref_params)
    reference.backward(seed.astype(np.float64))
    ours_params = [Tensor(p, requires_grad=w) for p, w in zip(params, wants[0], strict=True)]
    ours_x = Tensor(x, requires_grad=wants[1])
    out = stack(ours_x, ours_params)
    assert out.dtype == np.float32 and out.grad_fn.name() == "ConvStackFunctionBackward"
    np.testing.assert_allclose(out.data, reference.data, rtol=0, atol=1e-5 * np.abs(reference.data).max())
    out.backward(seed)
    for position, (ours, ref) in enumerate(zip([ours_x, *ours_params], [ref_x, *ref_params], strict=True)):
        if ref.grad is None:
            assert ours.grad is None, position
            continue
        scale = np.abs(ref.grad).max()
        np.testing.assert_allclose(
            ours.grad, ref.grad, rtol=0, atol=2e-5 * scale, err_msg=f"argument {position}"
        )


def test_nothing_requires_grad_records_nothing(stack) -> None:
    params = stack_params(np.random.default_rng(1))
    out = stack(Tensor(np.zeros((2, 16, 16, 1), np.float32)), [Tensor(p) for p in params])
    assert isinstance(out, Tensor) and out.grad_fn is None


def test_pool_with_winners_matches_the_reference_pool_and_its_tie_rule() -> None:
    rng = np.random.default_rng(2)
    r = np.maximum(rng.standard_normal((3, 8, 6, 5)), 0).astype(np.float32)
    r[0, 0:2, 0:2, 0] = 1.0  # a four-way tie: the first cell wins
    r[1, 2:4, 2:4, 1] = [[0.5, 2.0], [2.0, 0.1]]  # a tie between cells 1 and 2: cell 1 wins
    out = np.empty((3, 4, 3, 5), np.float32)
    winners = np.empty(out.shape, np.uint8)
    csg.pool_with_winners(r, out, winners)
    expected, expected_winners = fb.max_pool2d_forward(r, 2, 2, "valid")
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(winners, expected_winners)
    assert winners[0, 0, 0, 0] == 0 and winners[1, 1, 1, 1] == 1


def test_winograd_weight_gradient_matches_im2col_in_float64() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 8, 12, 6)).astype(np.float32)
    grad_z = rng.standard_normal((2, 8, 12, 7)).astype(np.float32)
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ours = csg.winograd_weight_grad(padded, grad_z)
    exact = fb.conv2d_backward_weight(grad_z.astype(np.float64), x.astype(np.float64), (3, 3, 6, 7))
    np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-5 * np.abs(exact).max())


def test_shapes_the_stack_cannot_take(stack) -> None:
    params = stack_params(np.random.default_rng(4))
    with pytest.raises(ShapeError, match=r"expected 8 weight and bias arrays, got 2"):
        stack(Tensor(np.zeros((1, 16, 16, 1), np.float32)), params[:2])
    with pytest.raises(ShapeError, match=r"height and width divisible by 4, got \(6, 6\)"):
        stack(Tensor(np.zeros((1, 12, 12, 1), np.float32), requires_grad=True), params)
