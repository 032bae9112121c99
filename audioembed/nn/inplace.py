"""Counting in-place writes into parameter arrays, so that caches built from those arrays see them.

A fused engine (VGGish's Winograd plans) caches transformed copies of the weights and keys them by array
identity, which catches every *replaced* array (loads, casts) but not a write *into* an array. Whoever writes
in place (the optimizers, after every update) calls :func:`mark_modified`; a cache stores
:func:`modification_count` of each array it was built from and rebuilds when a count moved.

Counts are kept by ``id(array)`` and dropped when the array is garbage collected, so an id reused by a later
array starts from zero again (a cache also holds a weak reference, which tells it the array is gone).
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

_counts: dict[int, int] = {}
_lock = threading.Lock()


def mark_modified(array: np.ndarray) -> None:
    """Record that ``array``'s values were changed in place (call it after the write)."""
    key = id(array)
    with _lock:
        if key not in _counts:
            weakref.finalize(array, _forget, key)
            _counts[key] = 0
        _counts[key] += 1


def modification_count(array: np.ndarray) -> int:
    """How many in-place writes into ``array`` were recorded (0 for an array never marked)."""
    return _counts.get(id(array), 0)


def _forget(key: int) -> None:
    with _lock:
        _counts.pop(key, None)
