"""VGGish's fused fast path: the layer-by-layer numbers, used only when exact, rebuilt when weights change."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from audioembed.vggish import VGGish, params

TOLERANCE = 1e-5  # relative to the largest |embedding| (issue 2 §3 target 4)


def _random_weights(seed: int) -> dict[str, np.ndarray]:
    """He-scaled float32 weights (uniform, variance 2 / fan-in: cheap to draw), small random biases."""
    rng = np.random.default_rng(seed)
    state = {}
    for variable in params.VARIABLES:
        if variable.key.endswith(".weight"):
            fan_in = int(np.prod(variable.shape[:-1]))
            w = rng.random(variable.shape, dtype=np.float32)  # U[0, 1)
            w -= np.float32(0.5)
            w *= np.float32(2.0 * np.sqrt(6.0 / fan_in))  # U[-a, a], a² / 3 = 2 / fan_in
            state[variable.key] = w
        else:
            state[variable.key] = (0.01 * rng.standard_normal(variable.shape)).astype(np.float32)
    return state


def _relative(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual.astype(np.float64) - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module")
def model() -> VGGish:
    model = VGGish()
    model.load_state_dict(_random_weights(0))
    return model.eval()


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((3, 96, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def layer_by_layer(model: VGGish, inputs: np.ndarray) -> np.ndarray:
    model.train()  # training mode: every layer runs through its own call
    try:
        return model(inputs)
    finally:
        model.eval()


def test_fast_path_matches_layer_by_layer(model: VGGish, inputs: np.ndarray, layer_by_layer) -> None:
    model.invalidate_fast_path()
    fast = model(inputs)
    assert model._fast.built, "eval mode without hooks must use the fused plans"
    assert fast.shape == (3, 128) and fast.dtype == np.float32
    assert _relative(fast, layer_by_layer) <= TOLERANCE
    assert (fast < 0).any()  # no ReLU after fc2 on the fast path either
    single = model(inputs[1:2])
    assert _relative(single, layer_by_layer[1:2]) <= TOLERANCE
    assert model(inputs[:0]).shape == (0, 128)


def test_fast_path_matches_float64(model: VGGish, inputs: np.ndarray) -> None:
    reference = VGGish()
    reference.load_state_dict(model.state_dict())
    reference.double().eval()  # float64 parameters: the fused float32 plans must not be used
    expected = reference(inputs[:2].astype(np.float64))
    assert not reference._fast.built
    assert _relative(model(inputs[:2]), expected) <= TOLERANCE


def test_training_mode_does_not_use_the_plans(inputs: np.ndarray) -> None:
    fresh = VGGish()  # modules start in training mode
    fresh(inputs[:1])
    assert not fresh._fast.built
    fresh.eval()(inputs[:1])
    assert fresh._fast.built


@pytest.mark.parametrize(
    ("layer", "kind"), [("conv3_1", "forward"), ("pool2", "pre"), ("flatten", "forward"), ("fc1_2", "pre")]
)
def test_hooks_on_a_replaced_layer_disable_the_fast_path(
    model: VGGish, inputs: np.ndarray, layer_by_layer, layer: str, kind: str
) -> None:
    calls: list[str] = []
    module = getattr(model, layer)
    if kind == "forward":
        handle = module.register_forward_hook(lambda m, args, out: calls.append(layer))
    else:
        handle = module.register_forward_pre_hook(lambda m, args: calls.append(layer))
    try:
        out = model(inputs)
    finally:
        handle.remove()
    assert calls == [layer]
    assert _relative(out, layer_by_layer) <= TOLERANCE


def test_a_hook_on_the_model_itself_keeps_the_fast_path(model: VGGish, inputs: np.ndarray) -> None:
    model.invalidate_fast_path()
    calls = []
    handle = model.register_forward_hook(lambda m, args, out: calls.append(out.shape))
    try:
        model(inputs)
    finally:
        handle.remove()
    assert calls == [(3, 128)] and model._fast.built


def _layer_by_layer(model: VGGish, x: np.ndarray) -> np.ndarray:
    model.train()
    try:
        return model(x)
    finally:
        model.eval()


def test_plans_are_rebuilt_when_parameters_change(inputs: np.ndarray) -> None:
    x = inputs[:1]
    model = VGGish()
    model.load_state_dict(_random_weights(2))
    model.eval()
    before = model(x)
    assert model._fast.built

    # load_state_dict: dropped at once, rebuilt from the new weights on the next call
    model.load_state_dict({key: -value for key, value in model.state_dict().items()})
    assert not model._fast.built
    after = model(x)
    expected = _layer_by_layer(model, x)
    assert _relative(after, expected) <= TOLERANCE and _relative(after, before) > 0.1

    # a cast through _apply (to float64 and back): dropped, then rebuilt from the re-cast arrays
    model.double()
    assert not model._fast.built
    model.float()
    assert _relative(model(x), expected) <= TOLERANCE

    # a parameter array replaced directly: noticed by identity
    model.conv4_2.weight.data = model.conv4_2.weight.data * np.float32(-1.0)
    replaced = model(x)
    expected_replaced = _layer_by_layer(model, x)
    assert _relative(replaced, expected_replaced) <= TOLERANCE and _relative(replaced, expected) > 1e-3

    # an in-place write into a conv kernel (the plans hold its transform) is stale at batch 3, where
    # conv4 runs on the transform, until the explicit call
    x3 = inputs[:3]
    model(x3)
    model.conv4_2.weight.data *= np.float32(-1.0)
    stale = model(x3)
    model.invalidate_fast_path()
    fresh = model(x3)
    expected3 = _layer_by_layer(model, x3)
    assert _relative(fresh, expected3) <= TOLERANCE and _relative(stale, expected3) > 1e-3


def test_a_model_with_plans_can_be_deep_copied_and_pickled(model: VGGish, inputs: np.ndarray) -> None:
    expected = model(inputs[:1])
    assert model._fast.built
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert not clone._fast.built
        np.testing.assert_array_equal(clone(inputs[:1]), expected)
        assert clone._fast.built
        clone.invalidate_fast_path()
