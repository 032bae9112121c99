"""An optimizer step on VGGish: the fused inference plans see the in-place update (no stale weights)."""

from __future__ import annotations

import numpy as np

from audioembed.nn.optim import SGD
from audioembed.vggish import VGGish


def _relative(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual.astype(np.float64) - expected).max() / np.abs(expected).max())


def test_eval_forward_after_a_step_uses_the_updated_weights() -> None:
    model = VGGish().eval()  # random initial weights, float32: the fused path applies
    x = np.random.default_rng(0).standard_normal((2, 96, 64)).astype(np.float32)
    before = model(x)
    assert model._fast.built
    conv, dense = model.conv2.weight, model.fc1_2.weight
    conv_array = conv.data
    rng = np.random.default_rng(1)
    conv.grad = rng.standard_normal(conv.shape).astype(np.float32)
    dense.grad = rng.standard_normal(dense.shape).astype(np.float32)
    SGD([conv, dense], lr=0.05).step()
    assert conv.data is conv_array  # updated in place: the plans' identity key alone cannot see it
    after = model(x)
    model.train()  # every layer through its own call: the reference for the new weights
    layer_by_layer = model(x)
    model.eval()
    assert _relative(after, layer_by_layer) <= 1e-5
    assert _relative(before, layer_by_layer) > 1e-2  # the step changed the output: a stale plan would show
