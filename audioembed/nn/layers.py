"""The layers: small Modules that hold hyper-parameters and weights and call one :mod:`functional` kernel.

Activations are NHWC, weights are in TF's layouts (conv HWIO, dense ``[in, out]``) and float32 on creation.
A layer checks its input's rank, channel count and dtype, and raises
:class:`~audioembed.errors.ShapeError` naming the expected and actual shapes. Given an ndarray a layer
computes on its parameters' arrays and returns an ndarray; given a :class:`~audioembed.nn.Tensor` it passes
the Parameters themselves to the kernel, which records the operation for backward when needed.
"""

from __future__ import annotations

import numpy as np

from audioembed.errors import InvalidInputError, ShapeError
from audioembed.nn import functional
from audioembed.nn.autograd.tensor import Tensor
from audioembed.nn.module import Module
from audioembed.nn.parameter import Parameter

# Used by reset_parameters() when no generator is passed: seeded, so a fresh process builds the same layers.
_DEFAULT_INIT_RNG = np.random.default_rng(20170315)


def _data(param: Parameter | None, x: np.ndarray | Tensor) -> np.ndarray | Parameter | None:
    """What the kernel gets for ``param``: the Parameter itself for a Tensor input, else its array."""
    return param if param is None or isinstance(x, Tensor) else param.data


def _check_input(
    x: np.ndarray | Tensor, layer: Module, expected: str, rank: int, channels: int | None
) -> np.ndarray | Tensor:
    """Return ``x`` (a Tensor, or else as an array) after checking rank, last-axis size and floating dtype."""
    x = x if isinstance(x, Tensor) else np.asarray(x)
    if x.ndim != rank or (channels is not None and x.shape[-1] != channels):
        raise ShapeError(f"{type(layer).__name__} expects input of shape {expected}, got shape {x.shape}")
    weight = getattr(layer, "weight", None)
    wanted = weight.dtype if weight is not None else None
    if not np.issubdtype(x.dtype, np.floating) or (wanted is not None and x.dtype != wanted):
        raise InvalidInputError(
            f"{type(layer).__name__} expects a {wanted or 'floating'} input, got dtype {x.dtype} "
            "(cast the input, or the layer with .float() / .double())"
        )
    return x


class Conv2d(Module):
    """2-D convolution of NHWC images: ``[N, H, W, in_channels] -> [N, H', W', out_channels]``.

    ``weight`` is HWIO ``[kh, kw, in_channels, out_channels]``; ``padding`` is 'same' (TF's SAME), 'valid'
    or an int. He-normal init (the layer is usually followed by a ReLU), zero bias; ``initialize=False``
    leaves zeros, for a layer whose weights are about to be loaded.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: str | int = "same",
        bias: bool = True,
        *,
        rng: np.random.Generator | None = None,
        initialize: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = functional._pair(kernel_size, "kernel_size")
        self.stride = functional._pair(stride, "stride")
        self.padding = functional._check_padding(padding, ("same", "valid", int))
        # Zeros, not empty: calloc'd pages cost nothing until touched, so a layer about to receive loaded
        # weights (initialize=False) never pays for its own copy.
        self.weight = Parameter(np.zeros((*self.kernel_size, in_channels, out_channels), np.float32))
        self.bias = Parameter(np.zeros(out_channels, np.float32)) if bias else None
        if initialize:
            self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """He-normal weights (std ``sqrt(2 / fan_in)``), zero bias."""
        fan_in = self.kernel_size[0] * self.kernel_size[1] * self.in_channels
        rng = rng or _DEFAULT_INIT_RNG
        weight = rng.standard_normal(self.weight.shape, np.float32)
        weight *= np.float32(np.sqrt(2.0 / fan_in))
        self.weight.data = weight.astype(self.weight.dtype, copy=False)
        if self.bias is not None:
            self.bias.data = np.zeros_like(self.bias.data)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _check_input(x, self, f"[N, H, W, {self.in_channels}]", 4, self.in_channels)
        return functional.conv2d(
            x, _data(self.weight, x), _data(self.bias, x), stride=self.stride, padding=self.padding
        )

    def extra_repr(self) -> str:
        k, s = self.kernel_size, self.stride
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={k[0] if k[0] == k[1] else k}"
        text += f", stride={s[0] if s[0] == s[1] else s}" if s != (1, 1) else ""
        text += f", padding={self.padding!r}" if self.padding != "same" else ""
        return text + (", bias=False" if self.bias is None else "")


class MaxPool2d(Module):
    """Max-pooling of NHWC images over ``kernel_size`` windows every ``stride`` (default: the kernel)."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: str = "valid",
    ) -> None:
        super().__init__()
        self.kernel_size = functional._pair(kernel_size, "kernel_size")
        self.stride = self.kernel_size if stride is None else functional._pair(stride, "stride")
        self.padding = functional._check_padding(padding, ("valid", "same"))

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = _check_input(x, self, "[N, H, W, C]", 4, None)
        return functional.max_pool2d(x, self.kernel_size, self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        k, s = self.kernel_size, self.stride
        text = f"kernel_size={k[0] if k[0] == k[1] else k}"
        text += f", stride={s[0] if s[0] == s[1] else s}" if s != k else ""
        return text + (f", padding={self.padding!r}" if self.padding != "valid" else "")


class ReLU(Module):
    """``max(x, 0)`` elementwise, any shape."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = x if isinstance(x, Tensor) else np.asarray(x)
        return functional.relu(_check_input(x, self, "[...]", x.ndim, None))


class Linear(Module):
    """Dense layer ``[..., in_features] -> [..., out_features]``, ``y = x @ W + b`` with ``W`` ``[in, out]``.

    Glorot-uniform init (limit ``sqrt(6 / (in + out))``), zero bias; ``initialize=False`` leaves zeros.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | None = None,
        initialize: bool = True,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.zeros((in_features, out_features), np.float32))  # see Conv2d
        self.bias = Parameter(np.zeros(out_features, np.float32)) if bias else None
        if initialize:
            self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """Glorot-uniform weights, zero bias."""
        limit = np.sqrt(6.0 / (self.in_features + self.out_features))
        rng = rng or _DEFAULT_INIT_RNG
        # float32 draws scaled in place: a float64 temporary of fc1_1's size alone would be 400 MB.
        weight = rng.random(self.weight.shape, np.float32)  # [0, 1)
        weight *= np.float32(2 * limit)
        weight -= np.float32(limit)
        self.weight.data = weight.astype(self.weight.dtype, copy=False)
        if self.bias is not None:
            self.bias.data = np.zeros_like(self.bias.data)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = x if isinstance(x, Tensor) else np.asarray(x)
        x = _check_input(x, self, f"[..., {self.in_features}]", max(x.ndim, 1), self.in_features)
        return functional.linear(x, _data(self.weight, x), _data(self.bias, x))

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}" + (", bias=False" if self.bias is None else "")


class Flatten(Module):
    """Merge all axes after the batch axis, in NHWC order: ``[N, H, W, C] -> [N, H*W*C]``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = x if isinstance(x, Tensor) else np.asarray(x)
        if x.ndim < 2:
            raise ShapeError(f"Flatten expects input of shape [N, ...], got shape {x.shape}")
        return functional.flatten(x, 1)
