"""Float64 loop references for the fast kernels' tests: direct convolution, pooling, a whole conv stack."""

from __future__ import annotations

import numpy as np


def direct_conv3x3(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """3×3 stride-1 SAME convolution, one loop iteration per kernel tap, in float64.

    x : [N, H, W, Cin]; weight : [3, 3, Cin, Cout] HWIO; returns [N, H, W, Cout] float64.
    """
    x = np.asarray(x, dtype=np.float64)
    n, h, w, _ = x.shape
    padded = np.zeros((n, h + 2, w + 2, x.shape[3]))
    padded[:, 1:-1, 1:-1] = x
    out = np.zeros((n, h, w, weight.shape[3]))
    for kh in range(3):
        for kw in range(3):
            out += padded[:, kh : kh + h, kw : kw + w] @ np.asarray(weight[kh, kw], dtype=np.float64)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)
    return out


def max_pool2x2(x: np.ndarray) -> np.ndarray:
    """2×2 stride-2 max-pool of [N, H, W, C] with even H, W, by explicit loops over the window."""
    out = x[:, 0::2, 0::2]
    for dr, dc in ((0, 1), (1, 0), (1, 1)):
        out = np.maximum(out, x[:, dr::2, dc::2])
    return out


def conv_stack(x: np.ndarray, layers: list[tuple[np.ndarray, np.ndarray, bool]]) -> np.ndarray:
    """Layer by layer: conv → bias → ReLU → [pool], in float64. x : [N, H, W, C]."""
    for weight, bias, pool in layers:
        x = np.maximum(direct_conv3x3(x, weight, bias), 0.0)
        if pool:
            x = max_pool2x2(x)
    return x


def random_conv_layers(
    rng: np.random.Generator, channels: list[int], pools: list[bool]
) -> list[tuple[np.ndarray, np.ndarray, bool]]:
    """He-scaled random float32 conv layers: channels = [Cin, C1, C2, ...], one pool flag per layer."""
    layers = []
    for cin, cout, pool in zip(channels[:-1], channels[1:], pools, strict=True):
        weight = (rng.standard_normal((3, 3, cin, cout)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
        bias = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        layers.append((weight, bias, pool))
    return layers


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |actual - expected| / max |expected|."""
    return float(np.abs(np.asarray(actual, dtype=np.float64) - expected).max() / np.abs(expected).max())
