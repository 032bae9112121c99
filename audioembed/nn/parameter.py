"""``Parameter``: an array that a :class:`~audioembed.nn.Module` registers as one of its parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike


class Parameter(np.lib.mixins.NDArrayOperatorsMixin):
    """A thin holder of a floating-point array that a Module registers as one of its parameters.

    Usable wherever an array is expected: ``np.asarray(p)`` returns the held array without a copy, NumPy
    functions accept it, and arithmetic operators (``p * 2``, ``x @ p``) give plain ndarrays. Equality and
    hashing stay by identity, as for any registered object (elementwise ``==`` would make it unhashable
    and ambiguous in ``if``); compare ``p.data`` for values. Casts
    (``Module.float()``) and loads replace :attr:`data`, so the holder itself stays registered.

    Parameters
    ----------
    data : array_like
        The values, of a floating dtype. Not copied when already an ndarray of the requested dtype.
    dtype : dtype, optional
        Cast to this dtype first.
    requires_grad : bool
        Whether back-propagation through a recorded graph accumulates a gradient into :attr:`grad`
        (default True, as in PyTorch). ``Module.requires_grad_(False)`` freezes a whole tree.

    Attributes
    ----------
    grad : ndarray or None
        The accumulated gradient, of :attr:`data`'s shape; None until a backward pass reaches this
        parameter, and again after ``Module.zero_grad()`` (``set_to_none=True``).
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(
        self, data: ArrayLike, *, dtype: DTypeLike | None = None, requires_grad: bool = True
    ) -> None:
        array = np.asarray(data.data if isinstance(data, Parameter) else data, dtype=dtype)
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"a Parameter holds a floating-point array, got dtype {array.dtype}")
        if not isinstance(requires_grad, bool):
            raise TypeError(f"requires_grad must be a bool, got {requires_grad!r}")
        self.data: np.ndarray = array
        self.requires_grad: bool = requires_grad
        self.grad: np.ndarray | None = None

    # Identity semantics, overriding the mixin's elementwise comparisons (see the class docstring).
    __eq__ = object.__eq__
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        if copy:
            return np.array(self.data, dtype=dtype, copy=True)
        return np.asarray(self.data, dtype=dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the held array."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """Dtype of the held array."""
        return self.data.dtype

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"
