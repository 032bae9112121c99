"""Batch/instance norm state-dict layout version 2: older state without ``num_batches_tracked`` still loads.

The version-1 file is ``tests/fixtures/state/batchnorm_v1.safetensors``, made by
``scripts/make_batchnorm_v1_fixture.py``: no counter keys and no recorded versions, as older files were.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audioembed import nn
from audioembed.errors import WeightsFormatError
from audioembed.nn.serialization import load_state_file, save_state_file
from audioembed.nn.state_dict import StateDict

V1_FILE = Path(__file__).parents[1] / "fixtures" / "state" / "batchnorm_v1.safetensors"


def model() -> nn.Module:
    """The model the fixture holds (same as ``scripts/make_batchnorm_v1_fixture.py``)."""
    return nn.Sequential(
        nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 3), nn.BatchNorm1d(3, affine=False)
    )


def test_norms_record_version_2_and_the_counter_round_trips_through_a_file(tmp_path: Path) -> None:
    net = model()
    assert net.state_dict().metadata["1"] == {"version": 2} and net.state_dict().metadata["0"] == {
        "version": 1
    }
    net(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    path = save_state_file(tmp_path / "v2.safetensors", net)
    state, _ = load_state_file(path)
    fresh = model()
    fresh.load_state_dict(state)
    assert int(fresh[1].num_batches_tracked) == 1 and fresh[1].num_batches_tracked.dtype == np.int64


def test_a_version_1_file_loads_strictly_and_the_counter_starts_at_zero() -> None:
    state, _ = load_state_file(V1_FILE)
    assert not any(key.endswith("num_batches_tracked") for key in state) and not state.metadata
    net = model()
    with pytest.raises(WeightsFormatError, match=r"missing key.*'1\.num_batches_tracked'"):
        net.load_state_dict(_as_version(state, 2))  # claimed version 2: no upgrade, the counter is missing
    assert net.load_state_dict(state) == ([], [])
    loaded = net.state_dict()
    for key, value in state.items():
        np.testing.assert_array_equal(loaded[key], value)
    assert int(net[1].num_batches_tracked) == 0 and int(net[4].num_batches_tracked) == 0
    net.eval()  # the loaded running statistics normalise
    x = np.random.default_rng(1).standard_normal((2, 4)).astype(np.float32)
    hidden = np.maximum(0, net[1](net[0](x)))
    expected = (hidden @ state["3.weight"] + state["3.bias"] - state["4.running_mean"]) / np.sqrt(
        state["4.running_var"] + 1e-5
    )
    np.testing.assert_allclose(net(x), expected, rtol=1e-5, atol=1e-6)


def _as_version(state: StateDict, version: int) -> StateDict:
    """``state`` claiming that every module wrote it at ``version``."""
    prefixes = {key.rpartition(".")[0] for key in state}
    return StateDict(dict(state), metadata={p: {"version": version} for p in prefixes})


def test_the_upgrade_keeps_the_modules_counter_and_leaves_new_layouts_alone() -> None:
    bn = nn.BatchNorm2d(2)
    bn.num_batches_tracked.fill(7)
    old = {k: v for k, v in bn.state_dict().items() if k != "num_batches_tracked"}
    bn.load_state_dict(old)  # a plain dict counts as version 1: PyTorch keeps the module's own counter
    assert int(bn.num_batches_tracked) == 7
    new = bn.state_dict()
    new["num_batches_tracked"] = np.array(3, np.int64)
    bn.load_state_dict(dict(new))  # version record lost, layout already new: the stored counter wins
    assert int(bn.num_batches_tracked) == 3
    untracked = nn.BatchNorm1d(2, track_running_stats=False)
    assert untracked.load_state_dict({"weight": np.ones(2), "bias": np.zeros(2)}) == ([], [])
    instance = nn.InstanceNorm2d(2, track_running_stats=True)
    instance.load_state_dict({"running_mean": np.ones(2, np.float32), "running_var": np.ones(2, np.float32)})
    assert int(instance.num_batches_tracked) == 0
