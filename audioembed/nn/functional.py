"""Stateless reference kernels: arrays in, arrays out, NHWC activations, TF weight layouts.

Conv kernels are HWIO ``[kh, kw, in, out]`` and dense weights ``[in, out]`` (``y = x @ W + b``), the layouts
of Google's checkpoint, so weights load without transposes. Every kernel is vectorised (a Python loop runs
only over the k×k taps or over bounded chunks of the batch) and keeps its input's floating dtype; the
callers (the layers) check that input and weights agree. Each kernel has a plain-loop float64 twin in
``tests/nn/naive.py`` and a randomised test against it.

:func:`conv2d` is the single public convolution entry: it validates, works out the padding, and hands the
padded arithmetic to an engine (today the im2col reference below), so a faster engine can be dispatched
from that one place.

Given a :class:`~audioembed.nn.Tensor` (input or weights), a kernel hands over to its differentiable twin
in :mod:`audioembed.nn.autograd.layer_ops` and returns a Tensor; given ndarrays it runs exactly the code
below and records nothing.
"""

from __future__ import annotations

import math

import numpy as np

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn import winograd
from audioembed.nn.autograd import ops as _ops
from audioembed.nn.autograd.tensor import Tensor

# The train/eval ops and losses are defined in training_ops.py and re-exported here, as torch's F does.
from audioembed.nn.training_ops import (  # noqa: F401
    batch_norm,
    binary_cross_entropy_with_logits,
    cross_entropy,
    dropout,
    instance_norm,
    layer_norm,
    mse_loss,
)

# Images per im2col chunk: enough that each GEMM has ~IM2COL_TARGET_ROWS rows, so OpenBLAS's packing of
# the weight matrix is amortised (a chunk of one 12×8 image, 96 rows, runs conv4_2 several times slower),
# but never more than IM2COL_MAX_BYTES of patches: a whole 64-example VGGish batch unchunked would need
# ~1 GiB of patches for conv2.
IM2COL_TARGET_ROWS = 6144
IM2COL_MAX_BYTES = 64 << 20


def _pair(value: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair):
        raise InvalidOptionError(f"{name} must be a positive int or a pair of them, got {value!r}")
    return pair  # type: ignore[return-value]


def _check_padding(padding: str | int, allowed: tuple[str | type, ...]) -> str | int:
    """Return ``padding`` if it is one of the ``allowed`` strings, or an int >= 0 when ``int`` is allowed."""
    if isinstance(padding, str) and padding in allowed:
        return padding
    if int in allowed and isinstance(padding, int) and not isinstance(padding, bool) and padding >= 0:
        return padding
    names = " or ".join("an int >= 0" if a is int else repr(a) for a in allowed)
    raise InvalidOptionError(f"padding must be {names}, got {padding!r}")


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """TF's SAME: output ``ceil(size / stride)``, the odd pad pixel on the bottom/right side.

    Returns ``(out, pad_before, pad_after)``.
    """
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _resolve_padding(
    height: int, width: int, kernel: tuple[int, int], stride: tuple[int, int], padding: str | int
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """Output size and (before, after) padding per spatial axis for ``padding`` 'same' | 'valid' | int.

    Returns ``((out_h, out_w), (top, bottom), (left, right))``.
    """
    _check_padding(padding, ("same", "valid", int))
    if padding == "same":
        out_h, top, bottom = _same_padding(height, kernel[0], stride[0])
        out_w, left, right = _same_padding(width, kernel[1], stride[1])
    else:
        pad = 0 if padding == "valid" else int(padding)
        top = bottom = left = right = pad
        out_h = (height + 2 * pad - kernel[0]) // stride[0] + 1
        out_w = (width + 2 * pad - kernel[1]) // stride[1] + 1
    if out_h < 1 or out_w < 1:
        raise ShapeError(
            f"a {kernel[0]}x{kernel[1]} window with padding {padding!r} does not fit an input of "
            f"height x width {height}x{width}"
        )
    return (out_h, out_w), (top, bottom), (left, right)


def _check_nhwc(x: np.ndarray, what: str) -> None:
    if x.ndim != 4:
        raise ShapeError(f"{what} expects NHWC input of shape [N, H, W, C], got shape {x.shape}")


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: str | int = "same",
) -> np.ndarray:
    """2-D convolution (cross-correlation, as in TF and PyTorch) of NHWC images with an HWIO kernel.

    Parameters
    ----------
    x : np.ndarray [shape=(N, H, W, C_in), floating]
        Input images; any strides.
    weight : np.ndarray [shape=(kh, kw, C_in, C_out), same dtype as x]
        The kernel in TF's HWIO layout.
    bias : np.ndarray [shape=(C_out,)], optional
        Added to every output pixel.
    stride : int or (int, int)
        Step between windows along H and W.
    padding : {'same', 'valid'} or int
        'same' is TF's SAME (output ``ceil(H / stride)``, extra pad pixel bottom/right); 'valid' pads
        nothing; an int pads that many zeros on every side.

    Returns
    -------
    y : np.ndarray [shape=(N, H_out, W_out, C_out), dtype of x]
    """
    if isinstance(x, Tensor) or isinstance(weight, Tensor) or isinstance(bias, Tensor):
        from audioembed.nn.autograd import layer_ops  # imports this module: resolved at call time

        return layer_ops.conv2d(x, weight, bias, stride=stride, padding=padding)
    x = np.asarray(x)
    weight = np.asarray(weight)
    _check_nhwc(x, "conv2d")
    if weight.ndim != 4 or weight.shape[2] != x.shape[3]:
        raise ShapeError(
            f"conv2d expects an HWIO weight [kh, kw, {x.shape[3]}, C_out] for input {x.shape}, "
            f"got weight shape {weight.shape}"
        )
    if bias is not None and np.shape(bias) != (weight.shape[3],):
        raise ShapeError(f"conv2d expects a bias of shape ({weight.shape[3]},), got {np.shape(bias)}")
    strides = _pair(stride, "stride")
    (out_h, out_w), pad_h, pad_w = _resolve_padding(
        x.shape[1], x.shape[2], weight.shape[:2], strides, padding
    )
    if winograd.pays_off(x, weight, strides, (pad_h, pad_w)):  # 3×3 SAME float32: fewer multiplies
        return winograd.conv3x3_winograd(x, weight, bias)
    return _conv2d_im2col(x, weight, bias, strides, (out_h, out_w), pad_h, pad_w)


def _conv2d_im2col(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    out_hw: tuple[int, int],
    pad_h: tuple[int, int],
    pad_w: tuple[int, int],
) -> np.ndarray:
    """The reference engine: per chunk of images, gather patches (one copy per tap), then one GEMM."""
    n, height, width, c_in = x.shape
    kh, kw, _, c_out = weight.shape
    out_h, out_w = out_hw
    sh, sw = stride
    dtype = np.result_type(x.dtype, weight.dtype)
    y = np.empty((n, out_h, out_w, c_out), dtype=dtype)
    w2d = weight.reshape(kh * kw * c_in, c_out).astype(dtype, copy=False)  # rows ordered (i, j, c) like cols
    rows_per_image = out_h * out_w
    patch_bytes = rows_per_image * kh * kw * c_in * dtype.itemsize
    chunk = max(1, min(math.ceil(IM2COL_TARGET_ROWS / rows_per_image), IM2COL_MAX_BYTES // patch_bytes))
    padded_h, padded_w = height + sum(pad_h), width + sum(pad_w)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        xp = np.zeros((stop - start, padded_h, padded_w, c_in), dtype=dtype)  # zero border = the padding
        xp[:, pad_h[0] : pad_h[0] + height, pad_w[0] : pad_w[0] + width] = x[start:stop]
        cols = np.empty((stop - start, out_h, out_w, kh, kw, c_in), dtype=dtype)
        for i in range(kh):
            for j in range(kw):
                cols[:, :, :, i, j, :] = xp[
                    :, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw
                ]
        out = y[start:stop].reshape(-1, c_out)  # [n_chunk * out_h * out_w, C_out], a view into y
        np.matmul(cols.reshape(out.shape[0], -1), w2d, out=out)  # [P, kh*kw*C_in] @ [kh*kw*C_in, C_out]
        if bias is not None:
            out += np.asarray(bias, dtype=dtype)
    return y


def max_pool2d(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    *,
    padding: str = "valid",
) -> np.ndarray:
    """Max over k×k windows of NHWC images, per channel.

    Parameters
    ----------
    x : np.ndarray [shape=(N, H, W, C), floating]
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : {'valid', 'same'}
        'same' is TF's SAME: output ``ceil(H / stride)``, the extra pad on the bottom/right, and padded
        cells never win (they count as -inf).

    Returns
    -------
    y : np.ndarray [shape=(N, H_out, W_out, C), dtype of x]
    """
    if isinstance(x, Tensor):
        from audioembed.nn.autograd import layer_ops

        return layer_ops.max_pool2d(x, kernel_size, stride, padding=padding)
    x = np.asarray(x)
    _check_nhwc(x, "max_pool2d")
    kernel = _pair(kernel_size, "kernel_size")
    strides = kernel if stride is None else _pair(stride, "stride")
    _check_padding(padding, ("valid", "same"))
    (out_h, out_w), pad_h, pad_w = _resolve_padding(x.shape[1], x.shape[2], kernel, strides, padding)
    if sum(pad_h) or sum(pad_w):
        x = np.pad(x, ((0, 0), pad_h, pad_w, (0, 0)), constant_values=-np.inf)
    sh, sw = strides

    def tap(
        i: int, j: int
    ) -> np.ndarray:  # the window cell (i, j) of every output pixel: [N, out_h, out_w, C]
        return x[:, i : i + sh * (out_h - 1) + 1 : sh, j : j + sw * (out_w - 1) + 1 : sw]

    y = tap(0, 0).copy()
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            if i or j:
                np.maximum(y, tap(i, j), out=y)
    return y


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise, same shape and dtype. NaN stays NaN. The gradient at 0 is 0."""
    if isinstance(x, Tensor):
        return _ops.relu(x)
    x = np.asarray(x)
    return np.maximum(x, x.dtype.type(0))


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Dense layer ``x @ W + b`` with TF's ``[in, out]`` weight layout.

    Parameters
    ----------
    x : np.ndarray [shape=(..., in_features), floating]
    weight : np.ndarray [shape=(in_features, out_features)]
    bias : np.ndarray [shape=(out_features,)], optional

    Returns
    -------
    y : np.ndarray [shape=(..., out_features)]
    """
    if isinstance(x, Tensor) or isinstance(weight, Tensor) or isinstance(bias, Tensor):
        from audioembed.nn.autograd import layer_ops

        return layer_ops.linear(x, weight, bias)
    x = np.asarray(x)
    weight = np.asarray(weight)
    if weight.ndim != 2 or x.ndim < 1 or x.shape[-1] != weight.shape[0]:
        raise ShapeError(
            f"linear expects input [..., {weight.shape[0] if weight.ndim == 2 else 'in'}] and weight "
            f"[in, out], got input shape {x.shape} and weight shape {weight.shape}"
        )
    y = np.matmul(x, weight)
    if bias is not None:
        if np.shape(bias) != (weight.shape[1],):
            raise ShapeError(f"linear expects a bias of shape ({weight.shape[1]},), got {np.shape(bias)}")
        y += np.asarray(bias, dtype=y.dtype)
    return y


def flatten(x: np.ndarray, start_dim: int = 1) -> np.ndarray:
    """Merge the axes from ``start_dim`` on into one, in C (for NHWC: h, w, c) order.

    Parameters
    ----------
    x : np.ndarray [shape=(N, d1, ..., dk)]

    Returns
    -------
    y : np.ndarray [shape=(N, d1 * ... * dk)] for ``start_dim=1``
    """
    x = x if isinstance(x, Tensor) else np.asarray(x)
    if not 0 <= start_dim < max(x.ndim, 1):
        raise ShapeError(f"flatten start_dim {start_dim} is out of range for an input of shape {x.shape}")
    return x.reshape(*x.shape[:start_dim], math.prod(x.shape[start_dim:]))  # [N, H*W*C], NHWC order


# --- elementwise functions for training code: ndarray in → ndarray out, Tensor in → Tensor out -----------
def exp(x: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """``e ** x`` elementwise."""
    return _ops.exp(x)


def log(x: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """Natural logarithm elementwise."""
    return _ops.log(x)


def sigmoid(x: np.ndarray | Tensor) -> np.ndarray | Tensor:
    """``1 / (1 + e ** -x)`` elementwise, without overflow for large ``|x|``."""
    return _ops.sigmoid(x)


def log_softmax(x: np.ndarray | Tensor, axis: int = -1) -> np.ndarray | Tensor:
    """``x - log(sum(exp(x), axis))`` along ``axis``, computed stably (max subtracted first)."""
    return _ops.log_softmax(x, axis)
