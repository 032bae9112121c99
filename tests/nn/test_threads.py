"""The worker pool and BLAS thread control used by the fused kernels."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from audioembed.errors import InvalidOptionError
from audioembed.nn.threads import THREADS_ENV, WorkerPool, available_cpus, blas_threads, default_workers


def _blas_thread_counts() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.parametrize("num_workers", [1, 2, 4])
def test_every_item_runs_once_on_valid_workers(num_workers: int) -> None:
    pool = WorkerPool(num_workers)
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def work(worker: int, item: int) -> None:
        with lock:
            seen.append((worker, item))

    pool.run(work, list(range(50)))
    pool.close()
    assert sorted(item for _, item in seen) == list(range(50))
    assert {worker for worker, _ in seen} <= set(range(num_workers))


def test_two_workers_really_run_concurrently() -> None:
    pool = WorkerPool(2)
    barrier = threading.Barrier(2, timeout=10)  # only passes if both items run at the same time

    pool.run(lambda worker, item: barrier.wait(), [0, 1])
    pool.close()


def test_an_error_in_a_worker_is_reraised_and_stops_the_queue() -> None:
    pool = WorkerPool(2)
    done: list[int] = []

    def work(worker: int, item: int) -> None:
        if item == 3:
            raise RuntimeError(f"item {item} failed")
        done.append(item)

    with pytest.raises(RuntimeError, match="item 3 failed"):
        pool.run(work, list(range(1000)))
    assert len(done) < 999
    pool.run(work, [0, 1])  # the pool still works afterwards
    pool.close()
    pool.close()  # idempotent


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_worker_count(bad) -> None:
    with pytest.raises(InvalidOptionError, match=f"num_workers must be a positive int, got {bad!r}"):
        WorkerPool(bad)


def test_default_worker_count_is_available_cpus(monkeypatch) -> None:
    monkeypatch.delenv(THREADS_ENV, raising=False)
    pool = WorkerPool()
    assert pool.num_workers == available_cpus() >= 1
    pool.close()


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs Linux CPU affinity")
def test_default_worker_count_follows_the_affinity_mask() -> None:
    # A real child process pinned to one CPU (as taskset or a cpuset would): its plans get one worker.
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from audioembed.nn.threads import WorkerPool; print(WorkerPool().num_workers)"
    )
    env = {k: v for k, v in os.environ.items() if k != THREADS_ENV}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.strip() == "1"


def test_worker_count_env_override(monkeypatch) -> None:
    monkeypatch.setenv(THREADS_ENV, " 3 ")
    assert default_workers() == 3
    pool = WorkerPool()
    assert pool.num_workers == 3
    pool.close()
    assert WorkerPool(1).num_workers == 1  # an explicit count wins over the variable


@pytest.mark.parametrize("bad", ["0", "-2", "two", "1.5"])
def test_worker_count_env_bad_value(monkeypatch, bad) -> None:
    monkeypatch.setenv(THREADS_ENV, bad)
    with pytest.raises(
        InvalidOptionError, match=f"AUDIOEMBED_NUM_THREADS must be a positive integer, got {bad!r}"
    ):
        WorkerPool()


def test_blas_threads_limits_and_keeps_the_limit_even_when_nested() -> None:
    # Pinned, not restored: setting the process-global count back and forth from many threads made
    # OpenBLAS spin (audioembed.blas); the test puts the process default back itself.
    before = _blas_thread_counts()
    assert before, "NumPy's BLAS should be visible to threadpoolctl"
    with threadpool_limits(limits=2, user_api="blas"):
        with blas_threads(1):
            assert _blas_thread_counts() == [1] * len(before)
            with blas_threads(1):
                assert _blas_thread_counts() == [1] * len(before)
            assert _blas_thread_counts() == [1] * len(before)
        assert _blas_thread_counts() == [1] * len(before)
    assert _blas_thread_counts() == before


@pytest.mark.parametrize("bad", [0, -2, 1.0, None])
def test_blas_threads_rejects_bad_counts(bad) -> None:
    with (
        pytest.raises(InvalidOptionError, match=f"num_threads must be a positive int, got {bad!r}"),
        blas_threads(bad),
    ):
        pass
