"""VGGish's native files record module versions, and a loader honours them (upgrading older layouts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors
import safetensors.numpy

from audioembed.nn import Linear
from audioembed.vggish import VGGish, load_vggish
from audioembed.vggish.weights import read_native


@pytest.fixture(scope="module")
def unversioned(synthetic_weights: Path, tmp_path_factory) -> Path:
    """The synthetic weights as a native file written before versions were recorded (no module_versions)."""
    with safetensors.safe_open(str(synthetic_weights), framework="numpy") as handle:
        metadata = {k: v for k, v in handle.metadata().items() if k != "module_versions"}
        arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    path = tmp_path_factory.mktemp("old") / "old.safetensors"
    safetensors.numpy.save_file(arrays, str(path), metadata=metadata)
    return path


def test_native_files_record_the_models_module_versions(synthetic_weights: Path) -> None:
    _, _, metadata = read_native(synthetic_weights)
    versions = json.loads(metadata["module_versions"])
    assert versions[""] == VGGish._version and versions["conv1"] == 1 and versions["fc2"] == 1
    assert set(versions) == {prefix for prefix, _ in VGGish(initialize=False).named_modules()}


def test_an_unversioned_native_file_still_loads_memory_mapped(unversioned: Path) -> None:
    model = load_vggish(unversioned)
    assert not model.conv1.weight.data.flags.writeable  # views of the mapped file: no copy, no upgrade


def test_an_older_layout_goes_through_the_upgrade(unversioned: Path, synthetic_weights: Path, monkeypatch):
    calls: list[tuple[str, int]] = []

    def upgrade(self: Linear, state: dict[str, Any], prefix: str, version: int) -> None:
        calls.append((prefix, version))

    monkeypatch.setattr(Linear, "_version", 2)  # as if Linear's layout had changed since the file was written
    monkeypatch.setattr(Linear, "_upgrade_state", upgrade)
    model = load_vggish(unversioned)
    assert calls == [("fc1_1.", 1), ("fc1_2.", 1), ("fc2.", 1)]
    assert model.fc2.weight.data.flags.writeable  # loaded through load_state_dict: private copies
    reference = load_vggish(synthetic_weights, share_memory=False)
    np.testing.assert_array_equal(model.fc2.weight.data, reference.fc2.weight.data)
