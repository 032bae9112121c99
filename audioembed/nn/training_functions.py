"""The train/eval ops and losses as autograd :class:`Function` s, each one kernel pair.

:mod:`audioembed.nn.training_ops` calls these when a Tensor is involved; the forward and backward are the
kernels of :mod:`functional_norm`, :mod:`functional_dropout` and :mod:`functional_loss`, whose backward
passes have float64 finite-difference tests. Hyper-parameters, running statistics and class weights are
passed as plain arguments and get no gradient (None).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from audioembed.nn import functional_loss as fl
from audioembed.nn import functional_norm as fn
from audioembed.nn.autograd import Function, FunctionCtx
from audioembed.nn.functional_dropout import dropout_backward, dropout_forward


def _norm_grads(ctx: FunctionCtx, grad: np.ndarray, n_extra: int) -> tuple[Any, ...]:
    """``(grad_x, grad_weight, grad_bias, None * n_extra)`` for a norm that saved ``(NormSaved, shape)``."""
    saved, param_shape = ctx.saved_tensors
    grad_x, grad_weight, grad_bias = fn.norm_backward(grad, saved, param_shape)
    needs = ctx.needs_input_grad
    return (
        grad_x if needs[0] else None,
        grad_weight if needs[1] else None,
        grad_bias if needs[2] else None,
        *([None] * n_extra),
    )


class _RunningStatsNormFunction(Function):
    """A norm with running statistics: ``forward_kernel`` / ``norm_backward``.

    ``forward_kernel(x, running_mean, running_var, weight, bias, batch_stats, momentum, eps)`` normalises
    with the batch's statistics when ``batch_stats`` (updating the running ones in place), else with the
    running ones.
    """

    fresh_gradients = True
    forward_kernel: Callable[..., tuple[np.ndarray, fn.NormSaved]]

    @classmethod
    def forward(
        cls,
        ctx: FunctionCtx,
        x: np.ndarray,
        weight: np.ndarray | None,
        bias: np.ndarray | None,
        running_mean: np.ndarray | None,
        running_var: np.ndarray | None,
        batch_stats: bool,
        momentum: float,
        eps: float,
    ) -> np.ndarray:
        y, saved = cls.forward_kernel(x, running_mean, running_var, weight, bias, batch_stats, momentum, eps)
        ctx.save_for_backward(saved, (x.shape[-1],))
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        return _norm_grads(ctx, grad, 5)


class BatchNormFunction(_RunningStatsNormFunction):
    """``batch_norm_forward`` (``batch_stats`` = training) / ``norm_backward``."""

    forward_kernel = staticmethod(fn.batch_norm_forward)


class InstanceNormFunction(_RunningStatsNormFunction):
    """``instance_norm_forward`` (``batch_stats`` = use_input_stats) / ``norm_backward``."""

    forward_kernel = staticmethod(fn.instance_norm_forward)


class LayerNormFunction(Function):
    """``layer_norm_forward`` / ``norm_backward``."""

    fresh_gradients = True

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: np.ndarray,
        weight: np.ndarray | None,
        bias: np.ndarray | None,
        normalized_shape: tuple[int, ...],
        eps: float,
    ) -> np.ndarray:
        y, saved = fn.layer_norm_forward(x, normalized_shape, weight, bias, eps)
        ctx.save_for_backward(saved, tuple(normalized_shape))
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        return _norm_grads(ctx, grad, 2)


class DropoutFunction(Function):
    """Inverted dropout in training (the identity is handled by the caller, without a node)."""

    fresh_gradients = True

    @staticmethod
    def forward(ctx: FunctionCtx, x: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
        y, mask = dropout_forward(x, p, True, rng)
        ctx.save_for_backward(mask)
        return y

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        (mask,) = ctx.saved_tensors
        return dropout_backward(grad, mask), None, None


class CrossEntropyFunction(Function):
    """``cross_entropy_forward`` / ``cross_entropy_backward`` (a target gradient for probability targets)."""

    fresh_gradients = True

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: np.ndarray,
        target: np.ndarray,
        weight: np.ndarray | None,
        label_smoothing: float,
        reduction: str,
        ignore_index: int = fl.IGNORE_INDEX,
    ) -> np.ndarray:
        value, saved = fl.cross_entropy_forward(
            logits, target, weight, label_smoothing, reduction, ignore_index
        )
        ctx.save_for_backward(saved)
        return value

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        (saved,) = ctx.saved_tensors
        grad_logits, grad_target = fl.cross_entropy_backward(grad, saved)
        needs = ctx.needs_input_grad
        return grad_logits if needs[0] else None, grad_target if needs[1] else None, None, None, None, None


class BCEWithLogitsFunction(Function):
    """``binary_cross_entropy_with_logits_forward`` / ``..._backward``."""

    fresh_gradients = True

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        logits: np.ndarray,
        target: np.ndarray,
        weight: np.ndarray | None,
        pos_weight: np.ndarray | None,
        reduction: str,
    ) -> np.ndarray:
        value, saved = fl.binary_cross_entropy_with_logits_forward(
            logits, target, weight, pos_weight, reduction
        )
        ctx.save_for_backward(saved)
        return value

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        (saved,) = ctx.saved_tensors
        grad_logits, grad_target = fl.binary_cross_entropy_with_logits_backward(grad, saved)
        needs = ctx.needs_input_grad
        # The target gradient may be a broadcast view: copied, so that it is a fresh, writable array.
        grad_target = np.array(grad_target) if needs[1] else None
        return grad_logits if needs[0] else None, grad_target, None, None, None


class MSEFunction(Function):
    """``mse_loss_forward`` / ``mse_loss_backward``."""

    fresh_gradients = True

    @staticmethod
    def forward(ctx: FunctionCtx, input: np.ndarray, target: np.ndarray, reduction: str) -> np.ndarray:
        value, saved = fl.mse_loss_forward(input, target, reduction)
        ctx.save_for_backward(saved)
        return value

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        (saved,) = ctx.saved_tensors
        grad_input, grad_target = fl.mse_loss_backward(grad, saved)
        needs = ctx.needs_input_grad
        return grad_input if needs[0] else None, grad_target if needs[1] else None, None
