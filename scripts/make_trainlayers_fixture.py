"""Write ``tests/fixtures/nn/trainlayers_torch.npz``: norm layers and losses computed by PyTorch (dev-only).

The reference for ``audioembed.nn``'s BatchNorm1d/2d, LayerNorm, InstanceNorm2d and its three losses:
for each case, seeded random inputs, parameters and output probes go through ``torch.nn``, and the
outputs, the input/parameter gradients of ``sum(output * probe)`` and (for the norms with running
statistics) the buffers after every training step are stored, then one eval-mode forward. Every case is
made in float64 and in float32 (torch computing in that dtype).

Layout conversion: audioembed is channel-last, torch channel-first, so NHWC inputs are permuted to NCHW
(and ``[N, L, C]`` to ``[N, C, L]``; logits ``[N, T, C]`` to ``[N, C, T]``) before torch, and results back.
Dropout has no case: torch's random stream cannot be reproduced, its tests are statistical.

Stored arrays, per case ``NAME``: ``NAME/config`` (a JSON string: layer or loss, its keyword arguments,
dtype, number of steps), then e.g. ``NAME/x0``, ``NAME/probe0``, ``NAME/y0``, ``NAME/grad_x0``,
``NAME/grad_weight0``, ``NAME/running_mean0``, …, ``NAME/x_eval``, ``NAME/y_eval`` (norms), or
``NAME/logits``, ``NAME/target``, ``NAME/loss``, ``NAME/grad_logits``, ``NAME/grad_target`` (losses).

How it was run (from the repository root, with ``pip install torch==2.13.0``, CPU build; torch is not a
dependency of the project or its tests)::

    python scripts/make_trainlayers_fixture.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "tests" / "fixtures" / "nn" / "trainlayers_torch.npz"
SEED = 20261207
STEPS = 3  # training steps per norm case, then one eval forward

# name -> (torch class, keyword arguments, input shape in audioembed's channel-last layout)
NORM_CASES: dict[str, tuple[str, dict[str, Any], tuple[int, ...]]] = {
    "bn1d_2d": ("BatchNorm1d", {"num_features": 4}, (6, 4)),
    "bn1d_3d_cumulative": ("BatchNorm1d", {"num_features": 3, "momentum": None}, (4, 5, 3)),
    "bn2d": ("BatchNorm2d", {"num_features": 3, "momentum": 0.3, "eps": 1e-3}, (3, 4, 5, 3)),
    "bn2d_no_affine": ("BatchNorm2d", {"num_features": 2, "affine": False}, (2, 3, 3, 2)),
    "bn2d_untracked": ("BatchNorm2d", {"num_features": 2, "track_running_stats": False}, (2, 3, 4, 2)),
    "ln_last": ("LayerNorm", {"normalized_shape": [5]}, (3, 4, 5)),
    "ln_two_axes": ("LayerNorm", {"normalized_shape": [3, 4], "eps": 1e-3}, (2, 3, 4)),
    "in2d": ("InstanceNorm2d", {"num_features": 3}, (2, 4, 5, 3)),
    "in2d_affine_tracked": (
        "InstanceNorm2d",
        {"num_features": 3, "affine": True, "track_running_stats": True, "momentum": 0.2},
        (3, 3, 4, 3),
    ),
}


def _to_torch(x: np.ndarray, layer: str) -> np.ndarray:
    """Channel-last (audioembed) -> channel-first (torch) for the layers that need it."""
    if layer in ("BatchNorm2d", "InstanceNorm2d"):
        return x.transpose(0, 3, 1, 2)
    if layer == "BatchNorm1d" and x.ndim == 3:
        return x.transpose(0, 2, 1)
    return x


def _from_torch(x: np.ndarray, layer: str) -> np.ndarray:
    if layer in ("BatchNorm2d", "InstanceNorm2d"):
        return x.transpose(0, 2, 3, 1)
    if layer == "BatchNorm1d" and x.ndim == 3:
        return x.transpose(0, 2, 1)
    return x


def _tensor(x: np.ndarray, dtype: torch.dtype, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.ascontiguousarray(x), dtype=dtype, requires_grad=grad)


def norm_case(name: str, dtype: torch.dtype, rng: np.random.Generator, out: dict[str, np.ndarray]) -> None:
    layer_name, kwargs, shape = NORM_CASES[name]
    layer = getattr(nn, layer_name)(**kwargs).to(dtype)
    params = dict(layer.named_parameters())
    with torch.no_grad():
        for param in params.values():  # not the trivial ones/zeros init, so parameter gradients matter
            param.copy_(_tensor(rng.standard_normal(param.shape), dtype))
    for pname, param in params.items():
        out[f"{name}/{pname}"] = param.detach().numpy().copy()
    for step in [*range(STEPS), "eval"]:
        if step == "eval":
            layer.eval()
        x = rng.standard_normal(shape) * 2 + rng.standard_normal(shape[-1])
        probe = rng.standard_normal(shape)
        x_t = _tensor(_to_torch(x, layer_name), dtype, grad=True)
        y_t = layer(x_t)
        (y_t * _tensor(_to_torch(probe, layer_name), dtype)).sum().backward()
        arrays = {"x": x, "probe": probe, "y": _from_torch(y_t.detach().numpy(), layer_name)}
        arrays["grad_x"] = _from_torch(x_t.grad.numpy(), layer_name)
        for pname, param in params.items():
            arrays[f"grad_{pname}"] = param.grad.numpy().copy()
            param.grad = None
        for bname, buffer in layer.named_buffers():
            arrays[bname] = buffer.numpy().copy()
        for key, value in arrays.items():
            out[f"{name}/{key}{step}"] = value
    config = {"layer": layer_name, "kwargs": kwargs, "steps": STEPS}
    out[f"{name}/config"] = np.array(json.dumps(config))


def loss_cases(dtype: torch.dtype, rng: np.random.Generator, suffix: str, out: dict[str, np.ndarray]) -> None:
    """Cross-entropy (indices, probabilities, [N, T, C], ignored targets), BCE with logits and MSE, every
    reduction."""
    n, t, c = 5, 3, 4
    for reduction in ("mean", "sum", "none"):
        weight = rng.uniform(0.2, 2.0, c)
        cases = {
            "ce_index": ("cross_entropy", rng.standard_normal((n, c)) * 2, rng.integers(0, c, n), {}),
            "ce_index_weight_smooth": (
                "cross_entropy",
                rng.standard_normal((n, c)) * 2,
                rng.integers(0, c, n),
                {"weight": weight, "label_smoothing": 0.15},
            ),
            "ce_sequence_weight": (
                "cross_entropy",
                rng.standard_normal((n, t, c)),
                rng.integers(0, c, (n, t)),
                {"weight": weight},
            ),
            "ce_prob_weight_smooth": (
                "cross_entropy",
                rng.standard_normal((n, c)),
                rng.dirichlet(np.ones(c), n),
                {"weight": weight, "label_smoothing": 0.1},
            ),
            "bce": (
                "binary_cross_entropy_with_logits",
                rng.standard_normal((n, c)) * 3,
                rng.integers(0, 2, (n, c)) * 1.0,
                {},
            ),
            "bce_weights": (
                "binary_cross_entropy_with_logits",
                rng.standard_normal((n, c)) * 3,
                rng.uniform(0, 1, (n, c)),
                {"weight": rng.uniform(0.5, 2, c), "pos_weight": rng.uniform(0.5, 4, c)},
            ),
            "mse": ("mse_loss", rng.standard_normal((n, t, c)), rng.standard_normal((n, t, c)), {}),
            "ce_index_ignored_weight_smooth": (
                "cross_entropy",
                rng.standard_normal((n, c)) * 2,
                np.where(np.arange(n) % 2 == 1, -100, rng.integers(0, c, n)),  # default ignore_index
                {"weight": weight, "label_smoothing": 0.1},
            ),
            "ce_sequence_ignore_class": (
                "cross_entropy",
                rng.standard_normal((n, t, c)),
                rng.integers(0, c, (n, t)),
                {"ignore_index": 2},  # a real class
            ),
        }
        for base, (loss, logits, target, kwargs) in cases.items():
            name = f"{base}_{reduction}{suffix}"
            sequence = logits.ndim == 3 and loss == "cross_entropy"
            logits_t = _tensor(logits.transpose(0, 2, 1) if sequence else logits, dtype, grad=True)
            soft = np.issubdtype(target.dtype, np.floating)
            target_t = _tensor(target, dtype, grad=True) if soft else torch.tensor(target, dtype=torch.int64)
            extra = {k: _tensor(v, dtype) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
            value = getattr(functional, loss)(logits_t, target_t, reduction=reduction, **extra)
            probe = rng.standard_normal(value.shape)
            (value * _tensor(probe, dtype)).sum().backward()
            grad_logits = logits_t.grad.numpy()
            out[f"{name}/logits"], out[f"{name}/target"], out[f"{name}/probe"] = logits, target, probe
            out[f"{name}/loss"] = value.detach().numpy()
            out[f"{name}/grad_logits"] = grad_logits.transpose(0, 2, 1) if sequence else grad_logits
            if soft:
                out[f"{name}/grad_target"] = target_t.grad.numpy()
            for key, array in kwargs.items():
                if isinstance(array, np.ndarray):
                    out[f"{name}/{key}"] = array
            options = {k: v for k, v in kwargs.items() if not isinstance(v, np.ndarray)}
            config = {"loss": loss, "kwargs": {**options, "reduction": reduction}}
            out[f"{name}/config"] = np.array(json.dumps(config))


def main() -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    out: dict[str, np.ndarray] = {}
    for suffix, dtype in (("", torch.float64), ("_f32", torch.float32)):
        for name in NORM_CASES:
            case: dict[str, np.ndarray] = {}
            norm_case(name, dtype, rng, case)
            out.update({key.replace(f"{name}/", f"{name}{suffix}/", 1): value for key, value in case.items()})
        loss_cases(dtype, rng, suffix, out)
    # Inputs are stored in the case's dtype: the float32 cases feed float32 arrays to both engines.
    for key, value in out.items():
        if suffix_of(key) == "_f32" and value.dtype == np.float64:
            out[key] = value.astype(np.float32)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUTPUT, **out)
    print(f"wrote {len(out)} arrays to {OUTPUT.relative_to(ROOT)} (torch {torch.__version__})")


def suffix_of(key: str) -> str:
    return "_f32" if key.split("/", 1)[0].endswith("_f32") else ""


if __name__ == "__main__":
    main()
