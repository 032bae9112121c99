"""``SGD``: stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from audioembed.errors import InvalidOptionError
from audioembed.nn.optim.optimizer import Optimizer, ParamGroup, check_number, chunked


class SGD(Optimizer):
    """Stochastic gradient descent, PyTorch's update rule (``torch.optim.SGD``).

    For each parameter ``p`` with gradient ``g``, at step ``t``::

        g = -g                          if maximize
        g = g + weight_decay * p        if weight_decay != 0   (L2 penalty through the gradient)
        b = g                           at the first step      if momentum != 0
        b = momentum * b + (1 - dampening) * g                 later steps
        g = g + momentum * b            if nesterov, else g = b
        p = p - lr * g

    The momentum buffer ``b`` is the per-parameter state (``"momentum_buffer"``); plain SGD keeps none.

    Parameters
    ----------
    params : iterable of Parameter or of dict
        Parameters or parameter groups (see :class:`~audioembed.nn.optim.Optimizer`).
    lr : float
        Learning rate, >= 0 (PyTorch's default 1e-3).
    momentum : float
        Momentum factor, >= 0.
    dampening : float
        Dampening of the momentum's new gradient term.
    weight_decay : float
        L2 penalty, >= 0.
    nesterov : bool
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.
    maximize : bool
        Ascend the objective instead of descending it.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        *,
        nesterov: bool = False,
        maximize: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_options(self, group: Mapping[str, Any]) -> None:
        super()._check_options(group)
        check_number("momentum", group["momentum"])
        check_number("dampening", group["dampening"], low=-float("inf"))
        check_number("weight_decay", group["weight_decay"])
        for flag in ("nesterov", "maximize"):
            if not isinstance(group[flag], bool):
                raise InvalidOptionError(f"{flag} must be a bool, got {group[flag]!r}")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise InvalidOptionError(
                "Nesterov momentum needs a momentum > 0 and zero dampening, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
            )

    def _expected_state(self, group: ParamGroup) -> set[str]:
        return {"momentum_buffer"} if group["momentum"] != 0 else set()

    def _update_group(self, group: ParamGroup) -> None:
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov, maximize = group["weight_decay"], group["nesterov"], group["maximize"]
        for param in group["params"]:
            if param.grad is None:
                continue
            grad = self._gradient(param)
            data = self._writable(param)
            first = False
            if momentum != 0:
                state = self.state.setdefault(param, {})
                if state.get("momentum_buffer") is None:
                    state["momentum_buffer"] = np.empty_like(data)  # filled with the first gradient below
                    first = True
                buffer = state["momentum_buffer"]
            else:
                buffer = data  # unused: keeps the slices aligned
            for d, g, b in chunked(data, grad, buffer):
                step = -g if maximize else g  # a new array only where it must differ from the gradient
                if weight_decay != 0:
                    step = step + weight_decay * d
                if momentum != 0:
                    if first:
                        b[...] = step
                    else:
                        b *= momentum
                        b += step if dampening == 0 else (1 - dampening) * step
                    step = step + momentum * b if nesterov else b
                d -= lr * step
            self._written(data)
