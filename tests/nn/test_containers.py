"""``Sequential``, ``ModuleList`` and ``ModuleDict``."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.nn import Flatten, Linear, ModuleDict, ModuleList, ReLU, Sequential


def test_sequential_runs_stages_in_order() -> None:
    first, second = Linear(3, 2), Linear(2, 1)
    seq = Sequential(first, ReLU(), second)
    x = np.ones((4, 3), np.float32)
    expected = second(np.maximum(first(x), 0))
    np.testing.assert_array_equal(seq(x), expected)
    assert len(seq) == 3 and list(seq) == [first, seq[1], second]


def test_sequential_indexing_and_slicing() -> None:
    seq = Sequential({"inp": Linear(3, 2), "act": ReLU(), "out": Linear(2, 1)})
    assert seq[-1] is seq.out and seq[0] is seq.inp
    tail = seq[1:]
    assert type(tail) is Sequential and list(tail._modules) == ["act", "out"]  # names kept
    assert tail.out is seq.out  # the same modules, not copies
    with pytest.raises(IndexError, match="index 3 is out of range for Sequential of length 3"):
        seq[3]
    with pytest.raises(TypeError, match="indices must be int or slice, got 'act'"):
        seq["act"]  # type: ignore[call-overload]


def test_sequential_append_and_type_checks() -> None:
    seq = Sequential(Linear(2, 2))
    assert seq.append(Flatten()) is seq
    assert list(seq._modules) == ["0", "1"]
    with pytest.raises(TypeError, match="Sequential holds Modules, got int 3"):
        Sequential(Linear(1, 1), 3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Sequential holds Modules, got ufunc"):
        seq.append(np.maximum)  # type: ignore[arg-type]


def test_module_list() -> None:
    a, b, c = Linear(1, 1), Linear(1, 2), Linear(2, 1)
    layers = ModuleList([a, b])
    layers.append(c)
    assert list(layers) == [a, b, c] and len(layers) == 3
    assert [name for name, _ in layers.named_parameters()][:2] == ["0.weight", "0.bias"]
    layers.insert(0, ReLU())
    assert list(layers._modules) == ["0", "1", "2", "3"] and layers[1] is a
    del layers[0]
    assert list(layers) == [a, b, c] and list(layers._modules) == ["0", "1", "2"]  # renumbered
    layers[-1] = ReLU()
    assert isinstance(layers[2], ReLU)
    assert list(layers[:2]) == [a, b] and type(layers[:2]) is ModuleList
    layers.extend([Flatten()])
    assert len(layers) == 4
    with pytest.raises(IndexError, match="index -5 is out of range for ModuleList of length 4"):
        layers[-5]
    with pytest.raises(TypeError, match="ModuleList holds Modules, got str 'x'"):
        layers.append("x")  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="ModuleList does not define forward"):
        layers(1)


def test_module_dict() -> None:
    heads = ModuleDict({"speech": Linear(2, 1)})
    heads["music"] = Linear(2, 3)
    heads.update([("noise", ReLU())])
    assert list(heads) == ["speech", "music", "noise"] and len(heads) == 3
    assert "music" in heads and "drums" not in heads
    assert list(heads.keys()) == ["speech", "music", "noise"]
    assert heads["music"].out_features == 3
    assert next(iter(heads.items()))[0] == "speech" and len(list(heads.values())) == 3
    assert [name for name, _ in heads.named_parameters()] == [
        "speech.weight",
        "speech.bias",
        "music.weight",
        "music.bias",
    ]
    assert isinstance(heads.pop("noise"), ReLU)
    del heads["speech"]
    assert list(heads) == ["music"]
    with pytest.raises(KeyError, match=r"ModuleDict has no module 'drums'; it has \['music'\]"):
        heads["drums"]
    with pytest.raises(KeyError, match="no module 'drums'"):
        del heads["drums"]
    with pytest.raises(ValueError, match=r"module name can't contain '\.', got 'a\.b'"):
        heads["a.b"] = ReLU()
    with pytest.raises(
        ValueError, match="module name 'keys' clashes with an existing attribute of ModuleDict"
    ):
        heads["keys"] = ReLU()
    with pytest.raises(TypeError, match="ModuleDict holds Modules, got int 1"):
        heads["x"] = 1  # type: ignore[assignment]
