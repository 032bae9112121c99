"""Deterministic He-scaled VGGish weights, shared by ``test_model.py`` and ``scripts/make_model_fixture.py``.

The fixture script builds the network in PyTorch from these weights and stores its outputs; the test
regenerates the same weights in NumPy (no torch needed) and compares. Same seed, same NumPy → same bits.
"""

from __future__ import annotations

import math

import numpy as np

from audioembed.vggish import params

FIXTURE_SEED = 2024  # the seed the committed fixture was made with
BIAS_STD = 0.05  # small biases: non-zero so a bias bug shows, small enough not to dominate


def he_scaled_weights(seed: int) -> dict[str, np.ndarray]:
    """All 18 VGGish tensors, float32, TF layouts, keyed by module key (``params.VARIABLES[i].key``).

    Weights are normal with std ``sqrt(2 / fan_in)`` (He), so activations keep their scale through the
    ReLU stack instead of vanishing or exploding; biases are normal with std :data:`BIAS_STD`.
    """
    rng = np.random.default_rng(seed)
    weights = {}
    for variable in params.VARIABLES:
        values = rng.standard_normal(variable.shape, dtype=np.float32)
        if variable.key.endswith(".weight"):
            fan_in = math.prod(variable.shape[:-1])  # HWIO: kh * kw * in; dense: in
            values *= np.float32(math.sqrt(2.0 / fan_in))
        else:
            values *= np.float32(BIAS_STD)
        weights[variable.key] = values
    return weights


def head_weights(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The gradient fixture's head ``Linear(128, 10)``: weight ``[128, 10]`` (TF layout) and bias, float32."""
    rng = np.random.default_rng(seed + 1)
    weight = rng.standard_normal((params.EMBEDDING_SIZE, 10), dtype=np.float32)
    weight *= np.float32(math.sqrt(1.0 / params.EMBEDDING_SIZE))
    bias = rng.standard_normal(10, dtype=np.float32) * np.float32(BIAS_STD)
    return weight, bias


def grad_fixture_batch() -> tuple[np.ndarray, np.ndarray]:
    """The gradient fixture's batch: two log-mel-like examples (float32 [2, 96, 64]) and class targets."""
    inputs = np.random.default_rng(11).uniform(-4.6, 3.0, (2, params.NUM_FRAMES, params.NUM_BANDS))
    return inputs.astype(np.float32), np.array([3, 7], dtype=np.int64)
