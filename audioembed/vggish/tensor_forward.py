"""VGGish given a :class:`~audioembed.nn.Tensor`: the training forward, and the inference engines it reuses.

Three cases, chosen per call:

- nothing to record (grad mode off, or neither the input nor any parameter requires grad) and the model's
  fused inference engine applies: that engine, its result wrapped in a Tensor;
- the conv stack frozen (its parameters and the input need no gradient; e.g. training the fc layers or a
  head): the conv stack runs as a fused inference plan (:class:`FrozenConvStack`), only the dense layers
  are recorded — the cheap way to fine-tune VGGish's top;
- the conv stack trained, float32, no hook on its layers: the whole stack is one recorded operation,
  :class:`~audioembed.nn.conv_stack_grad.TrainableConvStack` (Winograd both ways, two workers);
- otherwise layer by layer through each layer's ``__call__`` (hooks fire), every step recorded as needed
  (float64 models, hooks on conv layers).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np

from audioembed.nn.autograd.grad_mode import is_grad_enabled
from audioembed.nn.autograd.tensor import Tensor
from audioembed.nn.conv_stack_grad import TrainableConvStack
from audioembed.nn.functional import relu
from audioembed.nn.fused import ConvStackPlan
from audioembed.vggish.fast import CONV_LAYERS, POOLED, FastForward

if TYPE_CHECKING:
    from audioembed.vggish.model import VGGish

_FUSED_CONV_MODULES = (*CONV_LAYERS, "pool1", "pool2", "pool3", "pool4", "flatten")
_trainable: list[TrainableConvStack] = []  # one shared engine (it holds worker threads), made on first use


def _trainable_stack() -> TrainableConvStack:
    if not _trainable:
        _trainable.append(TrainableConvStack([name in POOLED for name in CONV_LAYERS]))
    return _trainable[0]


class FrozenConvStack:
    """A cached :class:`~audioembed.nn.fused.ConvStackPlan` of a model's conv stack, rebuilt when a conv
    parameter array is replaced (weak references to the arrays it was built from, as ``vggish.fast``).

    Only used while the conv parameters do not require grad, so an optimizer never updates them in place.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[weakref.ref, ...] | None = None
        self._plan: ConvStackPlan | None = None

    # Copies and pickles start without a plan (it holds threads and a lock): rebuilt on first use.
    def __deepcopy__(self, memo: dict) -> FrozenConvStack:
        return FrozenConvStack()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    def plan(self, model: VGGish, input_shape: tuple[int, int]) -> ConvStackPlan:
        """The cached plan for ``model``'s current conv arrays, built if they changed."""
        layers = [getattr(model, name) for name in CONV_LAYERS]
        arrays = [a for layer in layers for a in (layer.weight.data, layer.bias.data)]
        with self._lock:
            if self._key is None or any(ref() is not a for ref, a in zip(self._key, arrays, strict=True)):
                self._release()
                self._plan = ConvStackPlan(
                    [
                        (c.weight.data, c.bias.data, name in POOLED)
                        for name, c in zip(CONV_LAYERS, layers, strict=True)
                    ],
                    input_shape=(*input_shape, 1),
                )
                self._key = tuple(weakref.ref(a) for a in arrays)
            return self._plan  # type: ignore[return-value]

    def invalidate(self) -> None:
        """Drop the cached plan and its memory."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._plan is not None:
            self._plan.close()
        self._plan, self._key = None, None


def _needs_grad(model: VGGish, x: Tensor, layer_names: tuple[str, ...]) -> bool:
    if not is_grad_enabled():
        return False
    return x.requires_grad or any(
        p.requires_grad for name in layer_names for p in getattr(model, name).parameters()
    )


def _conv_stack_fusable(model: VGGish) -> bool:
    """No hook on a layer the fused plan replaces, and float32 conv parameters (the plan's dtype)."""
    for name in _FUSED_CONV_MODULES:
        m = getattr(model, name)
        if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks:
            return False
    return all(getattr(model, name).weight.dtype == np.float32 for name in CONV_LAYERS)


def tensor_forward(model: VGGish, x: Tensor) -> Tensor:
    """Embed log-mel examples given as a Tensor ``[N, 96, 64]`` (already checked and cast), as a Tensor."""
    n = x.shape[0]
    if not _needs_grad(model, x, (*CONV_LAYERS, "fc1_1", "fc1_2", "fc2")) and FastForward.applies(model):
        conv, dense = model._fast.plans(model, x.shape[1:])
        return Tensor(dense(conv(x.data).reshape(n, -1)))  # [N, 128]
    conv_needs_grad = _needs_grad(model, x, CONV_LAYERS)
    if conv_needs_grad:
        # Parameters may now be updated in place by an optimizer: cached inference plans would go stale.
        model._fast.invalidate()
        model._frozen_conv.invalidate()
    elif is_grad_enabled() and _needs_grad(model, x, ("fc1_1", "fc1_2", "fc2")):
        model._fast.invalidate()
    if not conv_needs_grad and _conv_stack_fusable(model) and n > 0:
        features = Tensor(model._frozen_conv.plan(model, x.shape[1:])(x.data).reshape(n, -1))  # [N, 12288]
    elif _conv_stack_fusable(model) and n > 0:
        params = [p for name in CONV_LAYERS for p in (getattr(model, name).weight, getattr(model, name).bias)]
        features = _trainable_stack()(x.reshape(n, *x.shape[1:], 1), params).reshape(n, -1)  # [N, 12288]
    else:
        h = model._features(x.reshape(n, *x.shape[1:], 1))  # [N, 96, 64, 1] → [N, 6, 4, 512]
        features = model.flatten(h)  # [N, 12288], NHWC order
    h = relu(model.fc1_1(features))  # [N, 4096]
    h = relu(model.fc1_2(h))  # [N, 4096]
    return model.fc2(h)  # [N, 128], pre-activation
