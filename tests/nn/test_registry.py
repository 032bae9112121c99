"""The model registry: registration, creation with options and weights, listing, and every error path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from audioembed.errors import InvalidOptionError, ModelRegistryError, WeightsNotFoundError
from audioembed.nn import Linear, Module, ReLU, Sequential
from audioembed.nn import registry as reg
from audioembed.nn.serialization import save_state_file

NAMES = ("test_mlp", "test_bare", "test_own_weights", "test_broken")


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    yield
    for name in NAMES:
        if reg.is_model(name):
            reg.unregister_model(name)


def register_mlp(path: Path | None = None) -> None:
    @reg.register_model("test_mlp", default_config={"hidden": 4}, pretrained=(lambda: path) if path else None)
    def test_mlp(hidden: int, out: int = 2) -> Module:
        """A two-layer perceptron for the registry tests.

        More text that is not the summary.
        """
        return Sequential(Linear(3, hidden), ReLU(), Linear(hidden, out))


def test_create_model_passes_defaults_and_overrides() -> None:
    register_mlp()
    model = reg.create_model("test_mlp")
    assert model[0].weight.shape == (3, 4) and model[2].weight.shape == (4, 2)
    assert model.training  # a fresh model is built for training
    wider = reg.create_model("test_mlp", hidden=8, out=5)
    assert wider[0].weight.shape == (3, 8) and wider[2].weight.shape == (8, 5)
    entry = reg.model_entry("test_mlp")
    assert entry.summary == "A two-layer perceptron for the registry tests."
    assert entry.default_config == {"hidden": 4} and entry.origin.endswith("test_mlp")


def test_bare_decorator_uses_the_function_name_and_returns_it() -> None:
    def test_bare() -> Module:
        return Linear(1, 1)

    assert reg.register_model(test_bare) is test_bare
    assert reg.is_model("test_bare") and "test_bare" in reg.list_models("test_*")
    assert reg.list_models("test_b?re") == ["test_bare"] and reg.list_models("zzz*") == []


def test_weights_file_loads_through_the_state_file_and_returns_eval_mode(tmp_path: Path) -> None:
    register_mlp()
    trained = reg.create_model("test_mlp")
    trained[0].weight.data[...] = np.arange(12.0).reshape(3, 4)
    path = save_state_file(tmp_path / "mlp.safetensors", trained)
    loaded = reg.create_model("test_mlp", weights=path)
    assert not loaded.training
    np.testing.assert_array_equal(loaded[0].weight.data, trained[0].weight.data)
    np.testing.assert_array_equal(loaded[2].bias.data, trained[2].bias.data)


def test_pretrained_uses_the_registered_resolver(tmp_path: Path) -> None:
    register_mlp()
    reference = reg.create_model("test_mlp")
    path = save_state_file(tmp_path / "default.safetensors", reference)
    reg.unregister_model("test_mlp")
    register_mlp(path)
    model = reg.create_model("test_mlp", pretrained=True)
    np.testing.assert_array_equal(model[0].weight.data, reference[0].weight.data)


def test_a_builder_with_a_weights_parameter_loads_its_own_files(tmp_path: Path) -> None:
    received = []

    @reg.register_model("test_own_weights")
    def build(weights: Path | None = None, scale: float = 1.0) -> Module:
        received.append((weights, scale))
        return Linear(1, 1)

    reg.create_model("test_own_weights", weights=str(tmp_path / "w.bin"), scale=2.0)
    reg.create_model("test_own_weights")
    assert received == [(tmp_path / "w.bin", 2.0), (None, 1.0)]


def test_a_state_file_that_does_not_fit_is_a_clear_error(tmp_path: Path) -> None:
    register_mlp()
    path = save_state_file(tmp_path / "other.safetensors", Linear(3, 7))
    with pytest.raises(ValueError, match="missing key"):
        reg.create_model("test_mlp", weights=path)
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        reg.create_model("test_mlp", weights=tmp_path / "absent.safetensors")


def test_unknown_names_suggest_close_matches() -> None:
    register_mlp()
    with pytest.raises(InvalidOptionError, match=r"unknown model 'test_mpl'; did you mean 'test_mlp'\?"):
        reg.create_model("test_mpl")
    with pytest.raises(InvalidOptionError, match=r"unknown model 'qqqqqqqq' \(registered: .*test_mlp"):
        reg.create_model("qqqqqqqq")
    with pytest.raises(InvalidOptionError, match="unknown model 'nope'"):
        reg.unregister_model("nope")
    with pytest.raises(TypeError, match="a model name is a str, got int"):
        reg.create_model(3)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 3}, r"'test_mlp' does not take option\(s\) \['depth'\]; its options: \['hidden', 'out'\]"),
        ({"weights": "a.safetensors", "pretrained": True}, "not both"),
        ({"pretrained": True}, "'test_mlp' has no pretrained weights: pass weights=PATH instead"),
        ({"pretrained": "yes"}, "pretrained must be a bool, got 'yes'"),
    ],
)
def test_bad_create_arguments(kwargs: dict, message: str) -> None:
    register_mlp()
    with pytest.raises(InvalidOptionError, match=message):
        reg.create_model("test_mlp", **kwargs)


def test_double_registration_is_refused_but_re_registering_the_same_builder_is_not() -> None:
    register_mlp()
    register_mlp()  # the same function again (a module reloaded): replaces the entry

    message = r"'test_mlp' is already registered by .*test_mlp; .*another name"
    with pytest.raises(ModelRegistryError, match=message):

        @reg.register_model("test_mlp")
        def other() -> Module:
            return Linear(1, 1)


@pytest.mark.parametrize("name", ["", "two words", 7])
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(ModelRegistryError, match="non-empty str without spaces"):
        reg.register_model(name)(lambda: Linear(1, 1))


def test_bad_registrations_are_refused() -> None:
    with pytest.raises(ModelRegistryError, match=r"option\(s\) \['width'\] that its builder"):

        @reg.register_model("test_broken", default_config={"width": 3})
        def test_broken(hidden: int = 2) -> Module:
            return Linear(1, hidden)

    with pytest.raises(ModelRegistryError, match="decorates a function, got int"):
        reg.register_model("test_broken")(5)
    assert not reg.is_model("test_broken")


def test_a_builder_must_return_a_module() -> None:
    reg.register_model("test_broken")(lambda: "not a module")
    with pytest.raises(ModelRegistryError, match="returned str"):
        reg.create_model("test_broken")
    reg.unregister_model("test_broken")
    reg.register_model("test_broken")(lambda weights=None: None)  # a builder that loads its own files too
    with pytest.raises(ModelRegistryError, match="returned NoneType"):
        reg.create_model("test_broken")
