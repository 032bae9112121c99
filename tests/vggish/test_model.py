"""``VGGish``: structure, state-dict keys, TF-name loading, input checks, and PyTorch-computed outputs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from synthetic_vggish import FIXTURE_SEED, he_scaled_weights

from audioembed.errors import InvalidInputError, ShapeError, WeightsFormatError
from audioembed.nn import ModuleDict
from audioembed.vggish import VGGish, params

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "model" / "vggish_torch_reference.npz"


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return he_scaled_weights(FIXTURE_SEED)


@pytest.fixture(scope="module")
def model(weights: dict[str, np.ndarray]) -> VGGish:
    model = VGGish()
    model.load_state_dict(weights)
    return model


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return dict(data)


def test_layers_mirror_the_checkpoint_scopes(model: VGGish) -> None:
    assert [name for name, _ in model.named_children()] == [
        "conv1", "pool1", "conv2", "pool2", "conv3_1", "conv3_2", "pool3",
        "conv4_1", "conv4_2", "pool4", "flatten", "fc1_1", "fc1_2", "fc2",
    ]  # fmt: skip
    state = model.state_dict(keep_vars=True)
    assert list(state) == [variable.key for variable in params.VARIABLES]
    for variable in params.VARIABLES:
        assert state[variable.key].shape == variable.shape, variable.key
        assert state[variable.key].dtype == np.float32
    assert sum(p.data.size for p in model.parameters()) == 72_141_184


def test_matches_pytorch_reference(model: VGGish, reference: dict[str, np.ndarray]) -> None:
    assert int(reference["seed"]) == FIXTURE_SEED
    inputs = reference["inputs"]
    features = model._features(inputs[:, :, :, np.newaxis])
    expected_features = reference["features"]
    assert features.shape == (3, 6, 4, 512)
    assert np.abs(features - expected_features).max() <= 1e-4 * np.abs(expected_features).max()
    embeddings = model(inputs)
    expected = reference["embeddings"]
    assert embeddings.shape == (3, 128) and embeddings.dtype == np.float32
    assert np.abs(embeddings - expected).max() <= 1e-4 * np.abs(expected).max()
    assert (embeddings < 0).any()  # pre-activation: no ReLU after fc2


def test_loads_tf_checkpoint_names(weights: dict[str, np.ndarray], model: VGGish) -> None:
    by_tf_name = {params.VARIABLES_BY_KEY[key].tf_name: value for key, value in weights.items()}
    fresh = VGGish()
    assert fresh.load_state_dict(by_tf_name) == ([], [])
    x = np.random.default_rng(0).standard_normal((2, 96, 64)).astype(np.float32)
    np.testing.assert_array_equal(fresh(x), model(x))
    assert "vggish/conv1/weights" in by_tf_name  # the caller's dict is untouched


def test_tf_names_load_under_a_prefix(weights: dict[str, np.ndarray], model: VGGish) -> None:
    # Nested in a container the hook sees its prefix: "embedder.vggish/fc2/biases" → "embedder.fc2.bias".
    container = ModuleDict({"embedder": model})
    prefixed = {f"embedder.{params.VARIABLES_BY_KEY[key].tf_name}": value for key, value in weights.items()}
    assert container.load_state_dict(prefixed) == ([], [])
    np.testing.assert_array_equal(model.fc2.bias.data, weights["fc2.bias"])


def test_concurrent_forward_calls_agree(model: VGGish) -> None:
    # The pipeline calls one model from several threads: forward must not share mutable state.
    inputs = np.random.default_rng(2).uniform(-4, 3, (3, 1, 96, 64)).astype(np.float32)
    expected = [model(x) for x in inputs]
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(model, inputs))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_tf_name_beside_its_module_key_is_unexpected(weights: dict[str, np.ndarray]) -> None:
    state = dict(weights)
    state["vggish/fc2/biases"] = weights["fc2.bias"]
    state.pop("conv1.bias")
    with pytest.raises(WeightsFormatError, match=r"for VGGish(.|\n)*missing key\(s\): 'conv1.bias'") as info:
        VGGish().load_state_dict(state)
    assert "unexpected key(s): 'vggish/fc2/biases'" in str(info.value)


def test_batch_sizes_and_dtypes(model: VGGish) -> None:
    empty = model(np.zeros((0, 96, 64), np.float32))
    assert empty.shape == (0, 128) and empty.dtype == np.float32
    x = np.random.default_rng(1).uniform(-4, 3, (2, 96, 64))  # float64, like the front-end's output
    out64 = model(x)
    assert out64.dtype == np.float32
    np.testing.assert_array_equal(out64, model(x.astype(np.float32)))  # cast, as the reference graph does
    one = model(x[:1])
    assert one.shape == (1, 128)  # a batch of one keeps its rank
    np.testing.assert_allclose(one[0], out64[0], rtol=1e-5, atol=1e-5 * np.abs(out64).max())


@pytest.mark.parametrize("shape", [(96, 64), (2, 96, 63), (2, 64, 96), (2, 96, 64, 1)])
def test_wrong_shapes_name_the_expected_shape(model: VGGish, shape: tuple[int, ...]) -> None:
    with pytest.raises(ShapeError, match=rf"\[N, 96, 64\], got shape {re_shape(shape)}"):
        model(np.zeros(shape, np.float32))


def re_shape(shape: tuple[int, ...]) -> str:
    return str(shape).replace("(", r"\(").replace(")", r"\)")


def test_non_float_input_is_refused(model: VGGish) -> None:
    with pytest.raises(InvalidInputError, match="floating-point log-mel examples, got dtype int16"):
        model(np.zeros((1, 96, 64), np.int16))


def test_layers_run_through_their_hooks(model: VGGish) -> None:
    seen: list[tuple[str, tuple[int, ...]]] = []
    handles = [
        getattr(model, name).register_forward_hook(
            lambda m, a, out, name=name: seen.append((name, out.shape))
        )
        for name in ("conv1", "pool4", "fc2")
    ]
    try:
        assert model.has_forward_hooks()
        model(np.zeros((2, 96, 64), np.float32))
    finally:
        for handle in handles:
            handle.remove()
    assert seen == [("conv1", (2, 96, 64, 64)), ("pool4", (2, 6, 4, 512)), ("fc2", (2, 128))]
    assert not model.has_forward_hooks()
