"""In-place write counts: what lets cached fused plans notice an optimizer step."""

from __future__ import annotations

import gc

import numpy as np

from audioembed.nn import inplace


def test_counts_start_at_zero_and_follow_marks() -> None:
    array = np.zeros(3)
    assert inplace.modification_count(array) == 0
    inplace.mark_modified(array)
    inplace.mark_modified(array)
    assert inplace.modification_count(array) == 2
    assert inplace.modification_count(np.zeros(3)) == 0  # per array, not global


def test_a_collected_arrays_count_is_forgotten() -> None:
    array = np.zeros(3)
    key = id(array)
    inplace.mark_modified(array)
    assert key in inplace._counts
    del array
    gc.collect()
    assert key not in inplace._counts  # an id reused by a new array starts from zero
