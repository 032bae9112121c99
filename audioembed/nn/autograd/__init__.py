"""Reverse-mode automatic differentiation over NumPy arrays: ``Tensor``, ``Function``, grad mode.

See :mod:`audioembed.nn.autograd.tensor` for the rule that keeps inference free (ndarrays in, ndarrays out,
nothing recorded) and :mod:`audioembed.nn.autograd.function` for defining new differentiable operations.
"""

from audioembed.nn.autograd.engine import Node
from audioembed.nn.autograd.function import Function, FunctionCtx
from audioembed.nn.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from audioembed.nn.autograd.tensor import Tensor

__all__ = [
    "Function",
    "FunctionCtx",
    "Node",
    "Tensor",
    "enable_grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]
