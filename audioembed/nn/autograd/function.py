"""``Function``: a differentiable operation defined by a NumPy ``forward`` and ``backward`` pair.

In the style of ``torch.autograd.Function``::

    class Square(Function):
        @staticmethod
        def forward(ctx, x):                 # ndarrays in (Tensor arguments unwrapped), an ndarray out
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, grad_output):      # one gradient (or None) per forward argument
            (x,) = ctx.saved_tensors
            return 2 * x * grad_output

    y = Square.apply(t)                      # a Tensor (with a graph when t requires grad)

``apply`` takes Tensors, ndarrays and scalars mixed; it returns an ndarray when no argument is a Tensor
(the inference path: nothing recorded, nothing kept), else a Tensor, recorded iff grad mode is on and some
Tensor argument requires grad.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from audioembed.errors import GradientError
from audioembed.nn.autograd.engine import FREED_MESSAGE, Edge, Node
from audioembed.nn.autograd.grad_mode import is_grad_enabled


class FunctionCtx:
    """The ``ctx`` a Function's ``forward`` fills and its ``backward`` reads.

    Attributes
    ----------
    needs_input_grad : tuple of bool
        Per forward argument: whether backward must compute its gradient (a Tensor that requires grad,
        while recording). Skip the work for the others and return None.

    Any other attribute may be set in ``forward`` (hyper-parameters, shapes); everything is dropped when
    the graph is freed after backward.
    """

    def __init__(self, needs_input_grad: tuple[bool, ...]) -> None:
        self.needs_input_grad = needs_input_grad
        self._saved: tuple[Any, ...] = ()
        self._freed = False

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep ``arrays`` (ndarrays, Tensors — kept as their arrays — or None) for ``saved_tensors``."""
        self._saved = tuple(a.data if isinstance(a, Tensor) else a for a in arrays)

    @property
    def saved_tensors(self) -> tuple[Any, ...]:
        """What :meth:`save_for_backward` kept, as arrays; GradientError once the graph was freed."""
        if self._freed:
            raise GradientError(FREED_MESSAGE)
        return self._saved

    def _release(self) -> None:
        needs = self.needs_input_grad
        self.__dict__.clear()  # saved arrays and any array kept as an attribute: freed now
        self.needs_input_grad, self._saved, self._freed = needs, (), True


class FunctionNode(Node):
    """The recorded call of a :class:`Function`: runs its ``backward`` with the saved context."""

    def __init__(
        self,
        function: type[Function],
        ctx: FunctionCtx,
        next_edges: Sequence[Edge | None],
        output: np.ndarray,
    ) -> None:
        super().__init__(next_edges, [(output.shape, output.dtype)])
        self.function = function
        self.ctx = ctx
        self.fresh_gradients = function.fresh_gradients

    def name(self) -> str:
        return f"{self.function.__name__}Backward"

    def apply(self, grads: list[np.ndarray | None]) -> Sequence[np.ndarray | None]:
        result = self.function.backward(self.ctx, grads[0])
        results = result if isinstance(result, tuple) else (result,)
        if len(results) != len(self.next_edges):
            raise GradientError(
                f"{self.function.__name__}.backward returned {len(results)} gradient(s), expected "
                f"{len(self.next_edges)} (one per forward argument, None for those without one)"
            )
        return results

    def release(self) -> None:
        super().release()
        self.ctx._release()


class Function:
    """Base class of differentiable operations: subclass, define static ``forward`` and ``backward``.

    ``forward(ctx, *args)`` receives the arguments with Tensors unwrapped to their ndarrays and returns one
    ndarray. ``backward(ctx, grad_output)`` receives the gradient of that output (an ndarray of its shape)
    and returns one gradient per forward argument (an ndarray of that argument's shape, or None), as a
    tuple when there are several.
    """

    # True when backward returns new arrays referenced nowhere else (never grad_output itself, never the
    # same array twice): the engine then keeps them as a leaf's .grad without copying.
    fresh_gradients = False

    @staticmethod
    def forward(ctx: FunctionCtx, *args: Any) -> np.ndarray:
        """Compute the output from ndarrays; save what backward needs on ``ctx``."""
        raise NotImplementedError("a Function subclass defines forward(ctx, *args)")

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: np.ndarray) -> Any:
        """Gradients of the forward arguments from the gradient of the output."""
        raise NotImplementedError("a Function subclass defines backward(ctx, grad_output)")

    @classmethod
    def apply(cls, *args: Any) -> Any:
        """Run ``forward`` on the arguments (Tensors unwrapped) and record it when needed.

        Returns
        -------
        output : Tensor or np.ndarray
            An ndarray when no argument is a Tensor; else a Tensor, with ``grad_fn`` set iff grad mode is
            on and some Tensor argument requires grad.
        """
        any_tensor = False
        record = False
        for arg in args:
            if isinstance(arg, Tensor):
                any_tensor = True
                record = record or arg.requires_grad
        record = record and is_grad_enabled()
        needs = tuple(record and isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        output = cls.forward(ctx, *raw)
        if not any_tensor:
            return output
        output = np.asarray(output)
        if not record:
            return Tensor(output)
        edges = [a._edge() if need else None for a, need in zip(args, needs, strict=True)]
        return Tensor._from_node(output, FunctionNode(cls, ctx, edges, output), 0)


# At the bottom: tensor.py imports ops.py, which imports this module; either import order then works.
from audioembed.nn.autograd.tensor import Tensor  # noqa: E402
