"""Work units: model batches never span two units, so a unit's results depend on that unit alone."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.bulk.inputs import expand_inputs
from audioembed.bulk.outputs import NpzDirectoryWriter
from audioembed.bulk.runner import run_bulk, split_units
from audioembed.errors import InvalidOptionError
from tests.ray_engine.ray_corpus import make_corpus


def test_split_units_keeps_order_and_checks_the_size(tmp_path):
    files = list(range(5))
    assert split_units(files, 2) == [[0, 1], [2, 3], [4]]
    assert split_units([], 3) == []
    with pytest.raises(InvalidOptionError, match="unit_files must be a positive integer, got 0"):
        split_units(files, 0)


def test_each_unit_is_embedded_as_if_alone(tmp_path, embedder):
    files = expand_inputs([str(make_corpus(tmp_path / "in", broken=False))])
    run_bulk(files, NpzDirectoryWriter(tmp_path / "out", overwrite=False), embedder, quiet=True, unit_files=3)
    for unit in split_units(files, 3):
        alone = list(embedder.embed_many([file.path for file in unit]))  # the batches this unit makes alone
        for file, expected in zip(unit, alone, strict=True):
            stored = np.load(tmp_path / "out" / f"{file.relative_name}.npz")
            np.testing.assert_array_equal(stored["embedding"], expected.embeddings)  # bit for bit
            np.testing.assert_array_equal(stored["quantized"], expected.quantized)
