"""The BLAS thread count: every stage of the library runs its BLAS calls on one thread, pinned, not toggled.

A shared bottom module (the front-end, the model engine and the postprocessor all use it, and none of them
may import the others). Why one thread: the library's matrix products are small (a mel projection
``[F, 257] @ [257, 64]``, a resampler tile, a PCA ``[N, 128] @ [128, 128]``) or already split over the
engine's own workers, so OpenBLAS's extra threads only spin and steal the cores the library's threads need;
measured on 2 cores, two Python workers at one BLAS thread each beat one worker at two (``docs/kernels.md``).

Why pinned for good rather than set and restored around each block: the count is process-global, and
setting it back and forth from many threads is itself what made OpenBLAS spin. A single-process server
under 16 clients whose stages each limited and then restored the count ran at 2-4 examples/s with 11-18x
the CPU per example in 3 of 3 starts, against 41-72 examples/s in 3 of 3 starts with the count fixed at 1
(``benchmarks/bench_blas_threads.py``; benchmarks/README.md, "BLAS threads").
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from audioembed.errors import InvalidOptionError

_lock = threading.Lock()
_state: dict[str, Any] = {"controllers": None}


def _controllers() -> list[Any]:
    # Scanning the loaded libraries is slow (milliseconds): do it once, after NumPy has loaded its BLAS.
    if _state["controllers"] is None:
        import numpy  # noqa: F401  (its BLAS must be loaded for threadpoolctl to find it)
        from threadpoolctl import ThreadpoolController

        _state["controllers"] = ThreadpoolController().select(user_api="blas").lib_controllers
    return _state["controllers"]


def pin_blas_threads(num_threads: int = 1) -> None:
    """Set every loaded BLAS library to ``num_threads`` threads, for the rest of the process.

    A library already at that count is not touched (no call into it at all), so calling this on every
    stage costs one read per library. Raise the count again with ``threadpoolctl.threadpool_limits`` if
    code of your own wants more threads for its own products.

    Parameters
    ----------
    num_threads : int
        Threads each BLAS call may use (≥ 1).
    """
    if not isinstance(num_threads, int) or isinstance(num_threads, bool) or num_threads < 1:
        raise InvalidOptionError(f"num_threads must be a positive int, got {num_threads!r}")
    controllers = _controllers()
    with _lock:
        for c in controllers:
            if c.num_threads != num_threads:
                c.set_num_threads(num_threads)


@contextmanager
def blas_threads(num_threads: int) -> Iterator[None]:
    """Run the block with the BLAS libraries at ``num_threads`` threads (:func:`pin_blas_threads` first).

    The count is *not* restored afterwards: see the module docstring for why toggling it is harmful.

    Parameters
    ----------
    num_threads : int
        Threads each BLAS call may use (≥ 1).
    """
    pin_blas_threads(num_threads)
    yield


def blas_architecture() -> str | None:
    """The kernels the loaded BLAS runs (OpenBLAS's core type, e.g. ``SkylakeX`` or ``Haswell``), or None
    when the BLAS does not say. OpenBLAS picks them for the CPU when it loads, unless the environment variable
    ``OPENBLAS_CORETYPE`` names others (benchmarks/README.md, "OpenBLAS kernels")."""
    names = {getattr(c, "architecture", None) for c in _controllers()} - {None}
    return ", ".join(sorted(names)) or None
