"""The dynamic batcher with real compute functions on its real thread."""

from __future__ import annotations

import contextlib
import threading
import time

import numpy as np
import pytest
from audioembed_server.batcher import (
    BatcherClosedError,
    BatcherError,
    DynamicBatcher,
    QueueFullError,
    RequestCancelledError,
    RequestExpiredError,
)

from audioembed.errors import InvalidInputError

pytestmark = pytest.mark.timeout(30)


class Recorder:
    """compute(batch) -> (batch * 2, row sums, None), remembering every batch it saw; can be held shut."""

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, None]:
        self.entered.set()
        self.gate.wait()
        self.batches.append(batch.copy())
        return batch * 2, batch.reshape(len(batch), -1).sum(axis=1), None


def _rows(n: int, start: float) -> np.ndarray:
    return (start + np.arange(n * 3, dtype=np.float64)).reshape(n, 3)  # [n, 3]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def test_concurrent_requests_share_one_batch_and_get_their_own_rows(recorder):
    batcher = DynamicBatcher(recorder, max_batch=6, max_delay=5.0, max_queued=100)
    try:
        inputs = [_rows(2, 100.0 * i) for i in range(3)]
        futures = [batcher.submit(x) for x in inputs]
        outcomes = [f.result(timeout=5) for f in futures]  # the third fills the batch: no 5 s wait
    finally:
        batcher.close()
    assert [len(b) for b in recorder.batches] == [6]
    for x, outcome in zip(inputs, outcomes, strict=True):
        doubled, sums, nothing = outcome.outputs
        np.testing.assert_array_equal(doubled, x * 2)
        np.testing.assert_array_equal(sums, x.sum(axis=1))
        assert nothing is None
        assert outcome.batches == 1


def test_large_request_is_split_over_batches_and_reassembled_in_order(recorder):
    batcher = DynamicBatcher(recorder, max_batch=4, max_delay=0.0, max_queued=100)
    try:
        x = _rows(10, 0.0)
        outcome = batcher.submit(x).result(timeout=5)
    finally:
        batcher.close()
    assert [len(b) for b in recorder.batches] == [4, 4, 2]
    np.testing.assert_array_equal(outcome.outputs[0], x * 2)
    assert outcome.batches == 3


def test_lone_request_waits_at_most_the_delay(recorder):
    delay = 0.2
    batcher = DynamicBatcher(recorder, max_batch=64, max_delay=delay, max_queued=100)
    try:
        started = time.monotonic()
        outcome = batcher.submit(_rows(1, 0.0)).result(timeout=5)
        elapsed = time.monotonic() - started
    finally:
        batcher.close()
    assert outcome.queue_seconds == pytest.approx(delay, abs=0.15)
    # Bounded by the delay plus compute (microseconds here) plus scheduling noise on a shared machine.
    assert delay * 0.9 <= elapsed < delay + 1.0


def _hold_a_batch(batcher: DynamicBatcher, recorder: Recorder):
    """Run a one-row batch and keep the model busy in it (the gate shut); its future."""
    recorder.gate.clear()
    recorder.entered.clear()
    future = batcher.submit(_rows(1, -1.0))
    assert recorder.entered.wait(5)
    return future


def _overdue_row_behind_a_busy_model(batcher: DynamicBatcher, recorder: Recorder, delay: float):
    """A one-row batch holding the model, and a row queued behind it until overdue: their futures."""
    first = _hold_a_batch(batcher, recorder)
    late = batcher.submit(_rows(1, 10.0))
    time.sleep(delay * 1.2)  # overdue by the delay alone
    return first, late


def test_rows_queued_behind_a_busy_model_wait_for_announced_requests(recorder):
    # Closed-loop clients: B queued while the model was busy, C is being decoded when it frees. Without
    # waiting for C, B would run alone and the two would keep alternating in small batches.
    delay = 0.5
    batcher = DynamicBatcher(recorder, max_batch=64, max_delay=delay, max_queued=100)
    try:
        first, late = _overdue_row_behind_a_busy_model(batcher, recorder, delay)  # late: B
        recorder.gate.set()
        first.result(timeout=5)
        with batcher.expecting() as announcement:  # C, announced once the model is free
            time.sleep(0.1)  # C's decoding, well inside the delay
            announced = batcher.submit(_rows(2, 20.0), announcement=announcement)
            time.sleep(0.1)  # the handler goes on after queueing: the batch must not wait for that
        outcomes = [late.result(timeout=5), announced.result(timeout=5)]
    finally:
        batcher.close()
    assert [len(b) for b in recorder.batches] == [1, 3]  # B and C shared the second batch
    assert outcomes[0].queue_seconds > delay  # B waited through the busy model and for C


@pytest.mark.parametrize("long_decode", [False, True], ids=["no-announcement", "announced-while-busy"])
def test_a_free_model_takes_overdue_rows_after_a_short_grace(recorder, long_decode):
    # Nothing announced, or only a long decode announced while the model was busy: overdue rows must not
    # wait another delay for it.
    delay = 0.5
    batcher = DynamicBatcher(recorder, max_batch=64, max_delay=delay, max_queued=100)
    try:
        first, late = _overdue_row_behind_a_busy_model(batcher, recorder, delay)
        with batcher.expecting() if long_decode else contextlib.nullcontext():
            recorder.gate.set()
            freed = time.monotonic()
            first.result(timeout=5)
            late.result(timeout=5)
            waited_after_free = time.monotonic() - freed
    finally:
        batcher.close()
    assert [len(b) for b in recorder.batches] == [1, 1]
    assert waited_after_free < delay * 0.6  # RETURN_GRACE (5 ms) plus scheduling, not another delay


def test_submitting_ends_the_announcement_at_once(recorder):
    delay = 0.5
    batcher = DynamicBatcher(recorder, max_batch=64, max_delay=delay, max_queued=100)
    try:
        with batcher.expecting() as announcement:
            started = time.monotonic()
            future = batcher.submit(_rows(1, 0.0), announcement=announcement)
            future.result(timeout=5)  # a lone request: the delay, not held by its own announcement
            elapsed = time.monotonic() - started
            assert not announcement.open
    finally:
        batcher.close()
    assert elapsed < delay + 0.4


def test_an_announcement_that_fails_stops_holding_the_batch(recorder):
    delay = 0.5
    batcher = DynamicBatcher(recorder, max_batch=64, max_delay=delay, max_queued=100)
    try:
        first, late = _overdue_row_behind_a_busy_model(batcher, recorder, delay)
        recorder.gate.set()
        first.result(timeout=5)
        with pytest.raises(ValueError, match="undecodable"), batcher.expecting():
            raise ValueError("undecodable audio")  # the announced request never submits
        failed = time.monotonic()
        late.result(timeout=5)
        waited_after_failure = time.monotonic() - failed
    finally:
        batcher.close()
    assert waited_after_failure < delay * 0.6


def test_full_queue_refuses_with_a_retry_hint_and_recovers(recorder):
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, max_batch=2, max_delay=0.0, max_queued=4)
    try:
        first = batcher.submit(_rows(2, 0.0))
        assert recorder.entered.wait(5)  # the model thread holds the first batch; the queue is empty
        queued = [batcher.submit(_rows(2, 10.0)), batcher.submit(_rows(2, 20.0))]
        assert batcher.queued_rows == 4
        with pytest.raises(QueueFullError, match="queue full: 4 examples queued, limit 4") as info:
            batcher.submit(_rows(1, 30.0))
        assert info.value.retry_after_ms >= 10
        with pytest.raises(QueueFullError, match="request has 5 examples, more than the queue holds") as info:
            batcher.submit(_rows(5, 30.0))
        assert info.value.retry_after_ms is None
        recorder.gate.set()
        for future in [first, *queued]:
            future.result(timeout=5)
        assert batcher.submit(_rows(1, 40.0)).result(timeout=5).outputs[0].shape == (1, 3)
    finally:
        recorder.gate.set()
        batcher.close()


def test_expired_and_cancelled_requests_are_dropped_before_compute(recorder):
    recorder.gate.clear()
    batcher = DynamicBatcher(recorder, max_batch=8, max_delay=0.0, max_queued=100)
    try:
        blocker = batcher.submit(_rows(1, 0.0))
        assert recorder.entered.wait(5)
        expired = batcher.submit(_rows(1, 1000.0), deadline=time.monotonic() + 0.05)
        gone = threading.Event()
        cancelled = batcher.submit(_rows(1, 2000.0), is_active=lambda: not gone.is_set())
        by_future = batcher.submit(_rows(1, 3000.0))
        kept = batcher.submit(_rows(1, 4000.0))
        gone.set()
        assert by_future.cancel()
        time.sleep(0.1)  # let the deadline pass
        recorder.gate.set()
        blocker.result(timeout=5)
        kept.result(timeout=5)
        with pytest.raises(RequestExpiredError, match="deadline expired"):
            expired.result(timeout=5)
        with pytest.raises(RequestCancelledError, match="cancelled while queued"):
            cancelled.result(timeout=5)
    finally:
        recorder.gate.set()
        batcher.close()
    computed = np.concatenate(recorder.batches)[:, 0]
    assert sorted(computed) == [0.0, 4000.0]  # none of the abandoned rows reached the model
    assert batcher.queued_rows == 0


def test_compute_failure_fails_every_request_of_the_batch():
    def broken(batch: np.ndarray) -> tuple[np.ndarray]:
        raise RuntimeError(f"model exploded on {len(batch)} rows")

    batcher = DynamicBatcher(broken, max_batch=4, max_delay=0.5, max_queued=100)
    try:
        futures = [batcher.submit(_rows(2, 0.0)), batcher.submit(_rows(2, 1.0))]
        for future in futures:
            with pytest.raises(RuntimeError, match="model exploded on 4 rows"):
                future.result(timeout=5)
    finally:
        batcher.close()


def test_close_finishes_queued_work_then_refuses_new_work(recorder):
    batcher = DynamicBatcher(recorder, max_batch=64, max_delay=10.0, max_queued=100)
    future = batcher.submit(_rows(3, 0.0))
    batcher.close(timeout=5)  # does not wait out the 10 s delay: closing flushes the queue
    assert future.result(timeout=0).outputs[0].shape == (3, 3)
    with pytest.raises(BatcherClosedError, match="shutting down"):
        batcher.submit(_rows(1, 0.0))


def test_bad_arguments_are_rejected(recorder):
    with pytest.raises(ValueError, match="max_batch and max_queued must be >= 1, got 0"):
        DynamicBatcher(recorder, max_batch=0, max_delay=0.0, max_queued=1)
    with pytest.raises(ValueError, match="max_delay must be >= 0 seconds, got -1"):
        DynamicBatcher(recorder, max_batch=1, max_delay=-1, max_queued=1)
    batcher = DynamicBatcher(recorder, max_batch=1, max_delay=0.0, max_queued=1)
    try:
        with pytest.raises(ValueError, match=r"at least one row, got an array of shape \(0, 3\)"):
            batcher.submit(np.zeros((0, 3)))
    finally:
        batcher.close()


class _MetricsError(Exception):
    pass


def test_a_failure_outside_compute_fails_only_its_batch_and_the_thread_survives(recorder):
    calls = []

    def on_batch(size: int, seconds: float) -> None:
        calls.append(size)
        if len(calls) == 1:
            raise _MetricsError(f"metrics broke on a batch of {size}")

    batcher = DynamicBatcher(recorder, max_batch=4, max_delay=0.0, max_queued=100, on_batch=on_batch)
    try:
        with pytest.raises(_MetricsError, match="metrics broke on a batch of 2"):
            batcher.submit(_rows(2, 0.0)).result(timeout=5)
        outcome = batcher.submit(_rows(3, 10.0)).result(timeout=5)  # the model thread is still alive
        np.testing.assert_array_equal(outcome.outputs[0], _rows(3, 10.0) * 2)
    finally:
        batcher.close(timeout=5)
    assert calls == [2, 3]


def test_compute_output_of_the_wrong_length_fails_its_batch_and_the_thread_survives():
    def short_by_one(batch: np.ndarray) -> tuple[np.ndarray]:
        return (batch[: len(batch) - 1] if batch[0, 0] < 0 else batch,)

    batcher = DynamicBatcher(short_by_one, max_batch=4, max_delay=0.0, max_queued=100)
    try:
        with pytest.raises(BatcherError, match="compute output 0 has 1 rows for a batch of 2"):
            batcher.submit(_rows(2, -100.0)).result(timeout=5)
        outcome = batcher.submit(_rows(2, 5.0)).result(timeout=5)
        np.testing.assert_array_equal(outcome.outputs[0], _rows(2, 5.0))
    finally:
        batcher.close(timeout=5)


def test_bad_input_in_a_shared_batch_fails_only_its_own_request():
    seen: list[int] = []

    def refuse_nan(batch: np.ndarray) -> tuple[np.ndarray]:
        seen.append(len(batch))
        if np.isnan(batch).any():
            raise InvalidInputError(f"non-finite values in {int(np.isnan(batch).any(axis=1).sum())} rows")
        return (batch * 2,)

    batcher = DynamicBatcher(refuse_nan, max_batch=6, max_delay=5.0, max_queued=100)
    try:
        poisoned = _rows(2, 100.0)
        poisoned[1, 1] = np.nan
        inputs = [_rows(2, 0.0), poisoned, _rows(2, 200.0)]
        futures = [batcher.submit(x) for x in inputs]  # the third fills the batch of 6
        good_first = futures[0].result(timeout=5)
        with pytest.raises(InvalidInputError, match="non-finite values in 1 rows"):
            futures[1].result(timeout=5)
        good_last = futures[2].result(timeout=5)
    finally:
        batcher.close(timeout=5)
    assert seen == [6, 2, 2, 2]  # the shared batch, then each request alone
    np.testing.assert_array_equal(good_first.outputs[0], inputs[0] * 2)
    np.testing.assert_array_equal(good_last.outputs[0], inputs[2] * 2)


def test_a_bug_in_compute_still_fails_the_whole_batch_without_retries():
    seen: list[int] = []

    def buggy(batch: np.ndarray) -> tuple[np.ndarray]:
        seen.append(len(batch))
        raise TypeError(f"bug on {len(batch)} rows")

    batcher = DynamicBatcher(buggy, max_batch=4, max_delay=5.0, max_queued=100)
    try:
        futures = [batcher.submit(_rows(2, 0.0)), batcher.submit(_rows(2, 1.0))]
        for future in futures:
            with pytest.raises(TypeError, match="bug on 4 rows"):
                future.result(timeout=5)
    finally:
        batcher.close(timeout=5)
    assert seen == [4]
