"""A small Module framework over NumPy with PyTorch's ``nn.Module`` semantics; it knows nothing about audio.

``Module`` / ``Parameter`` hold state, the containers compose modules, the layers call the stateless
kernels of :mod:`audioembed.nn.functional`. Activations are NHWC and weights use TF's layouts.
:mod:`audioembed.nn.autograd` adds training: wrap a batch in a :class:`Tensor` and call ``backward``.
"""

from audioembed.nn import autograd, functional
from audioembed.nn.autograd import Function, Tensor, enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from audioembed.nn.containers import ModuleDict, ModuleList, Sequential
from audioembed.nn.dropout import Dropout
from audioembed.nn.hooks import RemovableHandle
from audioembed.nn.layers import Conv2d, Flatten, Linear, MaxPool2d, ReLU
from audioembed.nn.losses import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from audioembed.nn.module import Module
from audioembed.nn.normalization import BatchNorm1d, BatchNorm2d, InstanceNorm2d, LayerNorm
from audioembed.nn.parameter import Parameter

__all__ = [
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Function",
    "InstanceNorm2d",
    "LayerNorm",
    "Linear",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "ModuleDict",
    "ModuleList",
    "Parameter",
    "ReLU",
    "RemovableHandle",
    "Sequential",
    "Tensor",
    "autograd",
    "enable_grad",
    "functional",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
]

# --- Training utilities (issue 10): optimizers and schedules, gradient clipping, the model registry. -------
from audioembed.nn import optim, registry, serialization, utils

__all__ += ["optim", "registry", "serialization", "utils"]
