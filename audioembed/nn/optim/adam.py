"""``Adam`` and ``AdamW``: adaptive moment estimation, with L2 or decoupled weight decay, and AMSGrad."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from audioembed.errors import InvalidOptionError
from audioembed.nn.optim.optimizer import Optimizer, ParamGroup, check_number, chunked


class Adam(Optimizer):
    """Adam, PyTorch's update rule (``torch.optim.Adam``).

    For each parameter ``p`` with gradient ``g``, at step ``t = 1, 2, ...``::

        g = -g                                  if maximize
        p = p * (1 - lr * weight_decay)         if decoupled_weight_decay (AdamW)
        g = g + weight_decay * p                otherwise, if weight_decay != 0 (L2 penalty)
        m = m + (1 - beta1) * (g - m)           first moment (PyTorch's lerp)
        v = beta2 * v + (1 - beta2) * g * g     second moment
        v_max = max(v_max, v)                   if amsgrad, and v_max replaces v below
        denom = sqrt(v) / sqrt(1 - beta2 ** t) + eps
        p = p - (lr / (1 - beta1 ** t)) * (m / denom)

    State per parameter: ``"step"`` (int), ``"exp_avg"`` (m), ``"exp_avg_sq"`` (v), and
    ``"max_exp_avg_sq"`` (v_max) with amsgrad; arrays of the parameter's shape and dtype.

    Parameters
    ----------
    params : iterable of Parameter or of dict
        Parameters or parameter groups (see :class:`~audioembed.nn.optim.Optimizer`).
    lr : float
        Learning rate, >= 0.
    betas : (float, float)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float
        Added to the denominator for numerical stability, >= 0.
    weight_decay : float
        L2 penalty (or decoupled decay rate), >= 0.
    amsgrad : bool
        Use the maximum of past second moments (AMSGrad).
    maximize : bool
        Ascend the objective instead of descending it.
    decoupled_weight_decay : bool
        Decay the weights directly instead of through the gradient: AdamW.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_options(self, group: Mapping[str, Any]) -> None:
        super()._check_options(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise InvalidOptionError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        for index, beta in enumerate(betas):
            check_number(f"beta parameter at index {index}", beta, below=1.0)
        check_number("eps", group["eps"])
        check_number("weight_decay", group["weight_decay"])
        for flag in ("amsgrad", "maximize", "decoupled_weight_decay"):
            if not isinstance(group[flag], bool):
                raise InvalidOptionError(f"{flag} must be a bool, got {group[flag]!r}")

    def _expected_state(self, group: ParamGroup) -> set[str]:
        keys = {"step", "exp_avg", "exp_avg_sq"}
        return keys | {"max_exp_avg_sq"} if group["amsgrad"] else keys

    def _update_group(self, group: ParamGroup) -> None:
        lr, eps, weight_decay, amsgrad = group["lr"], group["eps"], group["weight_decay"], group["amsgrad"]
        beta1, beta2 = (float(b) for b in group["betas"])
        for param in group["params"]:
            if param.grad is None:
                continue
            grad = self._gradient(param)
            data = self._writable(param)
            state = self.state.setdefault(param, {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(data)
                state["exp_avg_sq"] = np.zeros_like(data)
                if amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(data)
            state["step"] += 1
            step_size = lr / (1 - beta1 ** state["step"])
            bias_correction2_sqrt = (1 - beta2 ** state["step"]) ** 0.5
            decay = weight_decay != 0 and group["decoupled_weight_decay"]
            l2 = weight_decay != 0 and not group["decoupled_weight_decay"]
            # Without amsgrad the second moment stands in for its maximum (never written as such).
            maximum = state["max_exp_avg_sq"] if amsgrad else state["exp_avg_sq"]
            for d, g, m, v, v_max in chunked(data, grad, state["exp_avg"], state["exp_avg_sq"], maximum):
                g = -g if group["maximize"] else g
                if decay:
                    d *= 1 - lr * weight_decay
                elif l2:
                    g = g + weight_decay * d
                m += (1 - beta1) * (g - m)  # PyTorch's lerp towards g
                v *= beta2
                v += (1 - beta2) * (g * g)
                if amsgrad:
                    np.maximum(v_max, v, out=v_max)
                denom = np.sqrt(v_max if amsgrad else v)
                denom /= bias_correction2_sqrt
                denom += eps
                d -= step_size * (m / denom)
            self._written(data)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's ``torch.optim.AdamW``.

    The same rule as :class:`Adam` with ``decoupled_weight_decay=True``: each step first shrinks the
    weights by ``1 - lr * weight_decay``, then applies the Adam update of the undecayed gradient. The
    default ``weight_decay`` is 1e-2, as in PyTorch.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, decoupled_weight_decay=True
        )
