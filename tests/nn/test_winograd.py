"""Winograd F(m×m, 3×3): the transform matrices and the batched-GEMM convolution against a float64 loop."""

from __future__ import annotations

import numpy as np
import pytest
from fast_reference import direct_conv3x3, max_pool2x2, relative_error
from naive import naive_conv2d

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn import functional as fn
from audioembed.nn import winograd
from audioembed.nn.winograd import (
    TileTransforms,
    conv3x3_winograd,
    tile_view,
    transform_weights,
    winograd_matrices,
)

TOLERANCE = 1e-5  # per layer, relative to the largest output (issue 2 §3)


@pytest.mark.parametrize("m", [2, 4])
def test_matrices_compute_a_1d_correlation_exactly(m: int) -> None:
    rng = np.random.default_rng(m)
    AT, G, BT = winograd_matrices(m)
    assert AT.shape == (m, m + 2) and G.shape == (m + 2, 3) and BT.shape == (m + 2, m + 2)
    for _ in range(10):
        d, g = rng.standard_normal(m + 2), rng.standard_normal(3)
        expected = np.array([d[i : i + 3] @ g for i in range(m)])
        np.testing.assert_allclose(AT @ ((G @ g) * (BT @ d)), expected, rtol=0, atol=1e-12)


def test_f2_matrices_are_the_textbook_ones_up_to_sign() -> None:
    AT, G, BT = winograd_matrices(2)
    np.testing.assert_array_equal(AT, [[1, 1, 1, 0], [0, 1, -1, 1]])
    # G and Bᵀ may differ from Lavin & Gray's by a sign per row, which cancels in (G g) ⊙ (Bᵀ d).
    signs = np.sign(G[:, 0] + G[:, 2])
    np.testing.assert_array_equal(
        G * signs[:, None], [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
    )
    np.testing.assert_array_equal(
        BT * signs[:, None], [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, -1, 0, 1]]
    )


@pytest.mark.parametrize("m", [0, 3, 6, "4"])
def test_unsupported_tile_is_rejected(m: object) -> None:
    with pytest.raises(InvalidOptionError, match=f"must be one of \\[2, 4\\], got {m!r}"):
        winograd_matrices(m)  # type: ignore[arg-type]


def test_transform_weights_shape_and_values() -> None:
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)
    u = transform_weights(weight, m=4)
    assert u.shape == (36, 5, 7) and u.dtype == np.float32 and u.flags.c_contiguous
    _, G, _ = winograd_matrices(4)
    expected = np.einsum("ik,jl,klco->ijco", G, G, weight.astype(np.float64)).reshape(36, 5, 7)
    np.testing.assert_allclose(u, expected, rtol=1e-6, atol=1e-7)


def test_transform_weights_in_blocks_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    weight = np.random.default_rng(5).standard_normal((3, 3, 5, 7)).astype(np.float32)
    whole = transform_weights(weight)
    monkeypatch.setattr(winograd, "_TRANSFORM_BLOCK_ELEMENTS", 10)  # blocks of 10 (Cin, Cout) pairs
    np.testing.assert_array_equal(transform_weights(weight), whole)


def test_transform_of_a_non_contiguous_kernel() -> None:
    weight = np.random.default_rng(6).standard_normal((3, 3, 8, 6)).astype(np.float32)
    view = weight[:, :, ::2, 1:4]  # every other input channel, three output channels
    np.testing.assert_array_equal(transform_weights(view), transform_weights(np.ascontiguousarray(view)))


def test_winograd_matrices_are_private_copies() -> None:
    G = winograd_matrices(4)[1]
    G[:] = 0.0  # the caller's copy; the cached matrices the kernels use stay intact
    np.testing.assert_array_equal(winograd_matrices(4)[1][0], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("shape", [(3, 3, 4), (3, 5, 4, 2), (2, 3, 3, 4, 4)])
def test_transform_weights_rejects_non_3x3_kernels(shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=r"\[3, 3, Cin, Cout\] kernel, got shape"):
        transform_weights(np.zeros(shape))


# Randomised cases: odd sizes (tile grid padded and cropped), batch 1, one channel, one output channel.
CASES = [
    ((1, 1, 1, 1), 1),
    ((1, 7, 5, 1), 3),
    ((2, 13, 9, 3), 1),
    ((3, 8, 12, 5), 7),
    ((1, 96, 64, 1), 16),
    ((2, 24, 16, 128), 64),
    ((1, 12, 8, 512), 32),
]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize(("shape", "cout"), CASES)
def test_conv_matches_direct_float64(m: int, shape: tuple[int, int, int, int], cout: int) -> None:
    rng = np.random.default_rng(sum(shape) + cout + m)
    x = rng.standard_normal(shape).astype(np.float32)
    weight = (rng.standard_normal((3, 3, shape[3], cout)) * np.sqrt(2 / (9 * shape[3]))).astype(np.float32)
    bias = rng.standard_normal(cout).astype(np.float32)
    y = conv3x3_winograd(x, weight, bias, m=m)
    assert y.shape == (*shape[:3], cout) and y.dtype == np.float32
    assert relative_error(y, naive_conv2d(x, weight, bias, stride=1, padding="same")) <= TOLERANCE


def test_conv_accepts_non_contiguous_float64_input_and_no_bias() -> None:
    rng = np.random.default_rng(2)
    base = rng.standard_normal((2, 16, 11, 6))  # float64
    x = base.transpose(0, 2, 1, 3)[:, ::2, :, 1:5]  # [2, 6, 16, 4], strided in every axis
    assert not x.flags.c_contiguous
    weight = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)
    y = conv3x3_winograd(x, weight)
    assert relative_error(y, direct_conv3x3(x, weight)) <= TOLERANCE


def test_conv_accuracy_on_vggish_sized_relu_input() -> None:
    # The deepest VGGish layer shape, ReLU'd (non-negative) input as in the network: the worst measured case.
    rng = np.random.default_rng(3)
    x = np.maximum(rng.standard_normal((2, 12, 8, 512)), 0).astype(np.float32)
    weight = (rng.standard_normal((3, 3, 512, 64)) * np.sqrt(2 / (9 * 512))).astype(np.float32)
    assert relative_error(conv3x3_winograd(x, weight), direct_conv3x3(x, weight)) <= TOLERANCE


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "b_shape", "message"),
    [
        ((4, 4, 2), (3, 3, 2, 1), None, r"NHWC input \[N, H, W, Cin\], got shape \(4, 4, 2\)"),
        ((1, 4, 4, 2), (3, 3, 3, 1), None, r"\[3, 3, 2, Cout\] kernel for input \(1, 4, 4, 2\), got shape"),
        ((1, 4, 4, 2), (5, 5, 2, 1), None, r"got shape \(5, 5, 2, 1\)"),
        ((1, 4, 4, 2), (3, 3, 2, 4), (3,), r"bias must have shape \(4,\), got \(3,\)"),
    ],
)
def test_conv_rejects_bad_shapes(x_shape, w_shape, b_shape, message) -> None:
    bias = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ShapeError, match=message):
        conv3x3_winograd(np.zeros(x_shape), np.zeros(w_shape), bias)


def test_conv_rejects_bad_tile() -> None:
    with pytest.raises(InvalidOptionError, match="got 3"):
        conv3x3_winograd(np.zeros((1, 4, 4, 1)), np.zeros((3, 3, 1, 1)), m=3)


def test_tile_view_reads_overlapping_tiles_without_copying() -> None:
    padded = np.arange(1 * 10 * 6 * 2, dtype=np.float32).reshape(1, 10, 6, 2)  # 8×4 interior, m = 4
    tiles = tile_view(padded, 4)
    assert tiles.shape == (6, 6, 1, 2, 1, 2) and np.shares_memory(tiles, padded)
    np.testing.assert_array_equal(tiles[:, :, 0, 1, 0, 1], padded[0, 4:10, 0:6, 1])


@pytest.mark.parametrize("m", [2, 4])
def test_pooling_order_of_output_transform(m: int) -> None:
    # With pool=True the output rows and columns are ordered (member, window): the maximum over the four
    # member blocks must be the 2×2 max-pool of the un-permuted output tile.
    rng = np.random.default_rng(m)
    plain, pooled = TileTransforms(m), TileTransforms(m, pool=True)
    prod = rng.standard_normal(((m + 2) ** 2, 5)).astype(np.float32)
    tile = (plain.output_matrix @ prod).reshape(1, m, m, 5)  # [1, r, c, 5]
    half = m // 2
    members = (pooled.output_matrix @ prod).reshape(2, half, 2, half, 5)  # [dr, wr, dc, wc, 5]
    pooled_tile = np.max([members[dr, :, dc] for dr in range(2) for dc in range(2)], axis=0)
    np.testing.assert_allclose(pooled_tile[None], max_pool2x2(tile), rtol=1e-6)


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("pool", [False, True])
@pytest.mark.parametrize("columns", [7, 40, 100])  # below, at and across blocks of the separable form
def test_transforms_agree_with_their_kronecker_matrices(monkeypatch, m, pool, columns) -> None:
    rng = np.random.default_rng(columns)
    plan = TileTransforms(m, pool=pool)
    a = m + 2
    wide = rng.standard_normal((a * a, columns + 9)).astype(np.float32)
    x = wide[:, 3 : 3 + columns]  # a row-strided view, as a slice of a bigger batch's buffer
    expected_in, expected_out = plan.input_matrix @ x, plan.output_matrix @ x
    for threshold in (10**9, 0):  # one Kronecker GEMM / the separable form, in blocks of 16 columns
        monkeypatch.setattr(winograd, "SEPARABLE_MIN_COLUMNS", threshold)
        monkeypatch.setattr(winograd, "SEPARABLE_BLOCK", 16)
        buffer = np.full(a * a * 16, np.nan, np.float32)
        out_in = np.full((a * a, columns + 5), np.nan, np.float32)
        plan.input_transform(x, out_in[:, 2 : 2 + columns], buffer)
        np.testing.assert_allclose(out_in[:, 2 : 2 + columns], expected_in, rtol=1e-5, atol=1e-5)
        assert np.isnan(out_in[:, :2]).all() and np.isnan(out_in[:, 2 + columns :]).all()  # nothing else
        out_out = np.empty((m * m, columns), np.float32)
        plan.output_transform(x, out_out, buffer)
        np.testing.assert_allclose(out_out, expected_out, rtol=1e-5, atol=1e-5)


def test_conv_in_chunks_gives_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 8, 8, 3)).astype(np.float32)
    weight = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    whole = conv3x3_winograd(x, weight)
    monkeypatch.setattr(winograd, "CHUNK_BYTES", 1)  # one image per chunk
    # Not bit-equal: BLAS may block a GEMM of 1 image differently from one of 5 (seen on AVX-512 OpenBLAS).
    np.testing.assert_allclose(conv3x3_winograd(x, weight), whole, rtol=1e-5, atol=1e-5)


# --- dispatch from functional.conv2d ----------------------------------------------------------------------


def _count_winograd_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = winograd.conv3x3_winograd

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(winograd, "conv3x3_winograd", counted)
    return calls


@pytest.mark.parametrize("padding", ["same", 1])
def test_conv2d_dispatches_3x3_same_float32_to_winograd(monkeypatch: pytest.MonkeyPatch, padding) -> None:
    calls = _count_winograd_calls(monkeypatch)
    rng = np.random.default_rng(7)
    base = rng.standard_normal((2, 32, 20, 24)).astype(np.float32)
    x = np.concatenate([base[:, ::2, :, 1:21]] * 4)[:, :, ::-1]  # [8, 16, 20, 20], 2560 pixels, strided
    assert not x.flags.c_contiguous
    weight = rng.standard_normal((3, 3, 20, 8)).astype(np.float32)
    bias = rng.standard_normal(8).astype(np.float32)
    y = fn.conv2d(x, weight, bias, padding=padding)
    assert calls == [1]
    assert y.shape == (8, 16, 20, 8) and y.dtype == np.float32
    expected = naive_conv2d(x, weight, bias, stride=1, padding="same")
    assert relative_error(y, expected) <= TOLERANCE


@pytest.mark.parametrize(
    ("x_shape", "w_shape", "dtype", "stride", "padding"),
    [
        ((8, 16, 20, 20), (3, 3, 20, 8), np.float64, 1, "same"),  # float64 keeps the exact reference
        ((8, 16, 20, 20), (3, 3, 20, 8), np.float32, 2, "same"),  # strided
        ((8, 16, 20, 20), (3, 3, 20, 8), np.float32, 1, "valid"),  # not SAME
        ((8, 16, 20, 8), (3, 3, 8, 8), np.float32, 1, "same"),  # too few input channels
        ((1, 8, 8, 32), (3, 3, 32, 8), np.float32, 1, "same"),  # too few pixels
        ((8, 16, 20, 20), (5, 5, 20, 8), np.float32, 1, "same"),  # not 3×3
    ],
)
def test_conv2d_keeps_im2col_where_winograd_does_not_pay(
    monkeypatch: pytest.MonkeyPatch, x_shape, w_shape, dtype, stride, padding
) -> None:
    calls = _count_winograd_calls(monkeypatch)
    rng = np.random.default_rng(8)
    x = rng.standard_normal(x_shape).astype(dtype)
    weight = rng.standard_normal(w_shape).astype(dtype)
    fn.conv2d(x, weight, stride=stride, padding=padding)
    assert calls == []
