"""Parity with PyTorch 2.13 on a committed fixture made by ``scripts/make_trainlayers_fixture.py``.

Norm layers: outputs, input and parameter gradients of ``sum(y * probe)``, running statistics after each of
several training steps, then an eval-mode forward. Losses: value and gradients, every reduction. Within
1e-6 for float64 cases and 1e-5 for float32 ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audioembed import nn
from audioembed.nn import functional_loss as fl
from audioembed.nn import functional_norm as fn

FIXTURE = np.load(Path(__file__).parents[1] / "fixtures" / "nn" / "trainlayers_torch.npz")
CASES = sorted({key.split("/", 1)[0] for key in FIXTURE.files})
NORM_CASES = [c for c in CASES if "layer" in json.loads(str(FIXTURE[f"{c}/config"]))]
LOSS_CASES = [c for c in CASES if "loss" in json.loads(str(FIXTURE[f"{c}/config"]))]


def _close(actual: object, expected: np.ndarray, case: str, what: str) -> None:
    tol = 1e-5 if case.endswith("_f32") else 1e-6
    np.testing.assert_allclose(np.asarray(actual), expected, rtol=tol, atol=tol, err_msg=f"{case}: {what}")


def _kernel_grads(layer: nn.Module, stats: tuple, x: np.ndarray, probe: np.ndarray) -> dict[str, np.ndarray]:
    """Gradients of ``sum(layer(x) * probe)`` from the kernel pair, replaying the step on saved statistics."""
    weight = None if layer.weight is None else layer.weight.data
    bias = None if layer.bias is None else layer.bias.data
    if isinstance(layer, nn.LayerNorm):
        _, saved = fn.layer_norm_forward(x, layer.normalized_shape, weight, bias, layer.eps)
        shape = layer.normalized_shape
    else:
        rm, rv, momentum = stats
        if isinstance(layer, nn.InstanceNorm2d):
            use_batch = layer.training or not layer.track_running_stats
            _, saved = fn.instance_norm_forward(x, rm, rv, weight, bias, use_batch, momentum, layer.eps)
        else:
            use_batch = layer.training or rm is None
            _, saved = fn.batch_norm_forward(x, rm, rv, weight, bias, use_batch, momentum, layer.eps)
        shape = (layer.num_features,)
    gx, gw, gb = fn.norm_backward(probe, saved, shape)
    return {"x": gx, "weight": gw, "bias": gb}


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
        stats = None
        if not isinstance(layer, nn.LayerNorm):
            momentum = layer.momentum
            if momentum is None:
                momentum = 1.0 / (int(layer.num_batches_tracked) + 1) if layer.training else 0.0
            tracked = layer.running_mean is not None
            stats = (
                layer.running_mean.copy() if tracked else None,
                layer.running_var.copy() if tracked else None,
                momentum,
            )
        y = layer(x)
        assert y.dtype == x.dtype
        _close(y, FIXTURE[f"{case}/y{step}"], case, f"output at step {step}")
        for name, grad in _kernel_grads(layer, stats, x, probe).items():
            key = f"{case}/grad_{name}{step}"
            if key in FIXTURE.files:
                _close(grad, FIXTURE[key], case, f"grad of {name} at step {step}")
        for bname, buffer in layer.named_buffers():
            expected = FIXTURE[f"{case}/{bname}{step}"]
            if bname == "num_batches_tracked":
                assert buffer.dtype == np.int64 and int(buffer) == int(expected), (case, step)
            else:
                _close(buffer, expected, case, f"{bname} after step {step}")


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
    forward = getattr(fl, f"{config['loss']}_forward")
    backward = getattr(fl, f"{config['loss']}_backward")
    grad_logits, grad_target = backward(probe.astype(logits.dtype), forward(logits, target, **kwargs)[1])
    _close(grad_logits, FIXTURE[f"{case}/grad_logits"], case, "grad of logits")
    if f"{case}/grad_target" in FIXTURE.files:
        _close(grad_target, FIXTURE[f"{case}/grad_target"], case, "grad of target")
