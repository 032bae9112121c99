"""Normalisation layers: BatchNorm1d/2d, InstanceNorm2d and LayerNorm, channel-last, PyTorch's semantics.

Batch and instance norms share :class:`_NormBase` (parameters ``weight``/``bias`` when ``affine``, buffers
``running_mean``/``running_var``/``num_batches_tracked`` when ``track_running_stats``), with PyTorch's
names and defaults so that state dicts map one to one. In training mode a batch norm normalises with the
batch statistics and updates the running ones (momentum, or a cumulative average when ``momentum`` is
None); in eval mode the running statistics normalise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from audioembed.errors import InvalidInputError, InvalidOptionError, ShapeError
from audioembed.nn import training_ops
from audioembed.nn.autograd import Tensor
from audioembed.nn.functional_norm import check_eps_momentum
from audioembed.nn.module import Module
from audioembed.nn.parameter import Parameter


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidOptionError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _check_flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidOptionError(f"{name} must be a bool, got {value!r}")
    return value


def _check_x(
    layer: Module, x: object, expected: str, ranks: tuple[int, ...] | None, trailing: tuple[int, ...]
) -> object:
    """Check rank (one of ``ranks``; any when None), trailing axes and floating dtype (the parameters')."""
    array = x.data if isinstance(x, Tensor) else np.asarray(x)
    k = len(trailing)
    if (ranks is not None and array.ndim not in ranks) or tuple(
        array.shape[max(array.ndim - k, 0) :]
    ) != trailing:
        raise ShapeError(f"{type(layer).__name__} expects input of shape {expected}, got shape {array.shape}")
    weight = getattr(layer, "weight", None)
    wanted = weight.dtype if weight is not None else None
    if not np.issubdtype(array.dtype, np.floating) or (wanted is not None and array.dtype != wanted):
        raise InvalidInputError(
            f"{type(layer).__name__} expects a {wanted or 'floating'} input, got dtype {array.dtype} "
            "(cast the input, or the layer with .float() / .double())"
        )
    return x


def _param(param: Parameter | None, x: object) -> np.ndarray | Parameter | None:
    """What the op gets for ``param``: the Parameter (recorded) for a Tensor input, else its array."""
    return param if param is None or isinstance(x, Tensor) else param.data


class _NormBase(Module):
    """Parameters and running statistics of a per-channel norm over ``num_features`` channels.

    State-dict layout version 2 (as in PyTorch): version 1 had no ``num_batches_tracked`` buffer.
    """

    _version = 2

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        self.num_features = _positive_int(num_features, "num_features")
        check_eps_momentum(eps, momentum)
        self.eps, self.momentum = float(eps), momentum
        self.affine = _check_flag(affine, "affine")
        self.track_running_stats = _check_flag(track_running_stats, "track_running_stats")
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype))
            self.bias = Parameter(np.zeros(num_features, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)
        self.reset_parameters()

    def _upgrade_state(self, state_dict: dict[str, Any], prefix: str, version: int) -> None:
        """Version 1 -> 2: state without ``num_batches_tracked`` keeps this module's counter, as PyTorch does.

        Left alone when the key is already there (a version-2 state whose version record was lost).
        """
        key = prefix + "num_batches_tracked"
        if version < 2 and self.track_running_stats and key not in state_dict:
            state_dict[key] = self.num_batches_tracked.copy()

    def reset_running_stats(self) -> None:
        """Running mean 0, running variance 1, no batch seen."""
        if self.track_running_stats:
            self.running_mean.fill(0)
            self.running_var.fill(1)
            self.num_batches_tracked.fill(0)

    def reset_parameters(self) -> None:
        """Running statistics reset; weight 1, bias 0 (the identity affine map)."""
        self.reset_running_stats()
        if self.affine:
            self.weight.data = np.ones_like(self.weight.data)
            self.bias.data = np.zeros_like(self.bias.data)

    def extra_repr(self) -> str:
        defaults = type(self).__init__.__defaults__ or ()  # (eps, momentum, affine, track_running_stats)
        names = ("eps", "momentum", "affine", "track_running_stats")
        settings = [
            f"{n}={getattr(self, n)}" for n, d in zip(names, defaults, strict=True) if getattr(self, n) != d
        ]
        return ", ".join([str(self.num_features), *settings])


class _BatchNorm(_NormBase):
    _expected = ""
    _ranks: tuple[int, ...] = ()

    def forward(self, x: np.ndarray) -> np.ndarray:
        _check_x(self, x, self._expected.format(c=self.num_features), self._ranks, (self.num_features,))
        momentum = 0.0 if self.momentum is None else self.momentum
        counting = self.training and self.track_running_stats
        if counting and self.momentum is None:
            momentum = 1.0 / float(self.num_batches_tracked + 1)  # cumulative average over every batch seen
        # Batch statistics in training, and whenever there are no running statistics to use.
        batch_stats = self.training or self.running_mean is None
        use_running = not self.training or self.track_running_stats
        y = training_ops.batch_norm(
            x,
            self.running_mean if use_running else None,
            self.running_var if use_running else None,
            _param(self.weight, x),
            _param(self.bias, x),
            batch_stats,
            momentum,
            self.eps,
        )
        if counting:  # counted after the kernel succeeded, so a rejected batch leaves no trace
            self.num_batches_tracked += 1
        return y


class BatchNorm1d(_BatchNorm):
    """Batch norm of ``[N, C]`` features or ``[N, L, C]`` sequences, per channel (the last axis).

    Parameters
    ----------
    num_features : int
        C.
    eps : float
        Added to the variance (default 1e-5).
    momentum : float or None
        Weight of the new batch in the running statistics (default 0.1); None = cumulative average.
    affine : bool
        Learnable per-channel ``weight`` (init 1) and ``bias`` (init 0).
    track_running_stats : bool
        Keep ``running_mean`` / ``running_var`` / ``num_batches_tracked`` and use them in eval mode;
        without them, batch statistics are used in both modes.
    """

    _expected = "[N, {c}] or [N, L, {c}]"
    _ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm of NHWC images ``[N, H, W, C]`` per channel; parameters as :class:`BatchNorm1d`."""

    _expected = "[N, H, W, {c}]"
    _ranks = (4,)


class InstanceNorm2d(_NormBase):
    """Instance norm of NHWC images: each example's channel normalised over its height and width.

    Defaults as PyTorch's: ``affine=False``, ``track_running_stats=False`` (then statistics of the input
    are used in both modes). With ``track_running_stats``, training updates the running statistics with
    the batch-averaged instance statistics and eval uses them; ``num_batches_tracked`` is kept for state
    dict compatibility but, as in PyTorch, never counts, and ``momentum=None`` means no update.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        *,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        c = self.num_features
        _check_x(self, x, f"[N, H, W, {c}]", (4,), (c,))
        return training_ops.instance_norm(
            x,
            self.running_mean,
            self.running_var,
            _param(self.weight, x),
            _param(self.bias, x),
            self.training or not self.track_running_stats,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )


class LayerNorm(Module):
    """Layer norm: each example normalised over its trailing ``normalized_shape`` axes.

    Parameters
    ----------
    normalized_shape : int or sequence of int
        The trailing shape normalised over (an int = the last axis).
    eps : float
        Added to the variance (default 1e-5).
    elementwise_affine : bool
        Learnable ``weight`` (init 1) of shape ``normalized_shape``, and ``bias`` (init 0) unless
        ``bias=False``.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        dtype: DTypeLike = np.float32,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
        try:
            self.normalized_shape = tuple(_positive_int(s, "normalized_shape") for s in shape)
        except TypeError as e:
            raise InvalidOptionError(
                f"normalized_shape must be an int or ints, got {normalized_shape!r}"
            ) from e
        if not self.normalized_shape:
            raise InvalidOptionError(f"normalized_shape must not be empty, got {normalized_shape!r}")
        check_eps_momentum(eps, None)
        self.eps = float(eps)
        self.elementwise_affine = _check_flag(elementwise_affine, "elementwise_affine")
        _check_flag(bias, "bias")
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight 1, bias 0."""
        if self.weight is not None:
            self.weight.data = np.ones_like(self.weight.data)
        if self.bias is not None:
            self.bias.data = np.zeros_like(self.bias.data)

    def forward(self, x: np.ndarray) -> np.ndarray:
        shape = self.normalized_shape
        expected = "[..., " + ", ".join(map(str, shape)) + "]"
        _check_x(self, x, expected, None, shape)
        return training_ops.layer_norm(x, shape, _param(self.weight, x), _param(self.bias, x), self.eps)

    def extra_repr(self) -> str:
        shape = self.normalized_shape
        text = str(shape[0]) if len(shape) == 1 else str(shape)
        text += f", eps={self.eps}" if self.eps != 1e-5 else ""
        text += ", elementwise_affine=False" if not self.elementwise_affine else ""
        return text + (", bias=False" if self.elementwise_affine and self.bias is None else "")
