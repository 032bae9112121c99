"""Resident memory of arrays that are views of a read-only memory-mapped file.

The native weights file is memory-mapped and the model's parameters are views of the mapping: its pages
count in the process's RSS only once touched. A fused plan reads the conv kernels once, to transform them,
and afterwards only on rare paths; handing those pages back keeps the process's resident set to what it
uses. Nothing is lost: the next read faults them in again from the page cache (or the file).
"""

from __future__ import annotations

import mmap

import numpy as np

_PAGE = mmap.PAGESIZE


def _read_only_mapping(array: np.ndarray) -> tuple[mmap.mmap, np.ndarray] | None:
    """The ``mmap`` behind ``array`` and the ``np.memmap`` that wraps it, when mapped read-only."""
    memmap = None
    base: object = array
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap):
            memmap = base
        base = base.base
    # Only a read-only shared mapping (np.memmap mode "r"): dropping the pages of a copy-on-write mapping
    # ("c") would discard writes made through it.
    if isinstance(base, mmap.mmap) and memmap is not None and memmap.mode == "r" and not base.closed:
        return base, memmap
    return None


def release_pages(array: np.ndarray) -> int:
    """Drop the resident pages of ``array`` if it is a view of a read-only memory-mapped file.

    Parameters
    ----------
    array : np.ndarray
        Any array. Only whole pages inside its (contiguous) extent are released; other arrays, or views of
        writable or copy-on-write mappings, are left alone.

    Returns
    -------
    released : int
        Bytes of address range advised out of the resident set (0 when nothing applied).
    """
    found = _read_only_mapping(array)
    if found is None or array.size == 0 or not array.flags.c_contiguous:
        return 0
    mapping, _ = found
    start_address = np.frombuffer(mapping, dtype=np.uint8).ctypes.data  # the mapping's first byte
    lo = array.ctypes.data - start_address
    hi = lo + array.nbytes
    lo = -(-lo // _PAGE) * _PAGE  # inward to whole pages: neighbours' pages stay
    hi = hi // _PAGE * _PAGE
    advice = getattr(mmap, "MADV_DONTNEED", None)  # Linux and most Unixes; elsewhere: nothing to do
    if hi <= lo or lo < 0 or hi > len(mapping) or advice is None:
        return 0
    mapping.madvise(advice, lo, hi - lo)
    return hi - lo
