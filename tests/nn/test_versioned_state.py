"""Versioned state dicts: versions recorded in state dicts and files, older layouts upgraded on load."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import safetensors
import safetensors.numpy
from versioned_modules import FIXTURES, V1_VALUES, Model, Scale

from audioembed.errors import WeightsFormatError
from audioembed.nn import Linear, Sequential
from audioembed.nn.serialization import load_state_file, save_state_file
from audioembed.nn.state_dict import StateDict, module_versions, outdated_modules

CURRENT = {"": 1, "body": 1, "body.0": 3, "body.1": 1, "body.2": 3, "head": 1}


@pytest.fixture(autouse=True)
def upgrades() -> Iterator[list[tuple[str, int]]]:
    Scale.upgrades.clear()
    yield Scale.upgrades


def check_v1_values(model: Model) -> None:
    np.testing.assert_array_equal(model.body[0].weight.data, [[0.5, 2.0, -1.0]])
    np.testing.assert_array_equal(model.body[2].weight.data, [[3.0, 1.5, 0.25]])
    np.testing.assert_array_equal(model.body[2].offset.data, [-0.5, 0.0, 0.5])
    np.testing.assert_array_equal(model.head.weight.data, V1_VALUES["head.weight"].astype(np.float32))
    assert model.body[0].calls == 0 and model.body[0].calls.dtype == np.int64


def test_state_dict_records_every_modules_class_version() -> None:
    state = Model().state_dict()
    assert isinstance(state, StateDict) and isinstance(state, dict)
    assert state.versions() == CURRENT == module_versions(Model())
    assert state.metadata["body.0"] == {"version": 3}
    assert Sequential(Linear(1, 1)).state_dict(prefix="net.").versions() == {"net": 1, "net.0": 1}
    assert state.copy().versions() == CURRENT  # copy keeps the metadata ...
    assert not hasattr(dict(state), "metadata")  # ... a plain dict does not


def test_a_file_written_before_versions_existed_is_upgraded_from_version_1(upgrades) -> None:
    path = FIXTURES / "scale_v1.safetensors"
    with safetensors.safe_open(str(path), framework="numpy") as handle:
        assert handle.metadata() is None  # really the old way: no version metadata at all
        assert "body.0.gain" in handle.keys()  # noqa: SIM118 - not a dict
    state, metadata = load_state_file(path)
    assert state.metadata == {} and metadata == {}
    assert outdated_modules(Model(), state) == ["body.0", "body.2"]
    model = Model()
    assert model.load_state_dict(state) == ([], [])
    check_v1_values(model)
    assert upgrades == [("body.0.", 1), ("body.2.", 1)]  # only the classes whose layout changed
    assert "body.0.gain" in state  # the caller's state is not edited


def test_a_version_2_file_gets_only_the_later_upgrade(upgrades) -> None:
    state, metadata = load_state_file(FIXTURES / "scale_v2.safetensors")
    assert state.versions()["body.0"] == 2 and metadata == {"written_by": "scripts/make_versioned_fixture.py"}
    model = Model()
    model.load_state_dict(state)
    check_v1_values(model)
    assert upgrades == [("body.0.", 2), ("body.2.", 2)]


def test_current_state_round_trips_through_a_file_without_upgrades(tmp_path: Path, upgrades) -> None:
    model = Model()
    model.load_state_dict(load_state_file(FIXTURES / "scale_v1.safetensors")[0])
    model.body[2].calls[...] = 5
    path = save_state_file(tmp_path / "model.safetensors", model, metadata={"note": "hi"})
    upgrades.clear()
    state, metadata = load_state_file(path)
    assert state.versions() == CURRENT and metadata == {"note": "hi"}
    again = Model()
    again.load_state_dict(state)
    assert upgrades == []
    check_v1_values(again)
    assert again.body[2].calls == 5


def test_writing_the_same_state_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    model = Model()
    first = save_state_file(tmp_path / "a.safetensors", model, metadata={"b": "2", "a": "1"})
    second = save_state_file(tmp_path / "b.safetensors", model, metadata={"a": "1", "b": "2"})
    assert first.read_bytes() == second.read_bytes()
    loaded = safetensors.numpy.load_file(str(first))  # readable by the reference implementation
    np.testing.assert_array_equal(loaded["head.weight"], model.head.weight.data)
    assert loaded["body.0.calls"].dtype == np.int64 and loaded["body.0.calls"].shape == ()


def test_state_that_lost_its_metadata_still_loads(upgrades) -> None:
    source = Model()
    source.body[0].offset.data[...] = 7.0
    plain = dict(source.state_dict())  # versions lost: counted as version 1, the upgrade must be a no-op
    model = Model()
    model.load_state_dict(plain)
    assert upgrades == [("body.0.", 1), ("body.2.", 1)]
    np.testing.assert_array_equal(model.body[0].offset.data, [7.0, 7.0, 7.0])


def test_state_from_a_newer_class_version_is_refused(tmp_path: Path) -> None:
    state = Model().state_dict()
    state.metadata["body.2"]["version"] = 4
    model = Model()
    before = model.body[2].weight.data.copy()
    message = r"body.2 \(Scale\) was saved by version 4 of its class, newer than this one \(3\)"
    with pytest.raises(WeightsFormatError, match=message):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model.body[2].weight.data, before)


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        ('{"body.0": 0}', "must map module prefixes to versions >= 1"),
        ('{"body.0": "2"}', "must map module prefixes to versions >= 1"),
        ("[1, 2]", "must map module prefixes to versions >= 1"),
        ("{not json", "module_versions metadata is not JSON"),
    ],
)
def test_malformed_version_metadata_in_a_file_is_refused(tmp_path: Path, versions: str, message: str) -> None:
    path = tmp_path / "bad.safetensors"
    safetensors.numpy.save_file({"x": np.zeros(1)}, str(path), metadata={"module_versions": versions})
    with pytest.raises(WeightsFormatError, match=message):
        load_state_file(path)


def test_bad_versions_in_a_state_dict_are_refused() -> None:
    state = Model().state_dict()
    state.metadata[""]["version"] = "1"
    with pytest.raises(WeightsFormatError, match="module '': bad version '1'"):
        Model().load_state_dict(state)


def test_save_state_file_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(WeightsFormatError, match="'module_versions' is reserved"):
        save_state_file(tmp_path / "x.safetensors", Model(), metadata={"module_versions": "{}"})
    with pytest.raises(WeightsFormatError, match="metadata must map str to str"):
        save_state_file(tmp_path / "x.safetensors", Model(), metadata={"n": 1})
    with pytest.raises(WeightsFormatError, match="cannot store 'names' of dtype <U1"):
        save_state_file(tmp_path / "x.safetensors", {"names": np.array(["a"])})
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(WeightsFormatError, match="not a readable safetensors file"):
        load_state_file(tmp_path / "garbage.safetensors")
