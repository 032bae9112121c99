"""The layers' kernels as differentiable :class:`Function` s: what a layer runs when given a Tensor.

Forward calls the same :mod:`audioembed.nn.functional` kernels as the ndarray path; backward calls
:mod:`audioembed.nn.functional_backward`. Each saves only what its backward needs, and only for the
arguments that need a gradient (a frozen conv layer keeps no input for its weight gradient).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from audioembed.nn import functional, parallel_gemm
from audioembed.nn import functional_backward as backward
from audioembed.nn.autograd.function import Function, FunctionCtx


class Conv2dFunction(Function):
    """``conv2d(x, weight, bias)`` with fixed stride and padding."""

    fresh_gradients = True

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: np.ndarray,
        weight: np.ndarray,
        bias: np.ndarray | None,
        stride: Any,
        padding: Any,
    ) -> np.ndarray:
        need_x, need_w, _, _, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if need_w else None, weight if need_x else None)
        ctx.x_shape, ctx.weight_shape, ctx.stride, ctx.padding = x.shape, weight.shape, stride, padding
        return functional.conv2d(x, weight, bias, stride=stride, padding=padding)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b, _, _ = ctx.needs_input_grad
        geometry = {"stride": ctx.stride, "padding": ctx.padding}
        grad_x = backward.conv2d_backward_input(grad, weight, ctx.x_shape, **geometry) if need_x else None
        grad_w = backward.conv2d_backward_weight(grad, x, ctx.weight_shape, **geometry) if need_w else None
        grad_b = backward.conv2d_backward_bias(grad) if need_b else None
        return grad_x, grad_w, grad_b, None, None


class MaxPool2dFunction(Function):
    """``max_pool2d(x)``; saves each window's winning position, not the input."""

    fresh_gradients = True

    @staticmethod
    def forward(ctx: FunctionCtx, x: np.ndarray, kernel_size: Any, stride: Any, padding: str) -> np.ndarray:
        if not ctx.needs_input_grad[0]:
            return functional.max_pool2d(x, kernel_size, stride, padding=padding)
        functional._check_nhwc(x, "max_pool2d")
        y, winner = backward.max_pool2d_forward(x, kernel_size, stride, padding)
        ctx.save_for_backward(winner)
        ctx.geometry = (x.shape, kernel_size, stride, padding)
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        (winner,) = ctx.saved_tensors
        return backward.max_pool2d_backward(grad, winner, *ctx.geometry), None, None, None


class LinearFunction(Function):
    """``x @ weight + bias`` with a ``[in, out]`` weight."""

    fresh_gradients = True

    @staticmethod
    def forward(ctx: FunctionCtx, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        need_x, need_w, _ = ctx.needs_input_grad
        ctx.save_for_backward(x if need_w else None, weight if need_x else None)
        fits = weight.ndim == 2 and x.shape[-1] == weight.shape[0] and np.shape(bias) == (weight.shape[1],)
        if fits and x.ndim == 2 and x.dtype == weight.dtype == np.float32:
            y = parallel_gemm.matmul(x, weight)  # the big fc layers: both cores, BLAS single-threaded
            y += bias
            return y
        return functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        x, weight = ctx.saved_tensors
        return backward.linear_backward(grad, x, weight, ctx.needs_input_grad)


def conv2d(x: Any, weight: Any, bias: Any = None, *, stride: Any = 1, padding: Any = "same") -> Any:
    """Differentiable :func:`~audioembed.nn.functional.conv2d` (Tensors or arrays)."""
    return Conv2dFunction.apply(x, weight, bias, stride, padding)


def max_pool2d(x: Any, kernel_size: Any, stride: Any = None, *, padding: str = "valid") -> Any:
    """Differentiable :func:`~audioembed.nn.functional.max_pool2d`."""
    return MaxPool2dFunction.apply(x, kernel_size, stride, padding)


def linear(x: Any, weight: Any, bias: Any = None) -> Any:
    """Differentiable :func:`~audioembed.nn.functional.linear`."""
    return LinearFunction.apply(x, weight, bias)
