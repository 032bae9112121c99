"""Backward kernels of :mod:`audioembed.nn.functional`: gradients with respect to inputs and weights.

Stateless, arrays in and arrays out, the forward kernels' layouts (NHWC activations, HWIO conv kernels,
``[in, out]`` dense weights) and dtypes. Each has a float64 finite-difference test with randomised shapes,
strides and padding (``tests/nn/test_backward_kernels.py``). The convolution's input gradient is itself a
convolution (of the output gradient with the flipped, transposed kernel), so a 3×3 stride-1 SAME layer
reuses the Winograd engine; the weight gradient is one GEMM per chunk of images over im2col patches.
"""

from __future__ import annotations

import math

import numpy as np

from audioembed.nn import parallel_gemm, winograd
from audioembed.nn.functional import (
    IM2COL_MAX_BYTES,
    IM2COL_TARGET_ROWS,
    _check_padding,
    _pair,
    _resolve_padding,
)

Pads = tuple[tuple[int, int], tuple[int, int]]


def conv_geometry(
    x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: int | tuple[int, int], padding: str | int
) -> tuple[tuple[int, int], tuple[int, int], Pads]:
    """``(stride, (out_h, out_w), ((top, bottom), (left, right)))`` of a convolution, as its forward uses."""
    strides = _pair(stride, "stride")
    out_hw, pad_h, pad_w = _resolve_padding(x_shape[1], x_shape[2], weight_shape[:2], strides, padding)
    return strides, out_hw, (pad_h, pad_w)


def _image_chunk(rows_per_image: int, row_bytes: int) -> int:
    """Images per im2col chunk: about IM2COL_TARGET_ROWS GEMM rows, at most IM2COL_MAX_BYTES of patches."""
    by_rows = math.ceil(IM2COL_TARGET_ROWS / max(rows_per_image, 1))
    return max(1, min(by_rows, IM2COL_MAX_BYTES // max(rows_per_image * row_bytes, 1)))


def _padded(x: np.ndarray, pads: Pads, height: int, width: int, dtype: np.dtype) -> np.ndarray:
    (top, bottom), (left, right) = pads
    xp = np.zeros((x.shape[0], height + top + bottom, width + left + right, x.shape[3]), dtype=dtype)
    xp[:, top : top + height, left : left + width] = x
    return xp


def conv2d_backward_input(
    grad_y: np.ndarray,
    weight: np.ndarray,
    x_shape: tuple[int, ...],
    *,
    stride: int | tuple[int, int] = 1,
    padding: str | int = "same",
) -> np.ndarray:
    """Gradient of :func:`~audioembed.nn.functional.conv2d` with respect to its input.

    Parameters
    ----------
    grad_y : np.ndarray [shape=(N, H_out, W_out, C_out)]
        Gradient of the loss with respect to the convolution's output.
    weight : np.ndarray [shape=(kh, kw, C_in, C_out)]
        The kernel, HWIO.
    x_shape : (N, H, W, C_in)
        Shape of the forward input.
    stride, padding :
        As given to the forward.

    Returns
    -------
    grad_x : np.ndarray [shape=x_shape, dtype of grad_y]
    """
    strides, (out_h, out_w), pads = conv_geometry(x_shape, weight.shape, stride, padding)
    kh, kw, c_in, c_out = weight.shape
    # A stride-1 convolution's transpose is the correlation with the kernel flipped in space and its
    # channel axes swapped, padded by (k - 1 - pad): for 3×3 SAME that is again a 3×3 SAME layer.
    flipped = np.ascontiguousarray(weight[::-1, ::-1].transpose(0, 1, 3, 2))  # [kh, kw, C_out, C_in]
    if winograd.pays_off(grad_y, flipped, strides, pads):
        return winograd.conv3x3_winograd(grad_y, flipped)
    n, height, width, _ = x_shape
    dtype = np.result_type(grad_y.dtype, weight.dtype)
    (top, bottom), (left, right) = pads
    sh, sw = strides
    grad_xp = np.zeros((n, height + top + bottom, width + left + right, c_in), dtype=dtype)
    w2d_t = weight.reshape(kh * kw * c_in, c_out).T.astype(dtype, copy=False)  # [C_out, kh*kw*C_in]
    chunk = _image_chunk(out_h * out_w, kh * kw * c_in * dtype.itemsize)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        gy = grad_y[lo:hi].reshape(-1, c_out)  # [P, C_out]
        cols = (gy @ w2d_t).reshape(hi - lo, out_h, out_w, kh, kw, c_in)  # patch gradients
        for i in range(kh):  # col2im: every tap adds its patch gradient back at the pixels it read
            for j in range(kw):
                grad_xp[lo:hi, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw] += cols[
                    :, :, :, i, j
                ]
    return grad_xp[:, top : top + height, left : left + width]


def conv2d_backward_weight(
    grad_y: np.ndarray,
    x: np.ndarray,
    weight_shape: tuple[int, ...],
    *,
    stride: int | tuple[int, int] = 1,
    padding: str | int = "same",
) -> np.ndarray:
    """Gradient of :func:`~audioembed.nn.functional.conv2d` with respect to its HWIO kernel.

    Parameters
    ----------
    grad_y : np.ndarray [shape=(N, H_out, W_out, C_out)]
    x : np.ndarray [shape=(N, H, W, C_in)]
        The forward input.
    weight_shape : (kh, kw, C_in, C_out)

    Returns
    -------
    grad_weight : np.ndarray [shape=weight_shape, dtype of x and grad_y]
    """
    strides, (out_h, out_w), pads = conv_geometry(x.shape, weight_shape, stride, padding)
    kh, kw, c_in, c_out = weight_shape
    n, height, width, _ = x.shape
    sh, sw = strides
    dtype = np.result_type(grad_y.dtype, x.dtype)
    grad_w = np.zeros((kh * kw * c_in, c_out), dtype=dtype)
    chunk = _image_chunk(out_h * out_w, kh * kw * c_in * dtype.itemsize)
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        xp = _padded(x[lo:hi], pads, height, width, dtype)
        cols = np.empty((hi - lo, out_h, out_w, kh, kw, c_in), dtype=dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, :, i, j] = xp[
                    :, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw
                ]
        rows = (hi - lo) * out_h * out_w
        grad_w += cols.reshape(rows, -1).T @ grad_y[lo:hi].reshape(rows, c_out)  # [kh*kw*C_in, C_out]
    return grad_w.reshape(weight_shape)


def conv2d_backward_bias(grad_y: np.ndarray) -> np.ndarray:
    """Gradient with respect to the bias: ``grad_y`` summed over batch and pixels, ``[C_out]``."""
    return grad_y.sum(axis=(0, 1, 2))


def max_pool2d_forward(
    x: np.ndarray, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None, padding: str
) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool like :func:`~audioembed.nn.functional.max_pool2d`, also returning each window's winner.

    Returns
    -------
    y : np.ndarray [shape=(N, H_out, W_out, C)]
    winner : np.ndarray [shape=(N, H_out, W_out, C), uint8 or uint16]
        Position (row-major tap number) in the window of the first maximum: the cell the gradient goes to,
        as in PyTorch. A quarter (uint8) of the input's bytes for 2×2 windows, instead of the input itself.
    """
    kernel = _pair(kernel_size, "kernel_size")
    strides = kernel if stride is None else _pair(stride, "stride")
    _check_padding(padding, ("valid", "same"))
    (out_h, out_w), pad_h, pad_w = _resolve_padding(x.shape[1], x.shape[2], kernel, strides, padding)
    if sum(pad_h) or sum(pad_w):
        x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=-np.inf)  # padding never wins
    sh, sw = strides
    y = x[:, : sh * (out_h - 1) + 1 : sh, : sw * (out_w - 1) + 1 : sw].copy()
    winner = np.zeros(y.shape, dtype=np.uint8 if kernel[0] * kernel[1] <= 256 else np.uint16)
    better = np.empty(y.shape, dtype=bool)
    for tap in range(1, kernel[0] * kernel[1]):
        i, j = divmod(tap, kernel[1])
        cell = x[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw]
        np.greater(cell, y, out=better)  # strictly: the first maximum keeps the window
        np.copyto(y, cell, where=better)
        np.copyto(winner, tap, where=better)
    return y, winner


def max_pool2d_backward(
    grad_y: np.ndarray,
    winner: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None,
    padding: str,
) -> np.ndarray:
    """Gradient of max-pooling with respect to its input: each window's gradient goes to its winner.

    Parameters
    ----------
    grad_y : np.ndarray [shape=(N, H_out, W_out, C)]
    winner : np.ndarray [shape=(N, H_out, W_out, C)]
        From :func:`max_pool2d_forward`.
    x_shape : (N, H, W, C)

    Returns
    -------
    grad_x : np.ndarray [shape=x_shape, dtype of grad_y]
    """
    kernel = _pair(kernel_size, "kernel_size")
    strides = kernel if stride is None else _pair(stride, "stride")
    n, height, width, c = x_shape
    (out_h, out_w), (top, bottom), (left, right) = _resolve_padding(height, width, kernel, strides, padding)
    sh, sw = strides
    grad_xp = np.zeros((n, height + top + bottom, width + left + right, c), dtype=grad_y.dtype)
    overlapping = sh < kernel[0] or sw < kernel[1]
    for tap in range(kernel[0] * kernel[1]):
        i, j = divmod(tap, kernel[1])
        cells = grad_xp[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw]
        if overlapping:  # a pixel in several windows collects from each
            cells += np.where(winner == tap, grad_y, 0)
        else:
            np.copyto(cells, grad_y, where=winner == tap)
    return grad_xp[:, top : top + height, left : left + width]


def relu_backward(grad_y: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient of ReLU from its output: ``grad_y`` where ``y > 0``, else 0 (0 at 0, as PyTorch)."""
    return grad_y * (y > 0)


def linear_backward(
    grad_y: np.ndarray, x: np.ndarray, weight: np.ndarray, needs: tuple[bool, bool, bool]
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients of ``y = x @ W + b`` (``W`` ``[in, out]``) with respect to ``x``, ``W`` and ``b``.

    Parameters
    ----------
    grad_y : np.ndarray [shape=(..., out)]
    x : np.ndarray [shape=(..., in)] or None (then W's gradient is not asked for)
    weight : np.ndarray [shape=(in, out)]
    needs : (bool, bool, bool)
        Which of the three gradients to compute; the others are None.

    Returns
    -------
    grad_x [shape=(..., in)], grad_weight [shape=(in, out)], grad_bias [shape=(out,)]
    """
    g2d = grad_y.reshape(-1, grad_y.shape[-1])  # [rows, out]
    grad_x = grad_w = grad_b = None
    if needs[0]:
        grad_x = parallel_gemm.matmul(g2d, weight.T).reshape(*grad_y.shape[:-1], weight.shape[0])
    if needs[1]:
        grad_w = parallel_gemm.matmul(x.reshape(-1, x.shape[-1]).T, g2d)  # [in, rows] @ [rows, out]
    if needs[2]:
        grad_b = g2d.sum(axis=0)
    return grad_x, grad_w, grad_b
