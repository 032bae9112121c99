"""``Dropout``: inverted dropout in training mode, the identity in eval mode."""

from __future__ import annotations

import numpy as np

from audioembed.errors import InvalidInputError, InvalidOptionError
from audioembed.nn import training_ops
from audioembed.nn.autograd import Tensor
from audioembed.nn.functional_dropout import check_probability
from audioembed.nn.module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` in training, scaling the survivors by ``1 / (1 - p)``.

    Any input shape. In eval mode the input is returned unchanged.

    Parameters
    ----------
    p : float in [0, 1]
        Drop probability (default 0.5).
    rng : np.random.Generator or int, optional
        The generator that draws the masks, or a seed for a new one; a seeded layer drops the same
        elements in every run. Default: a generator seeded from the OS.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | int | None = None) -> None:
        super().__init__()
        self.p = check_probability(p)
        if rng is not None and not isinstance(rng, (np.random.Generator, int)):
            raise InvalidOptionError(f"rng must be a numpy Generator, an int seed or None, got {rng!r}")
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)

    def forward(self, x: np.ndarray) -> np.ndarray:
        dtype = x.dtype if isinstance(x, Tensor) else np.asarray(x).dtype
        if not np.issubdtype(dtype, np.floating):
            raise InvalidInputError(f"Dropout expects a floating input, got dtype {dtype}")
        return training_ops.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"
