"""Learning-rate schedules: ``StepLR``, ``MultiStepLR``, ``CosineAnnealingLR``, ``LinearLR`` (warm-up).

They follow PyTorch 2.13's ``torch.optim.lr_scheduler`` exactly, values included: each schedule computes the
next rate *recursively* from the group's current ``lr`` (so schedules can be chained on one optimizer and a
rate changed by hand is respected), construction performs step 0, and ``step()`` is called once per epoch
(or per iteration) *after* ``optimizer.step()``::

    scheduler = CosineAnnealingLR(optimizer, T_max=100)
    for epoch in range(100):
        train_one_epoch(model, optimizer)
        scheduler.step()

Construction records each group's starting rate as ``group["initial_lr"]`` (the schedule's ``base_lrs``).
To resume, build the optimizer and the scheduler as before, then load both state dicts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from audioembed.errors import InvalidInputError, InvalidOptionError
from audioembed.nn.optim.optimizer import Optimizer


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidOptionError(f"{name} must be a positive int, got {value!r}")
    return value


def _factor(name: str, value: Any, low: float, high: float, *, low_open: bool = False) -> float:
    """``value`` as a float in ``[low, high]`` (``(low, high]`` with ``low_open``), or InvalidOptionError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidOptionError(f"{name} must be a number, got {value!r}")
    inside = (low < value if low_open else low <= value) and value <= high
    if not inside:
        bracket = "(" if low_open else "["
        raise InvalidOptionError(f"{name} must be in {bracket}{low}, {high}], got {value!r}")
    return float(value)


class LRScheduler:
    """Base class: sets each parameter group's ``lr`` from a schedule, one :meth:`step` at a time.

    Attributes
    ----------
    optimizer : Optimizer
        Whose groups' ``lr`` this schedule sets.
    base_lrs : list of float
        Each group's ``initial_lr``.
    last_epoch : int
        How many times :meth:`step` ran after construction (construction makes it 0).
    """

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"a learning-rate schedule needs an Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = -1
        self._is_initial = True  # the construction step keeps the rates as they are (PyTorch 2.13)
        self.step()
        self._is_initial = False

    def get_lr(self) -> list[float]:
        """The rates for :attr:`last_epoch`, from the groups' current rates; subclasses define it."""
        raise NotImplementedError(f"{type(self).__name__} does not define get_lr()")

    def _current(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self) -> None:
        """Advance the schedule one epoch and write the new rate into every parameter group."""
        self.last_epoch += 1
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            group["lr"] = lr
        self._last_lr = self._current()

    def get_last_lr(self) -> list[float]:
        """The rates the last :meth:`step` set, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer (as PyTorch): counters, base rates, the schedule's options."""
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` of the same kind of schedule.

        Raises
        ------
        InvalidInputError
            Keys that are not this schedule's, or base rates for another number of parameter groups.
        """
        own = set(self.state_dict())
        if not isinstance(state_dict, Mapping) or set(state_dict) != own:
            found = sorted(state_dict) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise InvalidInputError(
                f"not a {type(self).__name__} state dict: expected keys {sorted(own)}, got {found}"
            )
        if len(state_dict["base_lrs"]) != len(self.optimizer.param_groups):
            raise InvalidInputError(
                f"the state dict schedules {len(state_dict['base_lrs'])} parameter group(s), the optimizer "
                f"has {len(self.optimizer.param_groups)}"
            )
        self.__dict__.update(state_dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self._last_lr})"


class StepLR(LRScheduler):
    """Multiply the rate by ``gamma`` each ``step_size`` epochs: ``base_lr * gamma**(epoch // step_size)``."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _positive_int("step_size", step_size)
        self.gamma = _factor("gamma", gamma, 0.0, math.inf, low_open=True)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return self._current()
        return [lr * self.gamma for lr in self._current()]


class MultiStepLR(LRScheduler):
    """Multiply the rate by ``gamma`` at each milestone epoch (a milestone listed twice multiplies twice)."""

    def __init__(self, optimizer: Optimizer, milestones: Iterable[int], gamma: float = 0.1) -> None:
        milestones = list(milestones)
        for milestone in milestones:
            _positive_int("a milestone", milestone)
        self.milestones = Counter(milestones)
        self.gamma = _factor("gamma", gamma, 0.0, math.inf, low_open=True)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch not in self.milestones:
            return self._current()
        return [lr * self.gamma ** self.milestones[self.last_epoch] for lr in self._current()]


class CosineAnnealingLR(LRScheduler):
    """Anneal the rate along a cosine from ``base_lr`` to ``eta_min`` in ``T_max`` epochs (SGDR, no restarts).

    The closed form is ``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2``; like PyTorch,
    the rates are computed recursively from the current ones, and after ``T_max`` the cosine goes back up.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = _positive_int("T_max", T_max)
        self.eta_min = _factor("eta_min", eta_min, 0.0, math.inf)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self._is_initial:
            return self._current()
        if (self.last_epoch - 1 - self.T_max) % (2 * self.T_max) == 0:
            # The bottom of the cosine: the ratio below would divide by zero; step back up from eta_min.
            return [
                lr + (base - self.eta_min) * (1 - math.cos(math.pi / self.T_max)) / 2
                for lr, base in zip(self._current(), self.base_lrs, strict=True)
            ]
        ratio = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / (
            1 + math.cos(math.pi * (self.last_epoch - 1) / self.T_max)
        )
        return [ratio * (lr - self.eta_min) + self.eta_min for lr in self._current()]


class LinearLR(LRScheduler):
    """Warm-up (or decay): scale the rate linearly from ``start_factor`` to ``end_factor`` in ``total_iters``.

    Epoch 0 uses ``base_lr * start_factor``; from epoch ``total_iters`` on, ``base_lr * end_factor``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        start_factor: float = 1.0 / 3,
        end_factor: float = 1.0,
        total_iters: int = 5,
    ) -> None:
        self.start_factor = _factor("start_factor", start_factor, 0.0, 1.0, low_open=True)
        self.end_factor = _factor("end_factor", end_factor, 0.0, 1.0)
        self.total_iters = _positive_int("total_iters", total_iters)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        if self.last_epoch == 0:
            return [lr * self.start_factor for lr in self._current()]
        if self.last_epoch > self.total_iters:
            return self._current()
        change = self.end_factor - self.start_factor
        factor = 1.0 + change / (self.total_iters * self.start_factor + (self.last_epoch - 1) * change)
        return [lr * factor for lr in self._current()]
