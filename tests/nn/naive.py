"""Plain-loop float64 twins of the kernels in ``audioembed.nn.functional``, for equality tests.

Written from the definitions, not from the vectorised code: explicit loops over batch, output pixels and
window taps, padding handled by bounds checks rather than by padded copies. Slow; use small shapes.
Also imported by the fast-engine tests (``test_winograd.py``, ``test_fused.py``): keep these names.
"""

from __future__ import annotations

import math

import numpy as np


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF SAME: ``(output size, padding before)``; the remaining padding goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2


def _geometry(size: int, kernel: int, stride: int, padding: str | int) -> tuple[int, int]:
    if padding == "same":
        return same_padding(size, kernel, stride)
    pad = 0 if padding == "valid" else int(padding)
    return (size + 2 * pad - kernel) // stride + 1, pad


def naive_conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: str | int = "same",
) -> np.ndarray:
    """Cross-correlation of NHWC ``x`` with HWIO ``weight``, float64, one output pixel at a time."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    n, height, width, _ = x.shape
    kh, kw, _, c_out = weight.shape
    out_h, top = _geometry(height, kh, sh, padding)
    out_w, left = _geometry(width, kw, sw, padding)
    y = np.zeros((n, out_h, out_w, c_out))
    for b in range(n):
        for oh in range(out_h):
            for ow in range(out_w):
                acc = np.zeros(c_out)
                for i in range(kh):
                    for j in range(kw):
                        h, w = oh * sh + i - top, ow * sw + j - left
                        if 0 <= h < height and 0 <= w < width:  # outside = zero padding
                            acc += x[b, h, w, :] @ weight[i, j]  # [C_in] @ [C_in, C_out]
                y[b, oh, ow] = acc if bias is None else acc + np.asarray(bias, dtype=np.float64)
    return y


def naive_max_pool2d(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    *,
    padding: str = "valid",
) -> np.ndarray:
    """Max over windows of NHWC ``x``, float64; cells outside the input never take part."""
    x = np.asarray(x, dtype=np.float64)
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    stride = (kh, kw) if stride is None else stride
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    n, height, width, channels = x.shape
    out_h, top = _geometry(height, kh, sh, padding)
    out_w, left = _geometry(width, kw, sw, padding)
    y = np.empty((n, out_h, out_w, channels))
    for b in range(n):
        for oh in range(out_h):
            for ow in range(out_w):
                best = np.full(channels, -np.inf)
                for i in range(kh):
                    for j in range(kw):
                        h, w = oh * sh + i - top, ow * sw + j - left
                        if 0 <= h < height and 0 <= w < width:
                            best = np.maximum(best, x[b, h, w, :])
                y[b, oh, ow] = best
    return y


def naive_linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``x @ W + b`` for 2-D ``x``, float64, as explicit sums over the input features."""
    x = np.asarray(x, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    y = np.zeros((x.shape[0], weight.shape[1]))
    for b in range(x.shape[0]):
        for k in range(weight.shape[0]):
            y[b] += x[b, k] * weight[k]
    return y if bias is None else y + np.asarray(bias, dtype=np.float64)


def naive_relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` one element at a time, float64."""
    x = np.asarray(x, dtype=np.float64)
    flat = [value if value > 0 else 0.0 for value in x.ravel()]
    return np.array(flat).reshape(x.shape)


def naive_flatten(x: np.ndarray) -> np.ndarray:
    """NHWC ``[N, H, W, C]`` → ``[N, H*W*C]`` with flat index ``(h * W + w) * C + c``, by loops."""
    x = np.asarray(x, dtype=np.float64)
    n, height, width, channels = x.shape
    y = np.empty((n, height * width * channels))
    for b in range(n):
        for h in range(height):
            for w in range(width):
                for c in range(channels):
                    y[b, (h * width + w) * channels + c] = x[b, h, w, c]
    return y
