"""The fast path of :class:`~audioembed.vggish.model.VGGish`: its layers compiled into fused plans.

:class:`FastForward` builds a :class:`~audioembed.nn.fused.ConvStackPlan` (Winograd conv stack) and a
:class:`~audioembed.nn.fused_dense.DensePlan` (fc layers split across two threads) from the model's current
parameters, caches them, and rebuilds them when a parameter array is replaced (``load_state_dict`` and every
cast through ``_apply`` assign new arrays; the cache holds weak references to the arrays it was built from)
or written in place by an optimizer step (optimizers count their writes with
:func:`audioembed.nn.inplace.mark_modified`). Other in-place writes into a parameter array are not reliably
seen (the plans hold transformed copies of the conv kernels, views of the rest): call
:func:`~audioembed.nn.inplace.mark_modified` or :meth:`FastForward.invalidate` after those.

The model uses it only where it is exact to the layer-by-layer path up to float32 rounding (≤ 1e-5 relative):
eval mode, float32 parameters, and no forward hooks or pre-hooks on any replaced layer (hooks must see every
layer's own call).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

import numpy as np

from audioembed.nn.fused import ConvStackPlan
from audioembed.nn.fused_dense import DensePlan
from audioembed.nn.inplace import modification_count

if TYPE_CHECKING:
    from audioembed.nn import Module

CONV_LAYERS = ("conv1", "conv2", "conv3_1", "conv3_2", "conv4_1", "conv4_2")
POOLED = {"conv1", "conv2", "conv3_2", "conv4_2"}  # conv layers followed by a 2×2 max-pool
DENSE_LAYERS = ("fc1_1", "fc1_2", "fc2")
REPLACED = (*CONV_LAYERS, "pool1", "pool2", "pool3", "pool4", "flatten", *DENSE_LAYERS)


class FastForward:
    """Fused plans for one VGGish instance, built lazily and rebuilt when its parameters change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[weakref.ref, ...] | None = None
        self._writes: tuple[int, ...] = ()  # in-place write counts of the arrays when the plans were built
        self._conv: ConvStackPlan | None = None
        self._dense: DensePlan | None = None

    # Copies and pickles of a model start without plans (they hold threads and a lock): rebuilt on first use.
    def __deepcopy__(self, memo: dict) -> FastForward:
        return FastForward()

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()

    @staticmethod
    def applies(model: Module) -> bool:
        """Whether the fused plans compute exactly what the layers would, for this model right now."""
        if model.training:
            return False
        for name in REPLACED:
            layer = getattr(model, name)
            if layer is None or layer._forward_hooks or layer._forward_pre_hooks:
                return False
        return all(p.data.dtype == np.float32 for p in model.parameters())

    def plans(self, model: Module, input_shape: tuple[int, int]) -> tuple[ConvStackPlan, DensePlan]:
        """The cached plans, (re)built if any parameter array changed since they were built."""
        arrays = [getattr(model, name).weight.data for name in (*CONV_LAYERS, *DENSE_LAYERS)]
        arrays += [getattr(model, name).bias.data for name in (*CONV_LAYERS, *DENSE_LAYERS)]
        writes = tuple(modification_count(a) for a in arrays)
        with self._lock:
            if (
                self._key is None
                or writes != self._writes
                or any(ref() is not a for ref, a in zip(self._key, arrays, strict=True))
            ):
                self._release()
                convs = [(name, getattr(model, name)) for name in CONV_LAYERS]
                self._conv = ConvStackPlan(
                    [(c.weight.data, c.bias.data, name in POOLED) for name, c in convs],
                    input_shape=(*input_shape, 1),
                )
                dense = [getattr(model, name) for name in DENSE_LAYERS]
                self._dense = DensePlan([(d.weight.data, d.bias.data, d is not dense[-1]) for d in dense])
                self._key = tuple(weakref.ref(a) for a in arrays)
                self._writes = writes
            return self._conv, self._dense  # type: ignore[return-value]

    @property
    def built(self) -> bool:
        """Whether plans are currently cached."""
        return self._key is not None

    def invalidate(self) -> None:
        """Drop the cached plans (and their memory); the next fast forward rebuilds them."""
        with self._lock:
            self._release()

    def _release(self) -> None:
        for plan in (self._conv, self._dense):
            if plan is not None:
                plan.close()
        self._conv = self._dense = None
        self._key = None
