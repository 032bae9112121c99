"""``Parameter``: a leaf :class:`~audioembed.nn.Tensor` that a :class:`~audioembed.nn.Module` registers."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from audioembed.nn.autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor of floating-point values that a Module registers as one of its parameters.

    Usable wherever an array is expected: ``np.asarray(p)`` returns the held array without a copy. As a
    Tensor, arithmetic on it (``x @ p``) gives Tensors, recorded for backward while grad mode is on and
    ``requires_grad`` is set; layers read :attr:`data` directly when given ndarrays, so inference records
    nothing. Equality and hashing are by identity, as for any registered object; compare ``p.data`` for
    values. Casts (``Module.float()``) and loads replace :attr:`data`, so the holder itself stays
    registered.

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

    __slots__ = ()

    def __init__(
        self, data: ArrayLike, *, dtype: DTypeLike | None = None, requires_grad: bool = True
    ) -> None:
        array = np.asarray(data.data if isinstance(data, Tensor) else data, dtype=dtype)
        if not np.issubdtype(array.dtype, np.floating):
            raise TypeError(f"a Parameter holds a floating-point array, got dtype {array.dtype}")
        super().__init__(array, requires_grad=requires_grad)

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"
