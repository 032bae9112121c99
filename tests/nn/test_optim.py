"""Optimizers: construction, parameter groups, stepping rules, state dicts, and every bad-input path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from audioembed.errors import GradientError, InvalidInputError, InvalidOptionError
from audioembed.nn import Linear, Parameter, Tensor, no_grad
from audioembed.nn.inplace import modification_count
from audioembed.nn.optim import SGD, Adam, AdamW, Optimizer
from audioembed.nn.optim.optimizer import CHUNK, chunked


def params(*shapes: tuple[int, ...], seed: int = 0) -> list[Parameter]:
    rng = np.random.default_rng(seed)
    return [Parameter(rng.normal(size=shape)) for shape in shapes]


def with_grads(parameters: list[Parameter], seed: int = 1) -> list[Parameter]:
    rng = np.random.default_rng(seed)
    for p in parameters:
        p.grad = rng.normal(size=p.shape)
    return parameters


# --- construction ----------------------------------------------------------------------------------------
def test_no_parameters_is_a_gradient_error() -> None:
    with pytest.raises(GradientError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(GradientError, match="empty parameter list"):
        Adam(iter([]))


def test_a_frozen_model_is_a_gradient_error() -> None:
    layer = Linear(3, 2).requires_grad_(False)
    with pytest.raises(GradientError, match="none of the optimizer's 2 parameters requires a gradient"):
        AdamW(layer.parameters())
    layer.bias.requires_grad = True  # one trainable parameter is enough
    assert len(AdamW(layer.parameters()).param_groups[0]["params"]) == 2


@pytest.mark.parametrize("bad", [Parameter(np.zeros(2)), np.zeros(3)])
def test_a_single_parameter_instead_of_an_iterable_is_refused(bad: Any) -> None:
    with pytest.raises(TypeError, match="iterable of parameters"):
        SGD(bad, lr=0.1)


def test_a_non_parameter_is_refused_naming_its_type_and_position() -> None:
    with pytest.raises(TypeError, match="got ndarray at position 1"):
        SGD([Parameter(np.zeros(2)), np.zeros(2)], lr=0.1)


def test_a_parameter_twice_is_refused() -> None:
    p, q = params((2,), (3,))
    with pytest.raises(InvalidInputError, match="more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(InvalidInputError, match="already belong to another parameter group"):
        SGD([{"params": [p, q]}, {"params": [q]}], lr=0.1)
    optimizer = SGD([p], lr=0.1)
    with pytest.raises(InvalidInputError, match="already belong to another parameter group"):
        optimizer.add_param_group({"params": [p]})
    assert len(optimizer.param_groups) == 1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: SGD(p, lr=-0.1), "invalid lr: -0.1"),
        (lambda p: SGD(p, lr=float("nan")), "invalid lr: nan"),
        (lambda p: SGD(p, lr="fast"), "lr must be a number, got 'fast'"),
        (lambda p: SGD(p, lr=True), "lr must be a number, got True"),
        (lambda p: SGD(p, momentum=-0.5), "invalid momentum: -0.5"),
        (lambda p: SGD(p, weight_decay=-1e-4), "invalid weight_decay: -0.0001"),
        (lambda p: SGD(p, nesterov=True), "Nesterov momentum needs a momentum > 0 .* momentum=0.0"),
        (lambda p: SGD(p, momentum=0.9, dampening=0.1, nesterov=True), "zero dampening.*dampening=0.1"),
        (lambda p: SGD(p, nesterov=1), "nesterov must be a bool, got 1"),
        (
            lambda p: Adam(p, betas=(1.0, 0.999)),
            r"invalid beta parameter at index 0: 1.0 \(expected a number in \[0.0, 1.0\)\)",
        ),
        (lambda p: Adam(p, betas=(0.9, -0.1)), "invalid beta parameter at index 1: -0.1"),
        (lambda p: Adam(p, betas=0.9), r"betas must be a pair \(beta1, beta2\), got 0.9"),
        (lambda p: Adam(p, eps=-1e-8), "invalid eps: -1e-08"),
        (lambda p: AdamW(p, weight_decay=-0.01), "invalid weight_decay: -0.01"),
        (lambda p: Adam(p, amsgrad="yes"), "amsgrad must be a bool, got 'yes'"),
        (
            lambda p: Adam([{"params": p, "lr": -1.0}]),
            "invalid lr: -1.0",
        ),  # per-group options are checked too
    ],
)
def test_bad_options_are_typed_errors_naming_the_value(make: Any, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        make(params((2,)))


def test_groups_take_defaults_and_their_own_options() -> None:
    p, q, r = params((2,), (3,), (1,))
    optimizer = Adam([{"params": [p]}, {"params": q, "lr": 0.5, "amsgrad": True}], lr=0.01)
    assert optimizer.param_groups[0]["lr"] == 0.01 and optimizer.param_groups[0]["amsgrad"] is False
    assert optimizer.param_groups[1]["lr"] == 0.5 and optimizer.param_groups[1]["params"] == [q]
    optimizer.add_param_group({"params": [r], "betas": (0.5, 0.6)})
    assert optimizer.param_groups[2]["betas"] == (0.5, 0.6) and optimizer.param_groups[2]["lr"] == 0.01
    assert "Parameter Group 2" in repr(optimizer) and "betas: (0.5, 0.6)" in repr(optimizer)
    with pytest.raises(InvalidInputError, match="needs a 'params' entry"):
        optimizer.add_param_group({"lr": 0.1})


def test_the_base_class_has_no_update_rule() -> None:
    optimizer = Optimizer(params((2,)), {"lr": 0.1})
    with pytest.raises(NotImplementedError, match="Optimizer does not define _update_group"):
        optimizer.step()


# --- stepping ----------------------------------------------------------------------------------------------
def test_sgd_step_by_hand() -> None:
    (p,) = params((3,))
    start = p.data.copy()
    p.grad = np.array([1.0, -2.0, 0.5])
    optimizer = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    optimizer.step()  # first step: buffer = g + wd * p
    first = start - 0.1 * (p.grad + 0.5 * start)
    np.testing.assert_allclose(p.data, first, rtol=1e-15)
    optimizer.step()  # buffer = 0.9 * buffer + (g + wd * p)
    buffer = 0.9 * (np.array([1.0, -2.0, 0.5]) + 0.5 * start) + (p.grad + 0.5 * first)
    np.testing.assert_allclose(p.data, first - 0.1 * buffer, rtol=1e-14)


def test_adam_first_step_moves_each_weight_by_lr() -> None:
    # With bias correction, Adam's first step is lr * g / (|g| + eps'): exactly lr per element, signed.
    (p,) = params((4,))
    start = p.data.copy()
    p.grad = np.array([3.0, -0.01, 200.0, -7.0])
    Adam([p], lr=0.01, eps=0.0).step()
    np.testing.assert_allclose(p.data, start - 0.01 * np.sign(p.grad), rtol=1e-13)


def test_gradient_of_another_shape_is_a_gradient_error() -> None:
    (p,) = params((2, 3))
    p.grad = np.zeros((3, 2))
    with pytest.raises(GradientError, match=r"gradient of shape \(3, 2\) for Parameter\(shape=\(2, 3\)"):
        SGD([p], lr=0.1).step()


def test_gradients_are_cast_to_the_parameters_dtype() -> None:
    p = Parameter(np.ones(3, np.float32))
    p.grad = np.full(3, 0.5)  # float64
    SGD([p], lr=1.0).step()
    assert p.data.dtype == np.float32
    np.testing.assert_array_equal(p.data, np.full(3, 0.5, np.float32))


def test_step_returns_the_closures_loss_and_marks_the_arrays_written() -> None:
    p, q = with_grads(params((2,), (2,)))
    q.grad = None
    before = modification_count(p.data), modification_count(q.data)
    calls = []
    loss = AdamW([p, q]).step(lambda: calls.append(1) or 0.25)
    assert loss == 0.25 and calls == [1]
    assert modification_count(p.data) == before[0] + 1  # a cache of p's array learns it changed
    assert modification_count(q.data) == before[1]  # q had no gradient: not written


def test_the_closure_records_gradients_even_when_step_runs_under_no_grad() -> None:
    layer = Linear(3, 1)
    optimizer = SGD(layer.parameters(), lr=0.1)
    x = Tensor(np.ones((2, 3), np.float32))

    def closure() -> float:
        optimizer.zero_grad()
        loss = (layer(x) ** 2).sum()
        loss.backward()  # fails with a GradientError if recording were off here
        return float(loss.data)

    before = layer.weight.data.copy()
    with no_grad():
        loss = optimizer.step(closure)
    assert loss > 0 and layer.weight.grad is not None
    assert not np.array_equal(layer.weight.data, before)


def test_a_read_only_parameter_array_is_replaced_by_a_private_copy() -> None:
    mapped = np.arange(4.0)
    mapped.flags.writeable = False  # like a weight memory-mapped from a native file
    p = Parameter(mapped)
    p.grad = np.ones(4)
    SGD([p], lr=0.5).step()
    np.testing.assert_array_equal(mapped, np.arange(4.0))  # the file's view is untouched
    np.testing.assert_array_equal(p.data, np.arange(4.0) - 0.5)
    assert p.data.flags.writeable


def test_maximize_ascends() -> None:
    (p,) = params((3,))
    start = p.data.copy()
    p.grad = np.ones(3)
    SGD([p], lr=0.1, maximize=True).step()
    np.testing.assert_allclose(p.data, start + 0.1)


def test_zero_grad_to_none_or_to_zeros_in_place() -> None:
    p, q = with_grads(params((2,), (3,)))
    grad = q.grad
    optimizer = SGD([p, q], lr=0.1)
    optimizer.zero_grad(set_to_none=False)
    assert q.grad is grad and not grad.any() and not p.grad.any()
    optimizer.zero_grad()
    assert p.grad is None and q.grad is None
    optimizer.zero_grad()  # nothing to reset: harmless


# --- state dicts --------------------------------------------------------------------------------------
def test_state_dict_has_torchs_structure_and_holds_copies() -> None:
    p, q, r = with_grads(params((2,), (3,), (1,)))
    r.grad = None
    optimizer = Adam([{"params": [p, r]}, {"params": [q], "lr": 0.1}], amsgrad=True)
    optimizer.step()
    saved = optimizer.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert sorted(saved["state"]) == [0, 2]  # r (index 1) has no gradient, so no state
    assert set(saved["state"][2]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert saved["state"][2]["step"] == 1 and saved["state"][2]["exp_avg"].shape == (3,)
    assert [g["params"] for g in saved["param_groups"]] == [[0, 1], [2]]
    assert saved["param_groups"][1]["lr"] == 0.1 and saved["param_groups"][0]["amsgrad"] is True
    saved["state"][0]["exp_avg"][:] = 99.0
    assert not (optimizer.state[p]["exp_avg"] == 99.0).any()


def test_sgd_without_momentum_keeps_no_state() -> None:
    (p,) = with_grads(params((2,)))
    optimizer = SGD([p], lr=0.1)
    optimizer.step()
    assert optimizer.state_dict()["state"] == {}


def test_load_state_dict_takes_the_saved_options_and_casts_to_the_parameters_dtype() -> None:
    (p,) = with_grads(params((2,)))
    source = SGD([p], lr=0.3, momentum=0.9)
    source.step()
    saved = source.state_dict()
    target_param = Parameter(np.zeros(2, np.float32))
    target = SGD([target_param], lr=0.01, momentum=0.5)
    target.load_state_dict(saved)
    assert target.param_groups[0]["lr"] == 0.3 and target.param_groups[0]["momentum"] == 0.9
    assert target.param_groups[0]["params"] == [target_param]
    buffer = target.state[target_param]["momentum_buffer"]
    assert buffer.dtype == np.float32
    np.testing.assert_allclose(buffer, saved["state"][0]["momentum_buffer"], rtol=1e-6)


def test_load_state_dict_accepts_torchs_float_step() -> None:
    (p,) = with_grads(params((2,)))
    optimizer = Adam([p])
    optimizer.step()
    saved = optimizer.state_dict()
    saved["state"][0]["step"] = np.float32(1.0)  # torch saves step as a float tensor
    optimizer.load_state_dict(saved)
    assert optimizer.state[p]["step"] == 1 and isinstance(optimizer.state[p]["step"], int)


def _adam_state() -> tuple[Adam, dict[str, Any]]:
    parameters = with_grads(params((2,), (3,)))
    optimizer = Adam(parameters)
    optimizer.step()
    return optimizer, optimizer.state_dict()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s["state"][1].update(exp_avg=np.zeros(4)),
            r"state 'exp_avg' of parameter 1 has shape \(4,\), the parameter \(3,\)",
        ),
        (lambda s: s["param_groups"].append({"params": []}), r"2 parameter group\(s\), this optimizer 1"),
        (
            lambda s: s["param_groups"][0]["params"].pop(),
            r"group 0 of the state dict has 1 parameter\(s\), this optimizer's has 2",
        ),
        (lambda s: s["state"].update({7: {}}), "state for parameter 7, which no group has"),
        (
            lambda s: s["state"][0].pop("exp_avg_sq"),
            r"keys \['exp_avg', 'step'\], Adam with these options keeps",
        ),
        (lambda s: s["state"][0].update(step=-1), "step must be a count, got -1"),
        (lambda s: s["param_groups"][0].update(lr=-5.0), "invalid lr: -5.0"),
        (lambda s: s.pop("state"), r"not an optimizer state dict .*\['param_groups'\]"),
    ],
)
def test_load_state_dict_refuses_a_mismatch_and_changes_nothing(edit: Any, message: str) -> None:
    optimizer, saved = _adam_state()
    before = optimizer.state_dict()
    edit(saved)
    with pytest.raises((InvalidInputError, InvalidOptionError), match=message):
        optimizer.load_state_dict(saved)
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    for index, values in before["state"].items():
        for key, value in values.items():
            np.testing.assert_array_equal(after["state"][index][key], value)


def test_an_sgd_state_does_not_load_into_adam() -> None:
    parameters = with_grads(params((2,)))
    sgd = SGD(parameters, lr=0.1, momentum=0.9)
    sgd.step()
    with pytest.raises(InvalidInputError, match=r"keys \['momentum_buffer'\], Adam with these options keeps"):
        Adam(parameters).load_state_dict(sgd.state_dict())
    with pytest.raises(InvalidInputError, match="not an optimizer state dict"):
        Adam(parameters).load_state_dict([1, 2])


# --- memory layouts ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["C", "F", "mixed"])
def test_chunked_slices_write_through_to_every_layout(order: str) -> None:
    shape = (300, 250)  # 75,000 elements: more than two chunks
    orders = {"C": "CC", "F": "FF", "mixed": "CF"}[order]
    arrays = [np.zeros(shape, order=o) for o in orders]
    pieces = list(chunked(*arrays))
    assert len(pieces) == (1 if order == "mixed" else -(-75_000 // CHUNK))  # mixed layouts: whole, once
    for piece in pieces:
        for k, part in enumerate(piece):
            part += k + 1  # in place: must land in the arrays themselves
    np.testing.assert_array_equal(arrays[0], 1.0)
    np.testing.assert_array_equal(arrays[1], 2.0)


@pytest.mark.parametrize("make", [SGD, Adam], ids=["sgd", "adam"])
def test_steps_on_f_contiguous_parameters_match_c_contiguous_ones(make) -> None:
    """VGGish's dense kernels are F-contiguous (output-major, see audioembed.nn.fused_dense)."""
    c_params = with_grads(params((70, 600)))
    f_params = [Parameter(np.asfortranarray(p.data)) for p in c_params]
    for p, q in zip(c_params, f_params, strict=True):
        q.grad = p.grad.copy()  # C-contiguous, as a GEMM gives it: walked in the data's order
    # the gradient is walked in the data's order, so that chunked() slices all the arrays of the update
    assert Optimizer._gradient(f_params[0]).flags.f_contiguous
    assert Optimizer._gradient(c_params[0]).flags.c_contiguous
    kwargs: dict[str, Any] = {"lr": 0.1, "weight_decay": 0.01}
    c_opt, f_opt = make(c_params, **kwargs), make(f_params, **kwargs)
    for _ in range(3):
        c_opt.step()
        f_opt.step()
    assert f_params[0].data.flags.f_contiguous
    np.testing.assert_array_equal(f_params[0].data, c_params[0].data)
