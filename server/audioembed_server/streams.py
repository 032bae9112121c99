"""Reading a client's request stream with an idle timeout, so a stalled stream cannot hold a thread forever.

gRPC's request iterator blocks in ``next()`` until the client sends or ends, and nothing on the server
side can interrupt that wait. :class:`IdleTimeoutReader` moves the blocking reads to a helper thread that
feeds a small queue; the handler waits on the queue with a timeout, so it can give up on a silent client,
end the RPC, and give its handler thread back to the pool. Ending the RPC also wakes the helper thread
(gRPC ends the request iterator of a finished call), so it does not linger either.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

READ_AHEAD_MESSAGES = (
    4  # messages read before the handler asks: enough to overlap, small enough to bound memory
)
_PUT_POLL_SECONDS = 0.1  # how often a reader blocked on a full queue checks whether the handler is gone

_MESSAGE, _END, _ERROR = "message", "end", "error"


class StreamIdleError(Exception):
    """The client sent nothing for longer than the server's ``stream_idle_seconds``."""


class TooManyStreamsError(Exception):
    """``max_concurrent_streams`` EmbedStream calls are open already; this one is refused."""


class StreamSlots:
    """A non-blocking cap on open streams: :meth:`hold` one slot, or be refused at once.

    Parameters
    ----------
    limit : int
        Streams that may be open together (``max_concurrent_streams``).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit!r}")
        self.limit = limit
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        """Streams holding a slot right now."""
        with self._lock:
            return self._open

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold a slot for the duration of the ``with`` block.

        Raises
        ------
        TooManyStreamsError
            All ``limit`` slots are taken; refusing beats queuing a caller behind silent streams.
        """
        with self._lock:
            if self._open >= self.limit:
                raise TooManyStreamsError(
                    f"too many open streams: {self._open} of max_concurrent_streams={self.limit}; "
                    "retry later, or use Embed / EmbedBatch"
                )
            self._open += 1
        try:
            yield
        finally:
            with self._lock:
                self._open -= 1


class IdleTimeoutReader:
    """Iterate ``source`` (a gRPC request iterator), raising :class:`StreamIdleError` after a silence.

    Parameters
    ----------
    source : iterator
        The request stream; read only by this reader's helper thread from now on.
    idle_seconds : float
        Longest wait for the next message (or the end of the stream).

    Raises
    ------
    StreamIdleError
        From ``next()``, when no message arrived within ``idle_seconds``.
    """

    def __init__(self, source: Iterator[Any], *, idle_seconds: float) -> None:
        if not idle_seconds > 0:
            raise ValueError(f"idle_seconds must be > 0, got {idle_seconds!r}")
        self.idle_seconds = idle_seconds
        self._source = source
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=READ_AHEAD_MESSAGES)
        self._closed = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._pump, name="audioembed-stream-reader", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            for message in self._source:
                if not self._put((_MESSAGE, message)):
                    return
            self._put((_END, None))
        except Exception as error:  # e.g. grpc.RpcError when the client cancels: the handler re-raises it
            self._put((_ERROR, error))

    def _put(self, item: tuple[str, Any]) -> bool:
        """Hand ``item`` to the handler; False when the handler has stopped reading (close was called)."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_PUT_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> IdleTimeoutReader:
        return self

    def __next__(self) -> Any:
        if self._finished:
            raise StopIteration
        try:
            kind, value = self._queue.get(timeout=self.idle_seconds)
        except queue.Empty:
            self._finished = True
            raise StreamIdleError(
                f"no stream message for {self.idle_seconds:g} s (stream_idle_seconds): the stream was "
                "closed; send chunks more often or end the stream"
            ) from None
        if kind == _END:
            self._finished = True
            raise StopIteration
        if kind == _ERROR:
            self._finished = True
            raise value
        return value

    def close(self) -> None:
        """Stop reading: the helper thread exits at its next message (or when gRPC ends the stream)."""
        self._finished = True
        self._closed.set()

    @property
    def reader_alive(self) -> bool:
        """Whether the helper thread is still running (it ends with the stream)."""
        return self._thread.is_alive()
