"""The BLAS thread count, set per block of work: every stage of the library runs its BLAS calls on 1 thread.

A shared bottom module (the front-end, the model engine and the postprocessor all use it, and none of them
may import the others). Why one thread everywhere: the library's matrix products are small (a mel
projection ``[F, 257] @ [257, 64]``, a resampler tile, a PCA ``[N, 128] @ [128, 128]``) or already split
over the engine's own workers, so OpenBLAS's extra threads only spin and steal the cores the library's
threads need. With OpenBLAS's default (a thread per CPU) a server under 16 clients could sit at 1-2
examples/s burning 10-20x the CPU (benchmarks/README.md, "Scale-out"); measured on 2 cores, two Python
workers at one BLAS thread each beat one worker at two (``docs/kernels.md``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from audioembed.errors import InvalidOptionError

_lock = threading.Lock()
_state: dict[str, Any] = {"depth": 0, "saved": None, "controllers": None}


def _controllers() -> list[Any]:
    # Scanning the loaded libraries is slow (milliseconds): do it once, after NumPy has loaded its BLAS.
    if _state["controllers"] is None:
        import numpy  # noqa: F401  (its BLAS must be loaded for threadpoolctl to find it)
        from threadpoolctl import ThreadpoolController

        _state["controllers"] = ThreadpoolController().select(user_api="blas").lib_controllers
    return _state["controllers"]


@contextmanager
def blas_threads(num_threads: int) -> Iterator[None]:
    """Run the block with the BLAS libraries limited to ``num_threads`` threads, then restore them.

    The BLAS thread count is process-global; concurrent or nested users share one limit: the first to enter
    sets it, the last to leave restores the original counts. A library already at ``num_threads`` (e.g. a
    server that limited BLAS for good) is not touched at all.

    Parameters
    ----------
    num_threads : int
        Threads each BLAS call may use (≥ 1).
    """
    if not isinstance(num_threads, int) or num_threads < 1:
        raise InvalidOptionError(f"num_threads must be a positive int, got {num_threads!r}")
    controllers = _controllers()
    with _lock:
        if _state["depth"] == 0:
            _state["saved"] = [c.num_threads for c in controllers]
            for c, n in zip(controllers, _state["saved"], strict=True):
                if n != num_threads:
                    c.set_num_threads(num_threads)
        _state["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0:
                for c, n in zip(controllers, _state["saved"], strict=True):
                    if n != num_threads:
                        c.set_num_threads(n)
