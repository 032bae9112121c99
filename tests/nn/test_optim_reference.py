"""Optimizers, schedules and clipping against what torch 2.13 computed (``scripts/make_optim_fixture.py``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import optim_cases as cases
import pytest

import audioembed.nn.optim as optim
from audioembed.nn import Parameter
from audioembed.nn.utils import clip_grad_norm_

REFERENCE = np.load(cases.FIXTURE)
# float64 runs agree to rounding (~1e-15); float32 runs differ by float32 rounding of the two implementations.
TOLERANCE = {"float64": 1e-9, "float32": 1e-6}


def build(name: str) -> tuple[optim.Optimizer, Parameter, Parameter, Parameter]:
    class_name, options, dtype, b_options = cases.OPTIMIZER_CASES[name]
    data = cases.problem()
    W, b, frozen = (Parameter(data[key].astype(dtype)) for key in ("W0", "b0", "frozen0"))
    params: list[Any] = (
        [W, b, frozen]
        if b_options is None
        else [
            {"params": [W, frozen]},
            {"params": [b], **b_options},
        ]
    )
    return getattr(optim, class_name)(params, **options), W, b, frozen


def run(
    optimizer: optim.Optimizer, W: Parameter, b: Parameter, steps: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    data = cases.problem()
    path = []
    for _ in range(steps):
        W.grad, b.grad = cases.gradients(W.data, b.data, data["X"], data["Y"])
        optimizer.step()
        path.append((W.data.copy(), b.data.copy()))
    return path


@pytest.mark.parametrize("name", sorted(cases.OPTIMIZER_CASES))
def test_trajectory_matches_torch(name: str) -> None:
    optimizer, W, b, frozen = build(name)
    W_array = W.data
    path = run(optimizer, W, b, cases.STEPS)
    tolerance = TOLERANCE[cases.OPTIMIZER_CASES[name][2]]
    expected_W, expected_b = REFERENCE[f"{name}/W"], REFERENCE[f"{name}/b"]
    for step, (W_t, b_t) in enumerate(path):
        np.testing.assert_allclose(
            W_t, expected_W[step], rtol=tolerance, atol=tolerance, err_msg=f"W, step {step + 1}"
        )
        np.testing.assert_allclose(
            b_t, expected_b[step], rtol=tolerance, atol=tolerance, err_msg=f"b, step {step + 1}"
        )
    assert W.data is W_array and W.data.dtype == W_array.dtype  # updated in place, dtype kept
    assert not np.array_equal(expected_W[-1], cases.problem()["W0"])  # the case moved the parameters
    np.testing.assert_array_equal(frozen.data, REFERENCE[f"{name}/frozen"])  # no gradient: untouched
    assert frozen not in optimizer.state


@pytest.mark.parametrize(
    "name", ["sgd_dampening_decay", "sgd_nesterov", "adam_amsgrad", "adamw", "adam_groups"]
)
def test_state_dict_round_trip_mid_run_continues_the_same_trajectory(name: str) -> None:
    optimizer, W, b, _ = build(name)
    run(optimizer, W, b, 7)
    saved = optimizer.state_dict()
    weights = (W.data.copy(), b.data.copy())
    run(optimizer, W, b, 3)  # the saved state must not see later updates (it holds copies)
    resumed, W2, b2, _ = build(name)  # a fresh optimizer over fresh parameters, as after a restart
    W2.data[...], b2.data[...] = weights
    resumed.load_state_dict(saved)
    path = run(resumed, W2, b2, cases.STEPS - 7)
    tolerance = TOLERANCE[cases.OPTIMIZER_CASES[name][2]]
    np.testing.assert_allclose(path[-1][0], REFERENCE[f"{name}/W"][-1], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(path[-1][1], REFERENCE[f"{name}/b"][-1], rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("name", sorted(cases.SCHEDULE_CASES))
def test_schedule_matches_torch(name: str) -> None:
    params = [Parameter(np.zeros(1)) for _ in cases.SCHEDULE_BASE_LRS]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, cases.SCHEDULE_BASE_LRS, strict=True)]
    optimizer = optim.SGD(groups, lr=1.0)
    schedulers = [getattr(optim, cls)(optimizer, **kw) for cls, kw in cases.SCHEDULE_CASES[name]]
    rates = [schedulers[-1].get_last_lr()]
    for _ in range(cases.SCHEDULE_EPOCHS - 1):
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
        rates.append(schedulers[-1].get_last_lr())
    np.testing.assert_allclose(np.array(rates), REFERENCE[f"schedule/{name}"], rtol=1e-12, atol=1e-15)
    assert [g["lr"] for g in optimizer.param_groups] == rates[-1]


@pytest.mark.parametrize("name", sorted(cases.CLIP_CASES))
def test_clip_grad_norm_matches_torch(name: str) -> None:
    max_norm, norm_type = cases.CLIP_CASES[name]
    params = []
    for grad in cases.clip_gradients():
        param = Parameter(np.zeros(1) if grad is None else np.zeros_like(grad))
        param.grad = None if grad is None else grad.copy()
        params.append(param)
    total = clip_grad_norm_(params, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, REFERENCE[f"clip/{name}/total"], rtol=1e-6)
    for index in (0, 2):
        assert params[index].grad.dtype == REFERENCE[f"clip/{name}/grad{index}"].dtype
        np.testing.assert_allclose(
            params[index].grad, REFERENCE[f"clip/{name}/grad{index}"], rtol=1e-6, atol=1e-7
        )
    assert params[1].grad is None
