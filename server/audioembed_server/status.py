"""Errors -> gRPC status codes, in one place, plus the per-RPC log line and metrics.

:func:`status_for` is the single mapping (used for whole calls and for items of a batch);
:func:`rpc` wraps every servicer method with it, so handlers just raise.
"""

from __future__ import annotations

import functools
import inspect
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from audioembed.errors import ClassifierError, InvalidInputError, WeightsError
from audioembed_server.batcher import (
    BatcherClosedError,
    QueueFullError,
    RequestCancelledError,
    RequestExpiredError,
)
from audioembed_server.logs import log_event
from audioembed_server.streams import StreamIdleError, TooManyStreamsError

RETRY_AFTER_KEY = "retry-after-ms"  # trailing metadata on RESOURCE_EXHAUSTED: when a retry may succeed


class ModelNotReadyError(Exception):
    """The model is still loading (or failed to load): the service is not ready."""


class DeadlineTooShortError(Exception):
    """The caller's deadline leaves no time to do the work; refused before queuing it."""


class PayloadTooLargeError(Exception):
    """A request's audio is larger than the server accepts: a stream past ``max_stream_mb``, or a clip that
    would make more examples than the queue holds (refused before it is decoded)."""


@dataclass(frozen=True)
class Mapped:
    """A gRPC status for an exception: code, message, trailing metadata, and the id of an INTERNAL error."""

    code: grpc.StatusCode
    message: str
    trailing: tuple[tuple[str, str], ...] = ()
    error_id: str | None = None


def status_for(error: BaseException) -> Mapped:
    """Map an exception to the caller's status; unexpected ones are logged with a traceback and an id."""
    if isinstance(error, InvalidInputError):
        return Mapped(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    if isinstance(error, QueueFullError):
        trailing = () if error.retry_after_ms is None else ((RETRY_AFTER_KEY, str(error.retry_after_ms)),)
        return Mapped(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error), trailing)
    if isinstance(error, PayloadTooLargeError | TooManyStreamsError):
        return Mapped(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
    if isinstance(error, ModelNotReadyError | BatcherClosedError):
        return Mapped(grpc.StatusCode.UNAVAILABLE, str(error))
    if isinstance(error, RequestExpiredError | DeadlineTooShortError | StreamIdleError):
        return Mapped(grpc.StatusCode.DEADLINE_EXCEEDED, str(error))
    if isinstance(error, RequestCancelledError):
        return Mapped(grpc.StatusCode.CANCELLED, str(error))
    if isinstance(error, WeightsError | ClassifierError):  # a model or classifier that does not fit
        return Mapped(grpc.StatusCode.FAILED_PRECONDITION, str(error))
    if isinstance(error, grpc.RpcError):
        # Raised by a request stream that gRPC already terminated (client cancelled, or a message over the
        # size limit): the call's status is set by gRPC itself; this only names it in the log.
        return Mapped(grpc.StatusCode.CANCELLED, "the request stream was terminated by gRPC")
    error_id = uuid.uuid4().hex[:12]
    log_event(
        "internal_error",
        level=logging.ERROR,
        exc_info=(type(error), error, error.__traceback__),  # type: ignore[arg-type]
        error_id=error_id,
        error=repr(error),
    )
    return Mapped(
        grpc.StatusCode.INTERNAL, f"internal error {error_id}: the server log has the details", (), error_id
    )


@dataclass
class CallStats:
    """What a handler reports about its call, for the log line and the metrics."""

    audio_seconds: float = 0.0
    examples: int = 0
    queue_seconds: float | None = None
    compute_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def add_outcome(self, queue_seconds: float, compute_seconds: float) -> None:
        self.queue_seconds = (
            queue_seconds if self.queue_seconds is None else max(self.queue_seconds, queue_seconds)
        )
        self.compute_seconds += compute_seconds


def _finish(servicer: Any, method: str, context: grpc.ServicerContext, stats: CallStats, started: float,
            mapped: Mapped | None) -> None:  # fmt: skip
    servicer.track(-1)
    code = grpc.StatusCode.OK if mapped is None else mapped.code
    if code == grpc.StatusCode.OK and not context.is_active():
        code = grpc.StatusCode.CANCELLED  # finished, but nobody was there to receive it
    elapsed = time.perf_counter() - started
    metrics = servicer.metrics
    metrics.requests.inc(1, method, code.name)
    metrics.request_seconds.observe(elapsed)
    if code == grpc.StatusCode.OK:
        metrics.examples.inc(stats.examples)
        metrics.audio_seconds.inc(stats.audio_seconds)
    if stats.queue_seconds is not None:
        metrics.queue_seconds.observe(stats.queue_seconds)
    fields: dict[str, Any] = {
        "method": method,
        "code": code.name,
        "ms": round(1000 * elapsed, 2),
        "audio_seconds": round(stats.audio_seconds, 3),
        "examples": stats.examples,
        "queue_ms": round(1000 * (stats.queue_seconds or 0.0), 2),
        "compute_ms": round(1000 * stats.compute_seconds, 2),
        "peer": context.peer(),
        **stats.extra,
    }
    if mapped is not None:
        fields["error"] = mapped.message
    log_event("request", **fields)


def _abort(context: grpc.ServicerContext, mapped: Mapped) -> None:
    if mapped.trailing:
        context.set_trailing_metadata(mapped.trailing)
    context.abort(mapped.code, mapped.message)


def rpc(method: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a servicer method ``f(self, request, context, stats)``: map errors, log, count.

    Works for unary handlers and for generator (server-streaming) handlers alike.
    """

    def decorate(handler: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def stream_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
                started, stats, mapped = time.perf_counter(), CallStats(), None
                self.track(+1)
                try:
                    yield from handler(self, request, context, stats)
                except Exception as error:
                    mapped = status_for(error)
                finally:
                    _finish(self, method, context, stats, started, mapped)
                if mapped is not None:
                    _abort(context, mapped)

            return stream_wrapper

        @functools.wraps(handler)
        def unary_wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            started, stats, mapped = time.perf_counter(), CallStats(), None
            self.track(+1)
            try:
                return handler(self, request, context, stats)
            except Exception as error:
                mapped = status_for(error)
            finally:
                _finish(self, method, context, stats, started, mapped)
            _abort(context, mapped)  # raises: the handler's return above is the only way out otherwise
            return None

        return unary_wrapper

    return decorate
