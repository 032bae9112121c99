"""Fixtures shared across the suite: synthetic weights on disk, and an Embedder on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioembed import cli


@pytest.fixture(scope="session")
def synthetic_weights(tmp_path_factory) -> Path:
    """A full-size synthetic native weights file (with PCA params), made once per test session."""
    path = tmp_path_factory.mktemp("weights") / "synthetic.safetensors"
    assert cli.main(["weights", "synth", "--seed", "7", "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def embedder(synthetic_weights):
    """An Embedder on the synthetic weights, shared by tests that only read from it."""
    from audioembed import Embedder

    return Embedder(synthetic_weights, batch_size=8)
