"""How much of a batch-64 forward the model spends holding the GIL (it bounds scaling to many cores).

The fused engine's workers are Python threads; they run in parallel only while NumPy has released the GIL
(inside GEMMs, large ufuncs and copies). Whatever runs with the GIL held (the Python code between the calls,
and the short C calls that do not release it) is serial: with a fraction ``f`` of the wall time under the
GIL, no number of cores makes a forward faster than ``f`` × the current wall time.

Method (timing the Python-level work between C calls). A profile function is installed in every thread
(``threading.setprofile`` before the model builds its worker threads, ``sys.setprofile`` in this one). For
each thread it records the intervals between a C call's return (the thread has just re-acquired the GIL) and
the next C call (where NumPy may release it); those intervals are GIL-held by that thread. A C call counts as
GIL-free when it lasts at least ``--tau`` µs (NumPy releases the GIL for every array call of that size;
waiting on a lock, as idle workers do, also releases it) and as GIL-held otherwise, so short C calls are
counted against us: the estimate is an upper bound. GIL-held intervals of different threads never overlap,
so their sum over threads divided by the wall time is the fraction. The profile function itself runs with
the GIL held; its cost per event is calibrated on a loop of builtin calls and subtracted (the raw figure is
printed too). Profiling slows the forward; the unprofiled wall time of the same batch is printed alongside.

The model loads as the product loads it: the seeded weights written as a native file, then memory-mapped.

    python benchmarks/bench_gil.py [--batch 64] [--runs 5] [--tau 50] [--workers N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time

import numpy as np
from common import log_mel_batch

clock = time.perf_counter


class _ThreadState(threading.local):
    # Class-level defaults: reading them needs no builtin call (which would itself raise profile events).
    window = -1  # measurement window the fields below belong to
    depth = 0  # nesting of C calls
    call = 0.0  # start of the outermost C call
    since = -1.0  # start of the current Python-level stretch (-1: unknown)
    busy = False  # inside enter/leave: ignore the profile events of their own builtin calls


class GilProfile:
    """Per-thread accounting of GIL-held time from C-call boundaries (profile events and NumPy wrappers)."""

    def __init__(self, tau: float) -> None:
        self.tau = tau
        self.active = False
        self.window = 0
        self.held = 0.0  # seconds, summed over threads (each thread adds its own under the GIL)
        self.events = 0
        self.state = _ThreadState()

    def _fresh(self, state: _ThreadState) -> None:
        if state.window != self.window:
            state.window, state.since = self.window, -1.0

    def enter(self) -> None:
        """A C call starts (NumPy may release the GIL from here)."""
        state = self.state
        if not self.active or state.busy:
            return
        state.busy = True
        now = clock()
        self._fresh(state)
        self.events += 1
        if state.depth == 0:
            if state.since >= 0:  # the Python-level stretch since the last C return
                self.held += now - state.since
            state.call = now
        state.depth += 1
        state.busy = False

    def leave(self) -> None:
        """A C call returned (the thread holds the GIL again)."""
        state = self.state
        if not self.active or state.busy:
            return
        state.busy = True
        now = clock()
        fresh = state.window != self.window
        self._fresh(state)
        self.events += 1
        if state.depth <= 1:
            if state.depth == 1 and not fresh and now - state.call < self.tau:
                self.held += now - state.call  # a short C call: counted as holding the GIL
            state.depth = 0
            state.since = clock()
        else:
            state.depth -= 1
        state.busy = False

    def __call__(self, frame: object, event: str, arg: object) -> None:
        if event == "c_call":
            self.enter()
        elif event in ("c_return", "c_exception"):
            self.leave()
        elif (
            self.active and not self.state.busy and self.state.depth == 0 and self.state.window != self.window
        ):
            self.state.window, self.state.since = self.window, clock()  # a thread's first event in the window

    def reset(self) -> None:
        """Start a new measurement window."""
        self.held, self.events = 0.0, 0
        self.window += 1


class NumpyProbe:
    """Stands in for the ``np`` global of the engine's modules: NumPy's functions and ufuncs, timed.

    Ufuncs (``np.matmul``, ``np.maximum``) and array-function dispatchers (``np.copyto``) are not
    ``builtin_function_or_method`` objects, so the profiler sees no ``c_call`` for them; this wrapper reports
    their boundaries instead. Types, modules and constants pass through unchanged.
    """

    def __init__(self, profile: GilProfile) -> None:
        self._profile = profile
        self._cache: dict[str, object] = {}

    def __getattr__(self, name: str) -> object:
        if name in self._cache:
            return self._cache[name]
        value = getattr(np, name)
        if callable(value) and not isinstance(value, type):
            profile = self._profile

            def timed_call(*args: object, __f=value, **kwargs: object) -> object:
                profile.enter()
                try:
                    return __f(*args, **kwargs)
                finally:
                    profile.leave()

            value = timed_call
        self._cache[name] = value
        return value


def instrument(profile: GilProfile) -> None:
    """Route the engine modules' NumPy calls through :class:`NumpyProbe`."""
    import audioembed.nn.fused as fused
    import audioembed.nn.fused_dense as fused_dense
    import audioembed.nn.fused_layers as fused_layers
    import audioembed.nn.winograd as winograd
    import audioembed.vggish.fast as fast
    import audioembed.vggish.model as model

    probe = NumpyProbe(profile)
    for module in (fused, fused_dense, fused_layers, winograd, fast, model):
        module.np = probe  # type: ignore[attr-defined]


def event_cost(profile: GilProfile, loops: int = 200_000) -> float:
    """Seconds the profile function adds per event (calibrated on ``len()`` calls: 2 events each)."""
    values = [1, 2, 3]

    def loop() -> float:
        start = clock()
        for _ in range(loops):
            len(values)
        return clock() - start

    bare = min(loop() for _ in range(3))
    sys.setprofile(profile)
    profile.active = True
    profiled = min(loop() for _ in range(3))
    profile.active = False
    sys.setprofile(None)
    profile.reset()
    return max(0.0, (profiled - bare) / (2 * loops))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tau", type=float, default=50.0, help="µs: shorter C calls count as GIL-held")
    parser.add_argument("--workers", type=int, default=None, help="sets AUDIOEMBED_NUM_THREADS")
    args = parser.parse_args()
    if args.workers is not None:
        os.environ["AUDIOEMBED_NUM_THREADS"] = str(args.workers)

    from bench_model import load_ours, write_weights_file

    from audioembed.nn.threads import available_cpus, default_workers

    profile = GilProfile(args.tau * 1e-6)
    cost = event_cost(profile)
    instrument(profile)
    threading.setprofile(profile)  # before the plans start their worker threads
    with tempfile.TemporaryDirectory() as directory:
        # Loaded as the product loads it (a memory-mapped native file: output-major dense kernels).
        model = load_ours(write_weights_file(directory))
    x = log_mel_batch(args.batch)
    model(x)  # builds the plans (and their threads) and the buffers
    plain = []
    for _ in range(args.runs):
        start = clock()
        model(x)
        plain.append(clock() - start)
    sys.setprofile(profile)
    fractions, raw, walls, held = [], [], [], []
    for _ in range(args.runs):
        profile.reset()
        profile.active = True
        start = clock()
        model(x)
        wall = clock() - start
        profile.active = False
        walls.append(wall)
        raw.append(profile.held / wall)
        held.append(max(0.0, profile.held - profile.events * cost))
        fractions.append(held[-1] / wall)
    sys.setprofile(None)
    threading.setprofile(None)  # type: ignore[arg-type]

    f = statistics.median(fractions)
    workers, cpus = default_workers(), available_cpus()
    print(f"batch {args.batch}, {workers} worker(s) ({cpus} CPUs available), tau {args.tau} µs")
    print(f"load average {os.getloadavg()[0]:.2f}; profile cost {cost * 1e6:.2f} µs/event")
    ms = [1e3 * statistics.median(v) for v in (plain, walls)]
    print(f"forward wall: {ms[0]:.1f} ms unprofiled, {ms[1]:.1f} ms profiled")
    for label, values in (("raw", raw), ("profile cost removed", fractions)):
        low, mid, high = (100 * v for v in (min(values), statistics.median(values), max(values)))
        print(f"GIL held, {label}: {mid:.1f} % (min {low:.1f}, max {high:.1f})")
    serial = statistics.median(held)
    print(f"GIL-held time per forward: {1e3 * serial:.1f} ms (a floor on any number of cores)")
    if f > 0:
        print(f"  no number of cores makes this forward more than {1 / f:.0f}× faster than here")


if __name__ == "__main__":
    main()
