"""Learning-rate schedules: construction, resuming from a state dict, and bad options."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from audioembed.errors import InvalidInputError, InvalidOptionError
from audioembed.nn import Parameter
from audioembed.nn.optim import SGD, CosineAnnealingLR, LinearLR, MultiStepLR, StepLR


def sgd(lr: float = 0.1) -> SGD:
    return SGD([Parameter(np.zeros(2))], lr=lr)


def rates(scheduler: Any, epochs: int) -> list[float]:
    out = []
    for _ in range(epochs):
        scheduler.optimizer.step()
        scheduler.step()
        out.append(scheduler.get_last_lr()[0])
    return out


def test_construction_is_epoch_zero_and_records_initial_lr() -> None:
    optimizer = sgd(0.4)
    scheduler = CosineAnnealingLR(optimizer, T_max=4)
    assert scheduler.last_epoch == 0 and scheduler.get_last_lr() == [0.4]
    assert optimizer.param_groups[0]["initial_lr"] == 0.4 and scheduler.base_lrs == [0.4]
    assert rates(scheduler, 4)[-1] == pytest.approx(0.0, abs=1e-15)  # the bottom of the cosine at T_max
    assert "CosineAnnealingLR(last_epoch=4" in repr(scheduler)


def test_cosine_follows_its_closed_form() -> None:
    scheduler = CosineAnnealingLR(sgd(0.2), T_max=7, eta_min=0.01)
    expected = [0.01 + 0.19 * (1 + math.cos(math.pi * t / 7)) / 2 for t in range(1, 8)]
    np.testing.assert_allclose(rates(scheduler, 7), expected, rtol=1e-12)


def test_linear_warmup_reaches_the_base_rate() -> None:
    optimizer = sgd(0.3)
    scheduler = LinearLR(optimizer, start_factor=0.5, total_iters=2)
    assert scheduler.get_last_lr() == [0.15]
    np.testing.assert_allclose(rates(scheduler, 4), [0.225, 0.3, 0.3, 0.3], rtol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda o: StepLR(o, step_size=3, gamma=0.5),
        lambda o: MultiStepLR(o, milestones=[2, 5], gamma=0.1),
        lambda o: CosineAnnealingLR(o, T_max=6, eta_min=0.001),
        lambda o: LinearLR(o, start_factor=0.2, total_iters=4),
    ],
)
def test_state_dict_resumes_the_same_schedule(make: Any) -> None:
    uninterrupted = rates(make(sgd()), 10)
    first = make(sgd())
    head = rates(first, 4)
    saved_optimizer, saved_scheduler = first.optimizer.state_dict(), first.state_dict()
    assert "optimizer" not in saved_scheduler
    optimizer = sgd()  # rebuilt as after a restart: build the scheduler first, then load both
    resumed = make(optimizer)
    optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    assert head + rates(resumed, 6) == pytest.approx(uninterrupted, rel=1e-12)


def test_load_state_dict_refuses_another_schedules_state() -> None:
    step = StepLR(sgd(), step_size=2)
    with pytest.raises(InvalidInputError, match="not a CosineAnnealingLR state dict"):
        CosineAnnealingLR(sgd(), T_max=3).load_state_dict(step.state_dict())
    two_groups = SGD([{"params": [Parameter(np.zeros(1))]}, {"params": [Parameter(np.zeros(1))]}], lr=0.1)
    with pytest.raises(InvalidInputError, match=r"schedules 2 parameter group\(s\), the optimizer has 1"):
        StepLR(sgd(), step_size=2).load_state_dict(StepLR(two_groups, step_size=2).state_dict())


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda o: StepLR(o, step_size=0), "step_size must be a positive int, got 0"),
        (lambda o: StepLR(o, step_size=2.5), "step_size must be a positive int, got 2.5"),
        (lambda o: StepLR(o, step_size=2, gamma=0), r"gamma must be in \(0.0, inf\], got 0"),
        (lambda o: MultiStepLR(o, milestones=[3, -1]), "a milestone must be a positive int, got -1"),
        (lambda o: CosineAnnealingLR(o, T_max=0), "T_max must be a positive int, got 0"),
        (lambda o: CosineAnnealingLR(o, T_max=5, eta_min=-0.1), r"eta_min must be in \[0.0, inf\], got -0.1"),
        (lambda o: LinearLR(o, start_factor=0.0), r"start_factor must be in \(0.0, 1.0\], got 0.0"),
        (lambda o: LinearLR(o, end_factor=1.5), r"end_factor must be in \[0.0, 1.0\], got 1.5"),
        (lambda o: LinearLR(o, total_iters=True), "total_iters must be a positive int, got True"),
    ],
)
def test_bad_schedule_options_are_typed_errors(make: Any, message: str) -> None:
    optimizer = sgd()
    with pytest.raises(InvalidOptionError, match=message):
        make(optimizer)
    assert optimizer.param_groups[0]["lr"] == 0.1


def test_a_schedule_needs_an_optimizer() -> None:
    with pytest.raises(TypeError, match="needs an Optimizer, got list"):
        StepLR([], step_size=2)
