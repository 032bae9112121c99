"""The optimization problems and settings shared by ``scripts/make_optim_fixture.py`` and the optimizer tests.

Gradients come from a fixed least-squares problem computed in NumPy on both sides, so PyTorch's and our
trajectories differ only by the optimizers' arithmetic: ``loss = mean((X @ W + b - Y) ** 2)``, parameters
``W`` [4, 3] and ``b`` [3], plus a third parameter ``frozen`` [2] whose gradient stays None (it must never
move). The fixture ``tests/fixtures/optim/torch_reference.npz`` holds what torch 2.13.0 computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "optim" / "torch_reference.npz"
STEPS = 20
SEED = 20261207


def problem() -> dict[str, np.ndarray]:
    """The data and the start: ``X`` [8, 4], ``Y`` [8, 3], ``W0`` [4, 3], ``b0`` [3], ``frozen0`` [2]."""
    rng = np.random.default_rng(SEED)
    return {
        "X": rng.normal(size=(8, 4)),
        "Y": rng.normal(size=(8, 3)),
        "W0": rng.normal(size=(4, 3)),
        "b0": rng.normal(size=3),
        "frozen0": rng.normal(size=2),
    }


def gradients(W: np.ndarray, b: np.ndarray, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d loss / d W [4, 3] and d loss / d b [3] at (W, b), in W's dtype."""
    residual = X.astype(W.dtype) @ W + b - Y.astype(W.dtype)  # [8, 3]
    scale = W.dtype.type(2.0 / residual.size)
    return scale * (X.astype(W.dtype).T @ residual), scale * residual.sum(axis=0)


# name -> (optimizer class name, options, dtype, per-group options for b or None). Every PyTorch option we
# implement appears in at least one case; "groups" gives b its own learning rate and weight decay.
OPTIMIZER_CASES: dict[str, tuple[str, dict[str, Any], str, dict[str, Any] | None]] = {
    "sgd": ("SGD", {"lr": 0.1}, "float64", None),
    "sgd_momentum": ("SGD", {"lr": 0.05, "momentum": 0.9}, "float64", None),
    "sgd_dampening_decay": (
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01},
        "float64",
        None,
    ),
    "sgd_nesterov": (
        "SGD",
        {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05},
        "float64",
        None,
    ),
    "sgd_maximize": ("SGD", {"lr": 0.01, "momentum": 0.5, "maximize": True}, "float64", None),
    "sgd_momentum_f32": ("SGD", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, "float32", None),
    "adam": ("Adam", {"lr": 0.05}, "float64", None),
    "adam_decay": ("Adam", {"lr": 0.05, "weight_decay": 0.1}, "float64", None),
    "adam_amsgrad": (
        "Adam",
        {"lr": 0.05, "betas": (0.8, 0.99), "amsgrad": True, "weight_decay": 0.05},
        "float64",
        None,
    ),
    "adam_maximize": ("Adam", {"lr": 0.01, "eps": 1e-6, "maximize": True}, "float64", None),
    "adamw": ("AdamW", {"lr": 0.05, "weight_decay": 0.1}, "float64", None),
    "adamw_amsgrad": ("AdamW", {"lr": 0.05, "weight_decay": 0.1, "amsgrad": True}, "float64", None),
    "adamw_f32": ("AdamW", {"lr": 0.05}, "float32", None),
    "adam_groups": ("Adam", {"lr": 0.05}, "float64", {"lr": 0.01, "weight_decay": 0.1}),
    "sgd_groups": ("SGD", {"lr": 0.05, "momentum": 0.9}, "float64", {"lr": 0.2, "momentum": 0.0}),
}

# name -> [(class name, options)] applied to one optimizer with two groups (base lrs 0.1 and 0.02), all
# stepped once per epoch in this order (a list of two chains them, as PyTorch allows).
SCHEDULE_EPOCHS = 35
SCHEDULE_CASES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "step": [("StepLR", {"step_size": 7, "gamma": 0.5})],
    "multistep": [("MultiStepLR", {"milestones": [5, 9, 9, 20], "gamma": 0.3})],
    "cosine": [("CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001})],
    "cosine_zero_min": [("CosineAnnealingLR", {"T_max": 12})],
    "linear": [("LinearLR", {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 6})],
    "linear_decay": [("LinearLR", {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 10})],
    "warmup_then_step": [
        ("LinearLR", {"start_factor": 0.1, "total_iters": 4}),
        ("StepLR", {"step_size": 3, "gamma": 0.5}),
    ],
}
SCHEDULE_BASE_LRS = (0.1, 0.02)

# name -> (max_norm, norm_type): clip_grad_norm_ on the gradients of clip_gradients() (one param has none).
CLIP_CASES: dict[str, tuple[float, float]] = {
    "l2": (1.0, 2.0),
    "l2_no_change": (100.0, 2.0),
    "l1": (2.0, 1.0),
    "l3": (0.5, 3.0),
    "inf": (0.25, float("inf")),
}


def clip_gradients() -> list[np.ndarray | None]:
    """The gradients the clipping cases start from: [3, 4] float64, None, [5] float32."""
    rng = np.random.default_rng(SEED + 1)
    return [rng.normal(size=(3, 4)), None, rng.normal(size=5).astype(np.float32)]
