"""Dynamic batching: rows from concurrent requests gathered into one call of a model function.

One model thread owns ``compute``; request threads :meth:`DynamicBatcher.submit` their rows and wait on
a future. A batch is formed when ``max_batch`` rows are queued or the oldest queued row has waited
``max_delay`` seconds, whichever comes first, so a lone request pays at most the delay. Rows that waited
while the model was busy get a second ``max_delay`` from the moment it is free if requests announced since
then by :meth:`~DynamicBatcher.expecting` (being decoded) are on their way, and :data:`RETURN_GRACE` for such
announcements to come: otherwise closed-loop clients lock into alternating small and large batches (seen
at 16 clients: batches of 16 and 48 rows, the model 22 % slower per example than at 64). A request larger
than a batch is split over several batches; its outputs are reassembled in row order. The queue is
bounded in rows: :meth:`~DynamicBatcher.submit` raises :class:`QueueFullError` instead of growing.
Requests that were cancelled or whose deadline passed are dropped when a batch is formed, before any
compute is spent on them. A batch that fails (in ``compute``, in ``on_batch``, anywhere) fails only its own
requests; the thread keeps serving. When ``compute`` refuses a shared batch as bad input
(:class:`~audioembed.errors.InvalidInputError`), each request's rows are re-run alone, so only the
culprit fails.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from audioembed.errors import InvalidInputError

logger = logging.getLogger(__name__)

# Seconds a free model waits for the callers of the batch it just finished to announce their next requests
# (a loopback round trip through gRPC in Python takes 1-3 ms), when the queued rows are already due.
RETURN_GRACE = 0.005

# compute(batch [B, ...]) -> outputs, each an array with B leading rows or None (an output not produced).
Compute = Callable[[np.ndarray], Sequence[np.ndarray | None]]


class BatcherError(Exception):
    """Base class of the batcher's refusals; the gRPC layer maps each to a status code."""


class QueueFullError(BatcherError):
    """The queue holds too many rows to take this request now; ``retry_after_ms`` hints when to retry."""

    def __init__(self, message: str, *, retry_after_ms: int | None) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


class ComputeOutputError(BatcherError):
    """``compute`` returned outputs whose row count does not match its batch (a bug in ``compute``)."""


class BatcherClosedError(BatcherError):
    """The batcher is shutting down and takes no new work."""


class RequestExpiredError(BatcherError):
    """The request's deadline passed while it waited in the queue; it was dropped before compute."""


class RequestCancelledError(BatcherError):
    """The caller went away while the request waited in the queue; it was dropped before compute."""


@dataclass(frozen=True)
class BatchOutcome:
    """What a request gets back: its outputs in row order, and where its time went.

    Attributes
    ----------
    outputs : tuple of (np.ndarray or None)
        One entry per output of ``compute``, each with the request's rows (``[n, ...]``).
    queue_seconds : float
        From :meth:`DynamicBatcher.submit` until its first rows entered a batch.
    compute_seconds : float
        Total duration of the ``compute`` calls its rows were part of.
    batches : int
        How many batches its rows were spread over.
    """

    outputs: tuple[np.ndarray | None, ...]
    queue_seconds: float
    compute_seconds: float
    batches: int


class Announcement:
    """A request on its way to :meth:`DynamicBatcher.submit` (see :meth:`DynamicBatcher.expecting`)."""

    __slots__ = ("open",)

    def __init__(self) -> None:
        self.open = True


@dataclass(eq=False)
class _Request:
    rows: np.ndarray
    future: Future
    enqueued: float
    is_active: Callable[[], bool] | None
    deadline: float | None
    taken: int = 0  # rows already placed in batches
    done: int = 0  # rows whose outputs came back
    pieces: list[tuple[int, tuple[np.ndarray | None, ...]]] = field(default_factory=list)
    queue_seconds: float | None = None
    compute_seconds: float = 0.0
    batches: int = 0

    def abandoned(self, now: float) -> BatcherError | None:
        """Why this request should be dropped now, or None while someone still wants it."""
        if self.future.cancelled() or (self.is_active is not None and not self.is_active()):
            return RequestCancelledError("request cancelled while queued")
        if self.deadline is not None and now >= self.deadline:
            return RequestExpiredError(f"deadline expired after {now - self.enqueued:.3f} s in the queue")
        return None


class DynamicBatcher:
    """Gather rows from many requests into batches for one ``compute`` function, on one thread.

    Parameters
    ----------
    compute : callable
        ``compute(batch [B, ...]) -> outputs``: each output an array with ``B`` leading rows, or None.
        Called only from the batcher's thread.
    max_batch : int
        Rows per ``compute`` call at most.
    max_delay : float
        Seconds the oldest queued row may wait for the batch to fill.
    max_queued : int
        Rows the queue may hold (not yet in a batch); more raises :class:`QueueFullError`.
    on_batch : callable, optional
        ``on_batch(size, compute_seconds)`` after each ``compute`` call (metrics).
    """

    def __init__(
        self,
        compute: Compute,
        *,
        max_batch: int,
        max_delay: float,
        max_queued: int,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_queued < 1:
            raise ValueError(f"max_batch and max_queued must be >= 1, got {max_batch!r} and {max_queued!r}")
        if max_delay < 0:
            raise ValueError(f"max_delay must be >= 0 seconds, got {max_delay!r}")
        self._compute = compute
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.max_queued = max_queued
        self._on_batch = on_batch
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._incoming = 0  # open announcements (expecting())
        self._last_announced = float("-inf")  # when the latest announcement was made
        self._free_since = time.monotonic()  # when the model thread last finished a batch (_mark_free)
        self._closed = False
        self._cond = threading.Condition()
        self._last_compute_seconds = 0.0  # for the retry hint: how soon the queue is likely to move
        self._thread = threading.Thread(target=self._run, name="audioembed-batcher", daemon=True)
        self._thread.start()

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a batch right now."""
        with self._cond:
            return self._queued_rows

    def submit(
        self,
        rows: np.ndarray,
        *,
        deadline: float | None = None,
        is_active: Callable[[], bool] | None = None,
        announcement: Announcement | None = None,
    ) -> Future[BatchOutcome]:
        """Queue ``rows`` for the model; return a future of their :class:`BatchOutcome`.

        Parameters
        ----------
        rows : np.ndarray [shape=(n, ...)]
            At least one row; every request's trailing shape must match.
        deadline : float, optional
            ``time.monotonic()`` after which the request is dropped instead of computed.
        is_active : callable, optional
            Returns False once the caller has gone away (gRPC's ``context.is_active``).
        announcement : Announcement, optional
            From :meth:`expecting`: ended as the rows are queued (or refused).

        Raises
        ------
        QueueFullError
            Taking the rows would exceed ``max_queued``.
        BatcherClosedError
            :meth:`close` was called.
        """
        n = len(rows)
        if n == 0:
            raise ValueError(f"submit needs at least one row, got an array of shape {rows.shape}")
        future: Future[BatchOutcome] = Future()
        with self._cond:
            self._end(announcement)  # queued below, or refused: either way no longer on its way
            if self._closed:
                raise BatcherClosedError("the server is shutting down")
            if n > self.max_queued:
                raise QueueFullError(
                    f"request has {n} examples, more than the queue holds ({self.max_queued}); "
                    "split the audio or send it with EmbedStream",
                    retry_after_ms=None,
                )
            if self._queued_rows + n > self.max_queued:
                raise QueueFullError(
                    f"queue full: {self._queued_rows} examples queued, limit {self.max_queued}; retry later",
                    retry_after_ms=self._retry_hint_ms(),
                )
            self._queue.append(_Request(rows, future, time.monotonic(), is_active, deadline))
            self._queued_rows += n
            self._cond.notify_all()
        return future

    @contextmanager
    def expecting(self) -> Iterator[Announcement]:
        """Announce a request on its way to :meth:`submit` (e.g. while its audio is decoded).

        Pass the yielded :class:`Announcement` to :meth:`submit`: the rows are queued and the announcement
        ends in one step, so the model thread never sees the request as neither announced nor queued.
        Leaving the block without submitting (an error, no rows) ends it too. While an announcement made
        since the model was last free is open, rows that already waited through the busy model wait up to
        ``max_delay`` more from the moment it became free, so that they share a batch with that request.
        """
        announcement = Announcement()
        with self._cond:
            self._incoming += 1
            self._last_announced = time.monotonic()
        try:
            yield announcement
        finally:
            with self._cond:
                self._end(announcement)
                self._cond.notify_all()

    def _end(self, announcement: Announcement | None) -> None:
        """Close an announcement once (called with the lock held)."""
        if announcement is not None and announcement.open:
            announcement.open = False
            self._incoming -= 1

    def _retry_hint_ms(self) -> int:
        """Roughly how long until the queue has drained: batches ahead times the last batch's duration."""
        batches_ahead = max(1, -(-self._queued_rows // self.max_batch))
        return max(10, int(1000 * batches_ahead * max(self._last_compute_seconds, self.max_delay)))

    def close(self, *, timeout: float | None = None) -> None:
        """Take no new work, finish what is queued, and stop the thread (wait up to ``timeout`` s)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # --- the model thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            plan = self._next_batch()
            if plan is None:
                return
            if plan:
                self._execute(plan)

    def _next_batch(self) -> list[tuple[_Request, int, int]] | None:
        """Wait for a batch to be due, then take up to ``max_batch`` rows; None when closed and drained."""
        with self._cond:
            while True:
                self._drop_abandoned()
                if not self._queue:
                    if self._closed:
                        return None
                    self._cond.wait()
                    continue
                due = self._queue[0].enqueued + self.max_delay
                # Requests announced since the model became free are coming (typically the callers of
                # the batch just finished): count the delay from the free model. Right after a batch, give
                # them RETURN_GRACE to show up. Older announcements (a long decode) do not hold it back.
                coming = self._incoming and self._last_announced >= self._free_since
                wait = self.max_delay if coming else min(self.max_delay, RETURN_GRACE)
                due = max(due, self._free_since + wait)
                now = time.monotonic()
                if self._queued_rows >= self.max_batch or now >= due or self._closed:
                    break
                self._cond.wait(due - now)
            plan: list[tuple[_Request, int, int]] = []
            room = self.max_batch
            now = time.monotonic()
            while self._queue and room > 0:
                request = self._queue[0]
                take = min(room, len(request.rows) - request.taken)
                plan.append((request, request.taken, request.taken + take))
                if request.queue_seconds is None:
                    request.queue_seconds = now - request.enqueued
                request.taken += take
                room -= take
                self._queued_rows -= take
                if request.taken == len(request.rows):
                    self._queue.popleft()
            return plan

    def _drop_abandoned(self) -> None:
        """Fail and remove queued requests nobody waits for any more (called with the lock held)."""
        now = time.monotonic()
        kept: deque[_Request] = deque()
        for request in self._queue:
            reason = request.abandoned(now)
            if reason is None:
                kept.append(request)
                continue
            self._queued_rows -= len(request.rows) - request.taken
            _settle(request.future, error=reason)
        self._queue = kept

    def _execute(self, plan: list[tuple[_Request, int, int]]) -> None:
        """Run one batch; whatever goes wrong fails only this batch's requests, never the thread."""
        try:
            self._compute_and_settle(plan)
        except Exception as error:  # a failure anywhere in the batch: its requests get the error
            rows = sum(stop - start for _, start, stop in plan)
            if isinstance(error, InvalidInputError):  # the caller's fault: no traceback needed
                logger.warning("%d rows refused by the model: %s", rows, error)
            else:
                logger.exception("batch of %d rows failed", rows)
            self._fail(plan, error)

    def _compute_and_settle(self, plan: list[tuple[_Request, int, int]]) -> None:
        batch = np.concatenate([request.rows[start:stop] for request, start, stop in plan])  # [B, ...]
        started = time.perf_counter()
        try:
            outputs = tuple(self._compute(batch))
        except InvalidInputError:
            if len(plan) == 1:
                raise
            # Bad input (e.g. non-finite embeddings refused by the postprocessor) belongs to one request:
            # re-run each request's rows alone so only the culprit fails, not its batch neighbours.
            for entry in plan:
                self._execute([entry])
            return
        elapsed = time.perf_counter() - started
        for index, out in enumerate(outputs):
            if out is not None and len(out) != len(batch):
                raise ComputeOutputError(
                    f"compute output {index} has {len(out)} rows for a batch of {len(batch)} "
                    f"(shape {getattr(out, 'shape', None)})"
                )
        self._last_compute_seconds = elapsed
        self._mark_free()
        if self._on_batch is not None:
            self._on_batch(len(batch), elapsed)
        offset = 0
        for request, start, stop in plan:
            count = stop - start
            piece = tuple(None if out is None else out[offset : offset + count] for out in outputs)
            offset += count
            request.pieces.append((start, piece))
            request.done += count
            request.compute_seconds += elapsed
            request.batches += 1
            if request.done == len(request.rows):
                _settle(request.future, result=self._assemble(request))

    @staticmethod
    def _assemble(request: _Request) -> BatchOutcome:
        pieces = [piece for _, piece in sorted(request.pieces, key=lambda item: item[0])]
        outputs = tuple(
            None if pieces[0][i] is None else np.concatenate([piece[i] for piece in pieces])
            for i in range(len(pieces[0]))
        )
        return BatchOutcome(outputs, request.queue_seconds or 0.0, request.compute_seconds, request.batches)

    def _mark_free(self) -> None:
        """The model is done with its batch: from now, callers that get their results may come back.

        Set before any future is settled, so that a caller's next announcement is never older.
        """
        with self._cond:
            self._free_since = time.monotonic()

    def _fail(self, plan: list[tuple[_Request, int, int]], error: Exception) -> None:
        self._mark_free()
        with self._cond:
            for request, _, _ in plan:
                if request in self._queue:  # the rest of a split request is pointless now
                    self._queue.remove(request)
                    self._queued_rows -= len(request.rows) - request.taken
                _settle(request.future, error=error)


def _settle(
    future: Future, *, result: BatchOutcome | None = None, error: BaseException | None = None
) -> None:
    """Resolve ``future`` unless the caller cancelled it meanwhile (a race the model thread must survive)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass
