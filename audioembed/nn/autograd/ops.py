"""Differentiable elementwise, reduction, shape and matrix operations, each a :class:`Function`.

Binary operations broadcast like NumPy; their backward sums the gradient back to each operand's shape.
Every function here takes Tensors, ndarrays or scalars; given no Tensor it returns a plain ndarray.
"""

from __future__ import annotations

import builtins
from typing import Any

import numpy as np

from audioembed.nn.autograd.function import Function, FunctionCtx


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


class Add(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, b: Any) -> np.ndarray:
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.add(a, b)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, Any]:
        need_a, need_b = ctx.needs_input_grad
        return (
            unbroadcast(grad, ctx.shapes[0]) if need_a else None,
            unbroadcast(grad, ctx.shapes[1]) if need_b else None,
        )


class Sub(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, b: Any) -> np.ndarray:
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.subtract(a, b)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, Any]:
        need_a, need_b = ctx.needs_input_grad
        return (
            unbroadcast(grad, ctx.shapes[0]) if need_a else None,
            unbroadcast(-grad, ctx.shapes[1]) if need_b else None,
        )


class Mul(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, b: Any) -> np.ndarray:
        need_a, need_b = ctx.needs_input_grad
        ctx.save_for_backward(b if need_a else None, a if need_b else None)
        ctx.shapes = (np.shape(a), np.shape(b))
        return np.multiply(a, b)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, Any]:
        b, a = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        return (
            unbroadcast(grad * b, ctx.shapes[0]) if need_a else None,
            unbroadcast(grad * a, ctx.shapes[1]) if need_b else None,
        )


class Div(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, b: Any) -> np.ndarray:
        out = np.true_divide(a, b)
        ctx.save_for_backward(b, out if ctx.needs_input_grad[1] else None)
        ctx.shapes = (np.shape(a), np.shape(b))
        return out

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, Any]:
        b, out = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad / b
        return (
            unbroadcast(grad_a, ctx.shapes[0]) if need_a else None,
            unbroadcast(-grad_a * out, ctx.shapes[1]) if need_b else None,  # d(a/b)/db = -(a/b)/b
        )


class Cast(Function):
    """``a.astype(dtype)``; the gradient is cast back to ``a``'s dtype."""

    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, dtype: Any) -> np.ndarray:
        a = np.asarray(a)
        ctx.dtype = a.dtype
        return a.astype(dtype, copy=False)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[np.ndarray, None]:
        return grad.astype(ctx.dtype, copy=False), None


class Neg(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any) -> np.ndarray:
        return np.negative(a)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> np.ndarray:
        return -grad


class Power(Function):
    """``a ** exponent`` for a constant (scalar) exponent."""

    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, exponent: Any) -> np.ndarray:
        ctx.save_for_backward(a)
        ctx.exponent = exponent
        return np.power(a, exponent)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, None]:
        (a,) = ctx.saved_tensors
        p = ctx.exponent
        return grad * (p * np.power(a, p - 1)), None


class MatMul(Function):
    """``a @ b`` with NumPy's rules (1-D operands, broadcast batch axes)."""

    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, b: Any) -> np.ndarray:
        a, b = np.asarray(a), np.asarray(b)
        need_a, need_b = ctx.needs_input_grad
        ctx.save_for_backward(b if need_a else None, a if need_b else None)
        ctx.shapes = (a.shape, b.shape)
        return np.matmul(a, b)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, Any]:
        b, a = ctx.saved_tensors
        shape_a, shape_b = ctx.shapes
        need_a, need_b = ctx.needs_input_grad
        # Promote 1-D operands to matrices as matmul does, so one formula covers every case.
        promoted_a, promoted_b = _promoted(shape_a, 0), _promoted(shape_b, 1)
        batch = np.broadcast_shapes(promoted_a[:-2], promoted_b[:-2])
        grad = grad.reshape(*batch, promoted_a[-2], promoted_b[-1])
        a = a.reshape(promoted_a) if a is not None else None
        b = b.reshape(promoted_b) if b is not None else None
        grad_a = grad_b = None
        if need_a:
            grad_a = unbroadcast(np.matmul(grad, np.swapaxes(b, -1, -2)), promoted_a)
        if need_b:
            grad_b = unbroadcast(np.matmul(np.swapaxes(a, -1, -2), grad), promoted_b)
        return (
            grad_a.reshape(shape_a) if grad_a is not None else None,
            grad_b.reshape(shape_b) if grad_b is not None else None,
        )


def _promoted(shape: tuple[int, ...], side: int) -> tuple[int, ...]:
    if len(shape) != 1:
        return shape
    return (1, shape[0]) if side == 0 else (shape[0], 1)


def _axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    return tuple(int(a) % builtins.max(ndim, 1) for a in axes)


class Sum(Function):
    fresh_gradients = True

    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, axis: Any, keepdims: bool) -> np.ndarray:
        a = np.asarray(a)
        ctx.shape, ctx.axes, ctx.keepdims = a.shape, _axes(axis, a.ndim), keepdims
        return np.sum(a, axis=axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[np.ndarray, None, None]:
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        return np.broadcast_to(grad, ctx.shape).copy(), None, None


class Reshape(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, shape: Any) -> np.ndarray:
        a = np.asarray(a)
        ctx.shape = a.shape
        return a.reshape(shape)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[np.ndarray, None]:
        return grad.reshape(ctx.shape), None


class Transpose(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, axes: Any) -> np.ndarray:
        a = np.asarray(a)
        order = tuple(reversed(range(a.ndim))) if axes is None else tuple(int(i) % a.ndim for i in axes)
        ctx.inverse = tuple(np.argsort(order))
        return a.transpose(order)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[np.ndarray, None]:
        return grad.transpose(ctx.inverse), None


def _is_basic(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(
        p is None or p is Ellipsis or (isinstance(p, (slice, int, np.integer)) and not isinstance(p, bool))
        for p in parts
    )


class GetItem(Function):
    """Indexing: basic (ints, slices, None, ...) and advanced (integer or boolean arrays)."""

    fresh_gradients = True

    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, index: Any) -> np.ndarray:
        a = np.asarray(a)
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        return a[index]

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[np.ndarray, None]:
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        if _is_basic(ctx.index):
            out[ctx.index] = grad  # basic indexing selects each element at most once
        else:
            np.add.at(out, ctx.index, grad)  # an advanced index may repeat elements: their gradients add
        return out, None


class Exp(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any) -> np.ndarray:
        out = np.exp(a)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> np.ndarray:
        (out,) = ctx.saved_tensors
        return grad * out


class Log(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any) -> np.ndarray:
        ctx.save_for_backward(a)
        return np.log(a)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> np.ndarray:
        (a,) = ctx.saved_tensors
        return grad / a


class Relu(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any) -> np.ndarray:
        a = np.asarray(a)
        out = np.maximum(a, a.dtype.type(0))
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> np.ndarray:
        (out,) = ctx.saved_tensors
        return grad * (out > 0)  # zero gradient at 0, as PyTorch


class Sigmoid(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any) -> np.ndarray:
        a = np.asarray(a)
        out = np.exp(-np.logaddexp(a.dtype.type(0), -a))  # 1 / (1 + e^-a) without overflow for large |a|
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> np.ndarray:
        (out,) = ctx.saved_tensors
        return grad * out * (1 - out)


class LogSoftmax(Function):
    @staticmethod
    def forward(ctx: FunctionCtx, a: Any, axis: int) -> np.ndarray:
        a = np.asarray(a)
        shifted = a - a.max(axis=axis, keepdims=True)  # the max subtracted first: exp never overflows
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.save_for_backward(out)
        ctx.axis = axis
        return out

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[np.ndarray, None]:
        (out,) = ctx.saved_tensors
        return grad - np.exp(out) * grad.sum(axis=ctx.axis, keepdims=True), None


# --- the functional entry points ---------------------------------------------------------------------------
def add(a: Any, b: Any) -> Any:
    """``a + b`` with broadcasting."""
    return Add.apply(a, b)


def sub(a: Any, b: Any) -> Any:
    """``a - b`` with broadcasting."""
    return Sub.apply(a, b)


def mul(a: Any, b: Any) -> Any:
    """``a * b`` elementwise with broadcasting."""
    return Mul.apply(a, b)


def div(a: Any, b: Any) -> Any:
    """``a / b`` elementwise with broadcasting."""
    return Div.apply(a, b)


def cast(a: Any, dtype: Any) -> Any:
    """``a`` converted to ``dtype`` (differentiable between floating dtypes)."""
    return Cast.apply(a, np.dtype(dtype))


def neg(a: Any) -> Any:
    """``-a``."""
    return Neg.apply(a)


def power(a: Any, exponent: Any) -> Any:
    """``a ** exponent`` for a scalar (int or float) exponent."""
    if not isinstance(exponent, (int, float, np.integer, np.floating)) or isinstance(exponent, bool):
        raise TypeError(f"a Tensor's ** takes a scalar exponent, got {type(exponent).__name__} {exponent!r}")
    return Power.apply(a, exponent)


def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` (NumPy's matmul rules)."""
    return MatMul.apply(a, b)


def sum(a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Sum over ``axis`` (all axes when None)."""
    return Sum.apply(a, axis, keepdims)


def mean(a: Any, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Any:
    """Mean over ``axis`` (all axes when None)."""
    shape = np.shape(a)
    count = int(np.prod([shape[i] for i in _axes(axis, len(shape))]))
    return Sum.apply(a, axis, keepdims) / count if count else Sum.apply(a, axis, keepdims) * np.nan


def reshape(a: Any, shape: Any) -> Any:
    """The same values in ``shape`` (one axis may be -1)."""
    return Reshape.apply(a, shape)


def transpose(a: Any, axes: Any = None) -> Any:
    """Permute axes (reverse them when ``axes`` is None)."""
    return Transpose.apply(a, axes)


def getitem(a: Any, index: Any) -> Any:
    """``a[index]``; Tensors inside the index are read as arrays (indices carry no gradient)."""
    if isinstance(index, tuple):
        index = tuple(getattr(i, "data", i) if hasattr(i, "grad_fn") else i for i in index)
    elif hasattr(index, "grad_fn"):
        index = index.data
    return GetItem.apply(a, index)


def exp(a: Any) -> Any:
    """``e ** a`` elementwise."""
    return Exp.apply(a)


def log(a: Any) -> Any:
    """Natural logarithm elementwise."""
    return Log.apply(a)


def relu(a: Any) -> Any:
    """``max(a, 0)`` elementwise; the gradient at 0 is 0."""
    return Relu.apply(a)


def sigmoid(a: Any) -> Any:
    """``1 / (1 + e ** -a)`` elementwise, stable for large ``|a|``."""
    return Sigmoid.apply(a)


def log_softmax(a: Any, axis: int = -1) -> Any:
    """``a - log(sum(exp(a), axis))``, computed stably."""
    return LogSoftmax.apply(a, axis)


# NumPy ufuncs that Tensor.__array_ufunc__ routes to the differentiable operations above.
UFUNCS = {
    np.add: add,
    np.subtract: sub,
    np.multiply: mul,
    np.true_divide: div,
    np.negative: neg,
    np.matmul: matmul,
    np.exp: exp,
    np.log: log,
    np.power: power,
}
