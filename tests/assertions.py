"""Comparisons of embedding results at the tolerances DESIGN.md promises."""

from __future__ import annotations

import numpy as np

from audioembed import EmbeddingResult

# Float32 results move in the last bits with batch composition (BLAS blocking, Winograd tiles).
RAW_RELATIVE_TOLERANCE = 1e-5


def assert_close_embeddings(
    actual: np.ndarray, expected: np.ndarray, *, rtol: float = RAW_RELATIVE_TOLERANCE
):
    """Raw embeddings equal to ``rtol`` × max|expected|."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * float(np.abs(expected).max()))


def assert_close_quantized(actual: np.ndarray, expected: np.ndarray) -> None:
    """Quantized bytes equal except for values on an integer boundary, which may move by one."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.uint8
    assert np.abs(actual.astype(int) - expected.astype(int)).max(initial=0) <= 1


def assert_same_result(
    a: EmbeddingResult, b: EmbeddingResult, *, rtol: float = RAW_RELATIVE_TOLERANCE
) -> None:
    """Two results of the same audio: same times, embeddings within tolerance."""
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert_close_embeddings(a.embeddings, b.embeddings, rtol=rtol)
    assert_close_quantized(a.quantized, b.quantized)
