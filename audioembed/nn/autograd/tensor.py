"""``Tensor``: an ndarray that may record the operations applied to it, for reverse-mode autograd.

The rule that keeps inference free: layers and ops given plain ndarrays compute on them and return
ndarrays, recording nothing. Wrap a batch in a Tensor to train (``model(Tensor(x))``): the result is a
Tensor, with a graph (``grad_fn``) iff grad mode is on and some input Tensor or Parameter requires grad.

The API mirrors ndarray's (``reshape``, ``transpose(axes)``, ``sum(axis, keepdims)``) plus PyTorch's
autograd members (``backward``, ``grad``, ``requires_grad``, ``grad_fn``, ``register_hook``, ``detach``).
NumPy ufuncs with a differentiable op (``np.add``, ``np.exp``, ``np.matmul`` ...) dispatch to it, so
``ndarray + Tensor`` is a Tensor; any other ufunc computes on the data and returns an ndarray, and refuses
a Tensor that requires grad while grad mode is on (the gradient would be silently lost).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

from audioembed.errors import GradientError, InvalidInputError
from audioembed.nn.autograd.engine import AccumulateGrad, Edge, Node, run_backward
from audioembed.nn.autograd.grad_mode import is_grad_enabled
from audioembed.nn.hooks import RemovableHandle

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


class Tensor:
    """An ndarray (:attr:`data`) with autograd: a gradient, a flag, and the node that produced it.

    Parameters
    ----------
    data : array_like or Tensor
        The values; an ndarray is wrapped without a copy (a Tensor's array is shared, as by ``detach``).
    requires_grad : bool
        Whether backward accumulates a gradient into :attr:`grad` (floating dtypes only).

    Attributes
    ----------
    data : np.ndarray
        The values.
    grad : np.ndarray or None
        For a leaf that requires grad: the gradient accumulated by backward passes (None before the first).
    grad_fn : Node or None
        The recorded operation that produced this tensor (None for a leaf).
    """

    __slots__ = (
        "__weakref__",
        "_accumulator",
        "_hooks",
        "_output_nr",
        "_requires_grad",
        "data",
        "grad",
        "grad_fn",
    )
    __array_priority__ = 1000.0  # win over ndarray in mixed binary operators

    def __init__(self, data: ArrayLike, requires_grad: bool = False) -> None:
        array = data.data if isinstance(data, Tensor) else np.asarray(data)
        self.data: np.ndarray = array
        self.grad: np.ndarray | None = None
        self.grad_fn: Node | None = None
        self._output_nr = 0
        self._hooks: dict[int, Callable[[np.ndarray], Any]] = {}
        self._accumulator: weakref.ref[AccumulateGrad] | None = None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _from_node(cls, data: np.ndarray, node: Node, output_nr: int) -> Tensor:
        """A non-leaf Tensor: output ``output_nr`` of the recorded ``node``."""
        tensor = cls.__new__(cls)
        Tensor.__init__(tensor, data)
        tensor.grad_fn, tensor._output_nr, tensor._requires_grad = node, output_nr, True
        tensor._hooks = node.pre_hooks[output_nr]  # hooks on a non-leaf run when its node's gradient is ready
        return tensor

    # --- autograd state ------------------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow to (a leaf) or through (a non-leaf) this tensor."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        if not isinstance(flag, bool):
            raise TypeError(f"requires_grad must be a bool, got {flag!r}")
        if self.grad_fn is not None:
            raise GradientError(
                "requires_grad can only be changed on a leaf tensor; use .detach() to make a new leaf"
            )
        if flag and not np.issubdtype(self.data.dtype, np.floating):
            raise InvalidInputError(f"only floating-point tensors can require grad, got dtype {self.dtype}")
        self._requires_grad = flag

    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Set :attr:`requires_grad` in place; returns self."""
        self.requires_grad = flag
        return self

    @property
    def is_leaf(self) -> bool:
        """True for tensors not produced by a recorded operation (their ``.grad`` is filled by backward)."""
        return self.grad_fn is None

    def _edge(self) -> Edge:
        """Where a gradient for this tensor goes: its node's output, or its leaf accumulator."""
        if self.grad_fn is not None:
            return self.grad_fn, self._output_nr
        accumulator = self._accumulator() if self._accumulator is not None else None
        if accumulator is None:  # weak: the graphs hold it, so a leaf used in no graph holds nothing
            accumulator = AccumulateGrad(self)
            self._accumulator = weakref.ref(accumulator)
        return accumulator, 0

    def backward(self, gradient: ArrayLike | Tensor | None = None, retain_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into ``.grad`` of every leaf it depends on.

        Parameters
        ----------
        gradient : array_like [shape=self.shape], optional
            The gradient of some scalar with respect to this tensor; may be omitted for a one-element
            tensor (it is then 1).
        retain_graph : bool
            Keep the graph's saved arrays so that backward may run through it again.

        Raises
        ------
        GradientError
            This tensor does not require grad, is not a scalar and no ``gradient`` was given, the
            ``gradient`` has the wrong shape, or the graph was freed by an earlier backward.
        """
        if not self.requires_grad:
            raise GradientError(
                "backward() of a tensor that does not require grad and has no grad_fn: nothing to "
                "differentiate (wrap inputs as Tensor(x, requires_grad=True) or unfreeze the parameters)"
            )
        if gradient is None:
            if self.data.size != 1:
                raise GradientError(
                    "backward() without a gradient needs a one-element (scalar) output, "
                    f"got shape {self.shape}"
                )
            grad = np.ones_like(self.data)
        else:
            grad = np.asarray(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=self.dtype)
            if grad.shape != self.shape:
                raise GradientError(
                    f"backward() gradient has shape {grad.shape}, the tensor has shape {self.shape}"
                )
        run_backward([(self._edge(), grad)], retain_graph=retain_graph)

    def register_hook(self, hook: Callable[[np.ndarray], Any]) -> RemovableHandle:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a non-None result replaces it.

        On a leaf the hook runs before the gradient is accumulated into ``.grad``; on an intermediate
        tensor (an activation) it sees, and may replace, the gradient flowing back through it. A
        replacement of another shape raises GradientError.
        """
        if not self.requires_grad:
            raise GradientError("cannot register a hook on a tensor that does not require grad")
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {hook!r}")
        handle = RemovableHandle(self._hooks)
        self._hooks[handle.id] = hook
        return handle

    def retain_grad(self) -> None:
        """Make a non-leaf tensor keep its gradient in ``.grad`` during backward (a leaf always does)."""
        if self.grad_fn is None:
            return
        ref = weakref.ref(self)

        def keep(grad: np.ndarray) -> None:
            tensor = ref()
            if tensor is not None:
                tensor.grad = grad.copy() if tensor.grad is None else tensor.grad + grad

        self.register_hook(keep)

    def detach(self) -> Tensor:
        """A new leaf sharing this tensor's array, outside any graph."""
        return Tensor(self.data)

    # --- array-like ------------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The underlying ndarray (shared, not copied)."""
        return self.data

    def item(self) -> Any:
        """The value of a one-element tensor as a Python scalar."""
        if self.data.size != 1:
            raise InvalidInputError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self.data.item()

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return np.asarray(self.data, dtype=dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the array."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """Dtype of the array."""
        return self.data.dtype

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return self.data.size

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", threshold=20, prefix="Tensor(")
        extra = f", grad_fn=<{self.grad_fn.name()}>" if self.grad_fn is not None else ""
        extra += ", requires_grad=True" if self.requires_grad and self.grad_fn is None else ""
        return f"Tensor({body}, dtype={self.dtype}{extra})"

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        # Pickles and deep copies carry the values, the flag and the gradient of a leaf; never hooks or
        # graph links (a copy is a new leaf). A non-leaf would silently lose its graph: refused, as PyTorch.
        if self.grad_fn is not None:
            raise GradientError(
                "only leaf tensors can be pickled or deep-copied; use .detach() to copy the values"
            )
        return _rebuild, (type(self), self.data, self._requires_grad, self.grad)

    # Identity equality and hashing (Tensors are dict keys and registered objects); compare .data for values.
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    # --- differentiable operators (implemented in ops.py) ----------------------------------------------
    def __add__(self, other: Any) -> Tensor:
        return _ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.div(other, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.matmul(other, self)

    def __neg__(self) -> Tensor:
        return _ops.neg(self)

    def __pos__(self) -> Tensor:
        return self

    def __pow__(self, exponent: Any) -> Tensor:
        return _ops.power(self, exponent)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes by default)."""
        return _ops.sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes by default)."""
        return _ops.mean(self, axis=axis, keepdims=keepdims)

    def reshape(self, *shape: Any) -> Tensor:
        """Same values in a new shape (ndarray's rules: ``reshape(2, -1)`` or ``reshape((2, -1))``)."""
        return _ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Tensor:
        """Permute the axes (ndarray's rules: no argument reverses them)."""
        return _ops.transpose(self, axes[0] if len(axes) == 1 else (axes or None))

    def swapaxes(self, axis1: int, axis2: int) -> Tensor:
        """Exchange two axes (what PyTorch calls ``transpose(dim0, dim1)``)."""
        order = list(range(self.ndim))
        order[axis1], order[axis2] = order[axis2], order[axis1]
        return _ops.transpose(self, tuple(order))

    @property
    def T(self) -> Tensor:  # noqa: N802 (ndarray's name)
        """The axes reversed."""
        return _ops.transpose(self, None)

    def astype(self, dtype: DTypeLike) -> Tensor:
        """The values converted to ``dtype``; the gradient flows back converted to this tensor's dtype."""
        return self if np.dtype(dtype) == self.dtype else _ops.cast(self, dtype)

    def exp(self) -> Tensor:
        """``e ** x`` elementwise."""
        return _ops.exp(self)

    def log(self) -> Tensor:
        """Natural logarithm elementwise."""
        return _ops.log(self)

    def relu(self) -> Tensor:
        """``max(x, 0)`` elementwise."""
        return _ops.relu(self)

    def sigmoid(self) -> Tensor:
        """``1 / (1 + e ** -x)`` elementwise."""
        return _ops.sigmoid(self)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        op = _ops.UFUNCS.get(ufunc) if method == "__call__" and not kwargs else None
        if op is not None:
            return op(*inputs)
        if is_grad_enabled() and any(isinstance(a, Tensor) and a.requires_grad for a in inputs):
            raise GradientError(
                f"np.{ufunc.__name__} has no gradient here and would drop the graph of a tensor that "
                "requires grad: use the Tensor operators or nn.functional, or .detach() first"
            )
        arrays = [a.data if isinstance(a, Tensor) else a for a in inputs]
        return getattr(ufunc, method)(*arrays, **kwargs)


def _rebuild(cls: type[Tensor], data: np.ndarray, requires_grad: bool, grad: np.ndarray | None) -> Tensor:
    """Unpickle a leaf Tensor (or subclass, e.g. Parameter) from :meth:`Tensor.__reduce_ex__`'s state."""
    tensor = cls.__new__(cls)
    Tensor.__init__(tensor, data, requires_grad=requires_grad)
    tensor.grad = grad
    return tensor


from audioembed.nn.autograd import ops as _ops  # noqa: E402  (ops needs Tensor defined first)
