"""Parity with PyTorch 2.13 on a committed fixture made by ``scripts/make_trainlayers_fixture.py``.

Norm layers: outputs, input and parameter gradients of ``sum(y * probe)``, running statistics after each of
several training steps, then an eval-mode forward. Losses: value and gradients, every reduction. Within
1e-6 for float64 cases and 1e-5 for float32 ones. Gradients come from ``Tensor.backward`` through the
layers and losses (the Function path); the ndarray path must give the same forward values. Torch is not
imported here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audioembed import nn

FIXTURE = np.load(Path(__file__).parents[1] / "fixtures" / "nn" / "trainlayers_torch.npz")
CASES = sorted({key.split("/", 1)[0] for key in FIXTURE.files})
NORM_CASES = [c for c in CASES if "layer" in json.loads(str(FIXTURE[f"{c}/config"]))]
LOSS_CASES = [c for c in CASES if "loss" in json.loads(str(FIXTURE[f"{c}/config"]))]


def _close(actual: object, expected: np.ndarray, case: str, what: str) -> None:
    tol = 1e-5 if case.endswith("_f32") else 1e-6
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=tol, atol=tol, err_msg=f"{case}: {what}")


@pytest.mark.parametrize("case", NORM_CASES)
def test_norm_layers_match_torch_over_training_steps_then_eval(case: str) -> None:
    config = json.loads(str(FIXTURE[f"{case}/config"]))
    kwargs = dict(config["kwargs"])
    float32 = case.endswith("_f32")
    layer = getattr(nn, config["layer"])(**kwargs, dtype=np.float32 if float32 else np.float64)
    for pname, param in layer.named_parameters():
        param.data = FIXTURE[f"{case}/{pname}"].copy()
    for step in [*map(str, range(config["steps"])), "eval"]:
        if step == "eval":
            layer.eval()
        x, probe = FIXTURE[f"{case}/x{step}"], FIXTURE[f"{case}/probe{step}"]
        if step == "eval":  # the ndarray path (no graph) first: it must not touch the buffers in eval
            np.testing.assert_array_equal(layer(x), layer(nn.Tensor(x)).data)
        x_tensor = nn.Tensor(x.copy(), requires_grad=True)
        y = layer(x_tensor)
        assert isinstance(y, nn.Tensor) and y.dtype == x.dtype
        y.backward(probe)
        _close(y.data, FIXTURE[f"{case}/y{step}"], case, f"output at step {step}")
        grads = {"x": x_tensor.grad, **{n: p.grad for n, p in layer.named_parameters()}}
        for name, grad in grads.items():
            _close(grad, FIXTURE[f"{case}/grad_{name}{step}"], case, f"grad of {name} at step {step}")
        layer.zero_grad()
        for bname, buffer in layer.named_buffers():
            expected = FIXTURE[f"{case}/{bname}{step}"]
            if bname == "num_batches_tracked":
                assert buffer.dtype == np.int64 and int(buffer) == int(expected), (case, step)
            else:
                _close(buffer, expected, case, f"{bname} after step {step}")


def test_ndarray_path_trains_the_running_stats_like_the_tensor_path() -> None:
    case = "bn1d_3d_cumulative"
    layer = nn.BatchNorm1d(3, momentum=None, dtype=np.float64)
    layer.load_state_dict(
        {"weight": FIXTURE[f"{case}/weight"], "bias": FIXTURE[f"{case}/bias"]}, strict=False
    )
    for step in range(3):
        y = layer(FIXTURE[f"{case}/x{step}"])
        assert isinstance(y, np.ndarray)
        _close(y, FIXTURE[f"{case}/y{step}"], case, f"ndarray output at step {step}")
    _close(layer.running_var, FIXTURE[f"{case}/running_var2"], case, "running_var")


@pytest.mark.parametrize("case", LOSS_CASES)
def test_losses_match_torch(case: str) -> None:
    config = json.loads(str(FIXTURE[f"{case}/config"]))
    kwargs = dict(config["kwargs"])
    for key in ("weight", "pos_weight"):
        if f"{case}/{key}" in FIXTURE.files:
            kwargs[key] = FIXTURE[f"{case}/{key}"]
    logits, target, probe = (FIXTURE[f"{case}/{k}"] for k in ("logits", "target", "probe"))
    functional = getattr(nn.functional, config["loss"])
    value = functional(logits, target, **kwargs)
    if kwargs["reduction"] == "none":
        assert isinstance(value, np.ndarray) and value.dtype == logits.dtype
    else:
        assert isinstance(value, float)
    _close(value, FIXTURE[f"{case}/loss"], case, "loss")
    soft = np.issubdtype(target.dtype, np.floating)
    logits_tensor = nn.Tensor(logits.copy(), requires_grad=True)
    target_tensor = nn.Tensor(target.copy(), requires_grad=soft)
    tensor_value = functional(logits_tensor, target_tensor, **kwargs)
    assert isinstance(tensor_value, nn.Tensor)
    _close(tensor_value.data, FIXTURE[f"{case}/loss"], case, "loss (Tensor path)")
    tensor_value.backward(probe.astype(logits.dtype))
    _close(logits_tensor.grad, FIXTURE[f"{case}/grad_logits"], case, "grad of logits")
    if soft:
        _close(target_tensor.grad, FIXTURE[f"{case}/grad_target"], case, "grad of target")
    else:
        assert target_tensor.grad is None
