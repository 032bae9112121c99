"""Large float32 matrix products split by output columns across the worker threads (BLAS single-threaded).

The training path's dense layers (VGGish's fc1_1 is a 12288×4096 matrix) are big GEMMs forward and
backward. As in the inference engine (:mod:`audioembed.nn.threads`), two Python workers each running
single-threaded BLAS on their own block of output columns beat one call with two BLAS threads, and they
stay fast on a loaded machine, where BLAS's own spinning threads lose most of their time.
"""

from __future__ import annotations

import itertools
import threading

import numpy as np

from audioembed.nn.threads import WorkerPool, available_cpus, blas_threads

MIN_FLOPS = 50e6  # smaller products: one plain call (thread hand-offs would cost more than they save)
MIN_BLOCK = 128  # narrowest column block
BLOCKS_PER_WORKER = 2

_pool_lock = threading.Lock()
_pools: list[WorkerPool] = []


def _pool() -> WorkerPool:
    with _pool_lock:
        if not _pools:
            _pools.append(WorkerPool(available_cpus()))
        return _pools[0]


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` for 2-D arrays (any strides, e.g. transposed views), columns of the result in parallel.

    Parameters
    ----------
    a : np.ndarray [shape=(m, k)]
    b : np.ndarray [shape=(k, n)]

    Returns
    -------
    c : np.ndarray [shape=(m, n)], a new C-contiguous array of the operands' result dtype
    """
    m, k = a.shape
    n = b.shape[1]
    pool = _pool()
    if 2.0 * m * k * n < MIN_FLOPS or pool.num_workers == 1 or a.dtype != np.float32:
        return a @ b
    out = np.empty((m, n), dtype=np.result_type(a, b))
    blocks = max(1, min(pool.num_workers * BLOCKS_PER_WORKER, n // MIN_BLOCK))
    edges = np.linspace(0, n, blocks + 1).astype(int)
    spans = list(itertools.pairwise(edges.tolist()))

    def work(worker: int, span: tuple[int, int]) -> None:
        lo, hi = span
        np.matmul(a, b[:, lo:hi], out=out[:, lo:hi])

    with blas_threads(1):
        pool.run(work, spans)
    return out
