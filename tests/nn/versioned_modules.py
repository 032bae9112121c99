"""A Module class whose state-dict layout changed twice, shared by its tests and its fixture script.

``Scale`` multiplies by a per-feature gain and adds an offset. Its layouts:

- version 1: buffer ``gain`` [n] and parameter ``offset`` [n];
- version 2: the gain became a trainable parameter ``weight`` [1, n] (renamed and reshaped, so that it
  broadcasts over a batch the way a dense weight does);
- version 3 (current): adds the buffer ``calls`` (int64 scalar), how many forward calls it has seen.

``scripts/make_versioned_fixture.py`` writes ``tests/fixtures/state/scale_v1.safetensors`` the way files were
written before versions were recorded (no ``module_versions`` metadata) with the version-1 layout, and
``scale_v2.safetensors`` with the version-2 layout and its versions recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from audioembed.nn import Linear, Module, Parameter, ReLU, Sequential

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "state"
FEATURES = 3


class Scale(Module):
    """``x * weight + offset`` for ``x`` [N, n]; version 3 of its layout (see the module docstring)."""

    _version = 3
    upgrades: ClassVar[list[tuple[str, int]]] = []  # (prefix, from version) of each upgrade run

    def __init__(self, n: int = FEATURES) -> None:
        super().__init__()
        self.weight = Parameter(np.ones((1, n)))
        self.offset = Parameter(np.zeros(n))
        self.register_buffer("calls", np.array(0, np.int64))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return x * self.weight.data + self.offset.data

    def _upgrade_state(self, state_dict: dict[str, Any], prefix: str, version: int) -> None:
        Scale.upgrades.append((prefix, version))
        if version < 2 and prefix + "gain" in state_dict:  # v1 -> v2: the gain buffer became weight [1, n]
            gain = np.asarray(state_dict.pop(prefix + "gain"))
            state_dict[prefix + "weight"] = gain.reshape(1, -1)  # [n] -> [1, n]
        if version < 3:  # v2 -> v3: the call counter is new; old state never counted
            state_dict.setdefault(prefix + "calls", np.array(0, np.int64))


class Model(Module):
    """Two ``Scale`` layers nested in a container, beside a layer whose layout never changed."""

    def __init__(self) -> None:
        super().__init__()
        self.body = Sequential(Scale(), ReLU(), Scale())
        self.head = Linear(FEATURES, 2)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.head(self.body(x))


# The values the fixture files hold, in the version-1 layout: per-layer gains and offsets, the head.
V1_VALUES = {
    "body.0.gain": np.array([0.5, 2.0, -1.0]),
    "body.0.offset": np.array([0.1, 0.2, 0.3]),
    "body.2.gain": np.array([3.0, 1.5, 0.25]),
    "body.2.offset": np.array([-0.5, 0.0, 0.5]),
    "head.weight": np.arange(6.0).reshape(3, 2) / 10,
    "head.bias": np.array([1.0, -1.0]),
}
