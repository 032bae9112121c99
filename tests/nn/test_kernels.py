"""The vectorised kernels of ``audioembed.nn.functional`` against their plain-loop twins in ``naive.py``."""

from __future__ import annotations

import numpy as np
import pytest
from naive import naive_conv2d, naive_flatten, naive_linear, naive_max_pool2d, naive_relu

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn import functional as fn


def assert_matches(actual: np.ndarray, expected: np.ndarray) -> None:
    """Same shape, and equal to 1e-5 relative to the expected values' scale."""
    assert actual.shape == expected.shape
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    assert float(np.abs(actual - expected).max(initial=0.0)) <= 1e-5 * scale


def random_images(rng: np.random.Generator, shape: tuple[int, ...], *, contiguous: bool = True) -> np.ndarray:
    """float32 images; the non-contiguous kind is a strided, channel-reversed view of a bigger array."""
    if contiguous:
        return rng.standard_normal(shape).astype(np.float32)
    n, h, w, c = shape
    big = rng.standard_normal((n, 2 * h, w, c)).astype(np.float32)
    view = big[:, ::2, :, ::-1]  # [n, h, w, c], strides (.., 2 rows, .., -1)
    assert not view.flags.c_contiguous
    return view


# (batch, height, width, c_in, c_out, kernel (kh, kw), stride, padding, contiguous)
CONV_CASES = [
    (1, 7, 5, 1, 3, (3, 3), 1, "same", True),  # batch 1, one input channel, odd sizes
    (2, 9, 8, 3, 4, (3, 3), 2, "same", True),  # SAME with stride: odd pad goes bottom/right
    (3, 10, 7, 2, 5, (2, 3), (2, 1), 1, False),  # rectangular kernel, explicit padding, strided view
    (2, 6, 6, 4, 1, (1, 1), 1, "valid", True),  # 1×1 conv = per-pixel matmul, one output channel
    (1, 11, 9, 2, 3, (5, 5), 3, "same", False),
    (2, 8, 9, 3, 2, (3, 2), 2, "valid", True),
    (1, 2, 2, 1, 2, (3, 3), 1, "same", True),  # kernel bigger than the image
    (2, 5, 4, 3, 3, (2, 2), 1, "same", True),  # even kernel under SAME: all padding after
]


@pytest.mark.parametrize("case", CONV_CASES, ids=[str(i) for i in range(len(CONV_CASES))])
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv2d_matches_naive(case: tuple, with_bias: bool) -> None:
    n, h, w, c_in, c_out, kernel, stride, padding, contiguous = case
    rng = np.random.default_rng(len(str(case)))
    x = random_images(rng, (n, h, w, c_in), contiguous=contiguous)
    weight = rng.standard_normal((*kernel, c_in, c_out)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32) if with_bias else None
    y = fn.conv2d(x, weight, bias, stride=stride, padding=padding)
    assert y.dtype == np.float32
    assert_matches(y, naive_conv2d(x, weight, bias, stride=stride, padding=padding))


@pytest.mark.parametrize("seed", range(8))
def test_conv2d_random_shapes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, h, w, c_in, c_out = (int(v) for v in rng.integers(1, [4, 12, 12, 5, 5], endpoint=True))
    kernel = tuple(int(v) for v in rng.integers(1, [min(h, 4), min(w, 4)], endpoint=True))
    stride = int(rng.integers(1, 3, endpoint=True))
    padding = ["same", "valid", int(rng.integers(0, 2, endpoint=True))][seed % 3]
    x = random_images(rng, (n, h, w, c_in), contiguous=bool(seed % 2))
    weight = rng.standard_normal((*kernel, c_in, c_out)).astype(np.float32)
    bias = rng.standard_normal(c_out).astype(np.float32)
    actual = fn.conv2d(x, weight, bias, stride=stride, padding=padding)
    assert_matches(actual, naive_conv2d(x, weight, bias, stride=stride, padding=padding))


def test_conv2d_chunked_batch_equals_naive(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny budget forces one image per chunk: results must not depend on where chunks split.
    monkeypatch.setattr(fn, "IM2COL_TARGET_ROWS", 1)
    monkeypatch.setattr(fn, "IM2COL_MAX_BYTES", 1)
    rng = np.random.default_rng(5)
    x = random_images(rng, (5, 6, 5, 3))
    weight = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    assert_matches(fn.conv2d(x, weight, padding="same"), naive_conv2d(x, weight, padding="same"))


def test_conv2d_keeps_float64_and_handles_empty_batch() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 5, 2))
    weight = rng.standard_normal((3, 3, 2, 3))
    y = fn.conv2d(x, weight)
    assert y.dtype == np.float64
    np.testing.assert_allclose(y, naive_conv2d(x, weight), rtol=1e-12, atol=1e-12)
    empty = fn.conv2d(np.zeros((0, 5, 5, 2), np.float32), weight.astype(np.float32))
    assert empty.shape == (0, 5, 5, 3)


def test_conv2d_bad_inputs() -> None:
    x = np.zeros((1, 5, 5, 2), np.float32)
    with pytest.raises(
        ShapeError, match=r"HWIO weight \[kh, kw, 2, C_out\].*got weight shape \(3, 3, 3, 4\)"
    ):
        fn.conv2d(x, np.zeros((3, 3, 3, 4), np.float32))
    with pytest.raises(ShapeError, match=r"\[N, H, W, C\], got shape \(5, 5, 2\)"):
        fn.conv2d(x[0], np.zeros((3, 3, 2, 4), np.float32))
    with pytest.raises(ShapeError, match=r"bias of shape \(4,\), got \(3,\)"):
        fn.conv2d(x, np.zeros((3, 3, 2, 4), np.float32), np.zeros(3, np.float32))
    with pytest.raises(InvalidOptionError, match=r"padding must be .*got 'full'"):
        fn.conv2d(x, np.zeros((3, 3, 2, 4), np.float32), padding="full")
    with pytest.raises(InvalidOptionError, match=r"padding must be .*got -1"):
        fn.conv2d(x, np.zeros((3, 3, 2, 4), np.float32), padding=-1)
    with pytest.raises(InvalidOptionError, match=r"stride must be a positive int .*got 0"):
        fn.conv2d(x, np.zeros((3, 3, 2, 4), np.float32), stride=0)
    with pytest.raises(ShapeError, match=r"6x6 window .* does not fit .* 5x5"):
        fn.conv2d(x, np.zeros((6, 6, 2, 4), np.float32), padding="valid")


# (batch, height, width, channels, kernel, stride, padding, contiguous)
POOL_CASES = [
    (1, 6, 4, 1, 2, None, "valid", True),
    (2, 7, 5, 3, 2, 2, "same", True),  # odd sizes: SAME pads one row/column at the bottom/right
    (2, 9, 8, 2, 3, 2, "same", False),  # overlapping windows
    (1, 8, 7, 4, (2, 3), (1, 2), "valid", True),
    (3, 5, 5, 2, 3, 3, "same", False),
    (1, 1, 1, 1, 2, 2, "same", True),  # one pixel, window all padding but one cell
]


@pytest.mark.parametrize("case", POOL_CASES, ids=[str(i) for i in range(len(POOL_CASES))])
def test_max_pool2d_matches_naive(case: tuple) -> None:
    n, h, w, c, kernel, stride, padding, contiguous = case
    x = random_images(np.random.default_rng(len(str(case))), (n, h, w, c), contiguous=contiguous)
    y = fn.max_pool2d(x, kernel, stride, padding=padding)
    assert y.dtype == np.float32
    assert_matches(y, naive_max_pool2d(x, kernel, stride, padding=padding))


def test_max_pool2d_same_padding_never_wins() -> None:
    # All inputs negative: a zero-padded pool would output 0 in the last row/column.
    x = -1.0 - np.arange(2 * 3 * 3 * 1, dtype=np.float32).reshape(2, 3, 3, 1)
    y = fn.max_pool2d(x, 2, 2, padding="same")
    assert y.shape == (2, 2, 2, 1)
    assert (y < 0).all()
    assert y[0, 1, 1, 0] == x[0, 2, 2, 0]  # the corner window holds one real cell


def test_max_pool2d_bad_inputs() -> None:
    x = np.zeros((1, 4, 4, 1), np.float32)
    with pytest.raises(InvalidOptionError, match=r"padding must be 'valid' or 'same', got 1"):
        fn.max_pool2d(x, 2, padding=1)  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match=r"\[N, H, W, C\], got shape \(4, 4\)"):
        fn.max_pool2d(x[0, :, :, 0], 2)
    with pytest.raises(
        InvalidOptionError, match=r"kernel_size must be a positive int or a pair.*\(2, 2, 2\)"
    ):
        fn.max_pool2d(x, (2, 2, 2))  # type: ignore[arg-type]
    with pytest.raises(ShapeError, match="5x5 window"):
        fn.max_pool2d(x, 5)


@pytest.mark.parametrize(("batch", "n_in", "n_out"), [(1, 1, 1), (3, 7, 5), (4, 33, 2)])
def test_linear_matches_naive(batch: int, n_in: int, n_out: int) -> None:
    rng = np.random.default_rng(batch * 100 + n_in)
    x = rng.standard_normal((batch, n_in)).astype(np.float32)
    weight = rng.standard_normal((n_in, n_out)).astype(np.float32)
    bias = rng.standard_normal(n_out).astype(np.float32)
    y = fn.linear(x, weight, bias)
    assert y.dtype == np.float32
    assert_matches(y, naive_linear(x, weight, bias))
    assert_matches(fn.linear(x.T.copy().T, weight), naive_linear(x, weight))  # F-ordered input, no bias


def test_linear_bad_inputs() -> None:
    with pytest.raises(
        ShapeError, match=r"input \[\.\.\., 4\].*got input shape \(2, 3\) and weight shape \(4, 5\)"
    ):
        fn.linear(np.zeros((2, 3), np.float32), np.zeros((4, 5), np.float32))
    with pytest.raises(ShapeError, match=r"bias of shape \(5,\), got \(4,\)"):
        fn.linear(np.zeros((2, 4), np.float32), np.zeros((4, 5), np.float32), np.zeros(4, np.float32))


def test_relu_and_flatten_match_naive() -> None:
    x = random_images(np.random.default_rng(9), (2, 3, 4, 5), contiguous=False)
    r = fn.relu(x)
    assert r.dtype == np.float32
    assert_matches(r, naive_relu(x))
    f = fn.flatten(x)
    assert f.shape == (2, 60)
    assert_matches(f, naive_flatten(x))
    assert fn.flatten(np.zeros((0, 6, 4, 512), np.float32)).shape == (0, 12288)
    with pytest.raises(ShapeError, match=r"start_dim 3 is out of range .* \(2, 3\)"):
        fn.flatten(np.zeros((2, 3)), 3)
