"""The README's promise for the framework: compose the layers, print the tree, round-trip a state dict."""

from __future__ import annotations

import numpy as np

from audioembed import nn


def build(seed: int) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2, padding="same"),
        nn.Conv2d(8, 16, 3, stride=2, padding="valid", rng=rng),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 2 * 16, 10, rng=rng),
    )


def test_build_print_and_round_trip_a_state_dict() -> None:
    model = build(seed=1)
    assert str(model) == (
        "Sequential(\n"
        "  (0): Conv2d(1, 8, kernel_size=3)\n"
        "  (1): ReLU()\n"
        "  (2): MaxPool2d(kernel_size=2, padding='same')\n"
        "  (3): Conv2d(8, 16, kernel_size=3, stride=2, padding='valid')\n"
        "  (4): ReLU()\n"
        "  (5): Flatten()\n"
        "  (6): Linear(96, 10)\n"
        ")"
    )
    x = np.random.default_rng(0).standard_normal((3, 15, 11, 1)).astype(np.float32)
    y = model(x)
    assert y.shape == (3, 10) and y.dtype == np.float32

    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias"]
    other = build(seed=2)
    assert not np.array_equal(other(x), y)
    assert other.load_state_dict(state) == ([], [])
    np.testing.assert_array_equal(other(x), y)
