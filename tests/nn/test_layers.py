"""The layers: one functional call each, input validation, initialisation, ``extra_repr``."""

from __future__ import annotations

import numpy as np
import pytest
from naive import naive_conv2d, naive_linear, naive_max_pool2d

from audioembed.errors import InvalidInputError, InvalidOptionError, ShapeError
from audioembed.nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU


def test_conv2d_layer_matches_naive_and_owns_hwio_weights() -> None:
    conv = Conv2d(3, 5, (3, 2), stride=2, padding="same", rng=np.random.default_rng(1))
    conv.bias.data = np.arange(5, dtype=np.float32)
    assert conv.weight.shape == (3, 2, 3, 5) and conv.weight.dtype == np.float32
    x = np.random.default_rng(2).standard_normal((2, 7, 6, 3)).astype(np.float32)
    expected = naive_conv2d(x, conv.weight.data, conv.bias.data, stride=2, padding="same")
    np.testing.assert_allclose(conv(x), expected, rtol=1e-5, atol=1e-5)
    assert [name for name, _ in Conv2d(1, 2, 3, bias=False).named_parameters()] == ["weight"]


def test_pool_linear_relu_flatten_layers() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 7, 3)).astype(np.float32)
    np.testing.assert_array_equal(MaxPool2d(2, padding="same")(x), naive_max_pool2d(x, 2, padding="same"))
    np.testing.assert_array_equal(ReLU()(x), np.maximum(x, 0))
    assert Flatten()(x).shape == (2, 105)
    linear = Linear(105, 4, rng=rng)
    flat = Flatten()(x)
    np.testing.assert_allclose(linear(flat), naive_linear(flat, linear.weight.data), rtol=1e-5, atol=1e-5)


def test_layers_run_in_float64_after_double() -> None:
    conv = Conv2d(2, 3, 3).double()
    x = np.ones((1, 4, 4, 2))
    assert conv(x).dtype == np.float64
    assert Linear(2, 2).double()(np.ones((1, 2))).dtype == np.float64


@pytest.mark.parametrize(
    ("layer", "shape", "message"),
    [
        (
            Conv2d(3, 4, 3),
            (2, 5, 5, 2),
            r"Conv2d expects input of shape \[N, H, W, 3\], got shape \(2, 5, 5, 2\)",
        ),
        (Conv2d(3, 4, 3), (5, 5, 3), r"Conv2d expects input of shape \[N, H, W, 3\], got shape \(5, 5, 3\)"),
        (MaxPool2d(2), (4, 4, 1), r"MaxPool2d expects input of shape \[N, H, W, C\], got shape \(4, 4, 1\)"),
        (Linear(8, 2), (3, 7), r"Linear expects input of shape \[\.\.\., 8\], got shape \(3, 7\)"),
        (Linear(8, 2), (), r"Linear expects input of shape \[\.\.\., 8\], got shape \(\)"),
        (Flatten(), (5,), r"Flatten expects input of shape \[N, \.\.\.\], got shape \(5,\)"),
    ],
)
def test_layers_name_expected_and_actual_shapes(layer: object, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        layer(np.zeros(shape, np.float32))  # type: ignore[operator]


def test_layers_check_dtype() -> None:
    with pytest.raises(InvalidInputError, match="Conv2d expects a float32 input, got dtype float64"):
        Conv2d(1, 1, 3)(np.zeros((1, 4, 4, 1)))
    with pytest.raises(InvalidInputError, match="Linear expects a float32 input, got dtype int64"):
        Linear(2, 1)(np.zeros((1, 2), np.int64))
    with pytest.raises(InvalidInputError, match="ReLU expects a floating input, got dtype int32"):
        ReLU()(np.zeros(3, np.int32))


def test_bad_hyper_parameters() -> None:
    with pytest.raises(
        InvalidOptionError, match="padding must be 'same' or 'valid' or an int >= 0, got 'full'"
    ):
        Conv2d(1, 1, 3, padding="full")
    with pytest.raises(InvalidOptionError, match="padding must be 'valid' or 'same', got 'full'"):
        MaxPool2d(2, padding="full")
    with pytest.raises(
        InvalidOptionError, match="kernel_size must be a positive int or a pair of them, got 0"
    ):
        Conv2d(1, 1, 0)


def test_reset_parameters_is_seeded_and_scaled() -> None:
    a = Conv2d(64, 32, 3, rng=np.random.default_rng(7))
    b = Conv2d(64, 32, 3, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert abs(a.weight.data.std() - np.sqrt(2 / (3 * 3 * 64))) < 0.01  # He normal
    assert not a.bias.data.any()
    fc = Linear(300, 100, rng=np.random.default_rng(7))
    limit = np.sqrt(6 / 400)
    assert fc.weight.dtype == np.float32
    assert np.abs(fc.weight.data).max() <= limit and np.abs(fc.weight.data).max() > 0.9 * limit  # Glorot
    fc.reset_parameters(np.random.default_rng(8))
    assert not np.array_equal(fc.weight.data, Linear(300, 100, rng=np.random.default_rng(7)).weight.data)


@pytest.mark.parametrize(
    ("layer", "text"),
    [
        (Conv2d(1, 64, 3), "Conv2d(1, 64, kernel_size=3)"),
        (Conv2d(2, 4, (3, 1), stride=2, padding="valid", bias=False),
         "Conv2d(2, 4, kernel_size=(3, 1), stride=2, padding='valid', bias=False)"),
        (MaxPool2d(2), "MaxPool2d(kernel_size=2)"),
        (MaxPool2d(3, 2, padding="same"), "MaxPool2d(kernel_size=3, stride=2, padding='same')"),
        (Linear(4, 2), "Linear(4, 2)"),
        (ReLU(), "ReLU()"),
        (Flatten(), "Flatten()"),
    ],
)  # fmt: skip
def test_extra_repr_lists_non_defaults(layer: object, text: str) -> None:
    assert repr(layer) == text


@pytest.mark.parametrize(
    "make", [lambda **kw: Conv2d(3, 4, 3, **kw), lambda **kw: Linear(5, 6, **kw)], ids=["conv", "linear"]
)
def test_initialize_false_leaves_zeros_and_true_draws_weights(make):
    blank = make(initialize=False)
    assert not np.asarray(blank.weight).any() and not np.asarray(blank.bias).any()
    drawn = make()
    assert np.asarray(drawn.weight).std() > 0
