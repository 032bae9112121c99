"""CPU parallelism for the fused kernels: a small pool of Python workers (and BLAS thread control, from
:mod:`audioembed.blas`).

Measured on 2-core machines (``docs/kernels.md``): two Python threads each running single-threaded OpenBLAS
on their own chunks beat one thread with OpenBLAS at two threads (166-193 vs 144-148 examples/s for VGGish at
batch 64), because the memory-bound glue between GEMMs (gathers, pooling, scatters) then runs on both cores.
NumPy releases the GIL inside GEMMs, ufuncs and copies, so plain ``threading`` is enough.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from audioembed.blas import blas_threads as blas_threads  # the kernels' import; defined below nn and audio
from audioembed.errors import InvalidOptionError

T = TypeVar("T")

THREADS_ENV = "AUDIOEMBED_NUM_THREADS"  # overrides the worker count of the fused engine (a positive int)


def available_cpus() -> int:
    """Number of CPUs this process may run on (its affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Worker threads of a plan built without an explicit count.

    ``$AUDIOEMBED_NUM_THREADS`` when set (e.g. one per container CPU quota, which the affinity mask does
    not show), else :func:`available_cpus`: the CPUs this process may run on, so a process pinned by
    ``taskset`` / cgroup cpusets to a few cores of a big machine starts only that many workers.

    Raises
    ------
    InvalidOptionError
        The variable is set to anything but a positive integer.
    """
    value = os.environ.get(THREADS_ENV, "").strip()
    if not value:
        return available_cpus()
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise InvalidOptionError(f"${THREADS_ENV} must be a positive integer, got {value!r}")
    return count


class WorkerPool:
    """``num_workers`` threads (the caller plus helpers) that share lists of work items.

    Items are handed out dynamically from a shared counter, so a slower core simply takes fewer items. Each
    call of ``fn`` gets the worker's index, which the kernels use to pick that worker's scratch buffers.

    Parameters
    ----------
    num_workers : int or None
        Total workers including the calling thread; default: :func:`default_workers` (the CPUs available
        to this process, or ``$AUDIOEMBED_NUM_THREADS``).
    """

    def __init__(self, num_workers: int | None = None) -> None:
        if num_workers is None:
            num_workers = default_workers()
        if not isinstance(num_workers, int) or num_workers < 1:
            raise InvalidOptionError(f"num_workers must be a positive int, got {num_workers!r}")
        self.num_workers = num_workers
        self._executor: ThreadPoolExecutor | None = None
        if num_workers > 1:
            self._executor = ThreadPoolExecutor(num_workers - 1, thread_name_prefix="audioembed-worker")

    def run(self, fn: Callable[[int, T], None], items: Sequence[T]) -> None:
        """Call ``fn(worker_index, item)`` once for every item, spread over the workers; wait for all.

        An exception in any call stops the handing-out of further items and is re-raised here once every
        worker has stopped (so no worker still touches shared buffers after ``run`` returns).
        """
        counter = itertools.count()  # next() on it is atomic under the GIL
        failed = threading.Event()

        def work(worker: int) -> None:
            while not failed.is_set():
                index = next(counter)
                if index >= len(items):
                    return
                try:
                    fn(worker, items[index])
                except BaseException:
                    failed.set()
                    raise

        helpers = min(self.num_workers, len(items)) - 1
        futures = [self._executor.submit(work, w) for w in range(1, helpers + 1)] if helpers > 0 else []
        error: BaseException | None = None
        try:
            work(0)
        except BaseException as e:
            error = e
        for future in futures:
            e = future.exception()
            if error is None and e is not None:
                error = e
        if error is not None:
            raise error

    def close(self) -> None:
        """Stop the helper threads (idempotent)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def __repr__(self) -> str:
        return f"WorkerPool(num_workers={self.num_workers})"
