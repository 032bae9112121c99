"""``EmbedBatch``: many clips in one call, sharing model batches, each item with its own status.

Every item is extracted and queued first, so items share model batches; then results are collected in
order. Items go in waves that fit the queue: before queuing more, the call waits for its earlier items, so
an accepted call never overflows the queue with its own items.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import wait as futures_wait
from typing import Any, TypeVar

import grpc
import numpy as np

from audioembed.errors import InvalidOptionError
from audioembed_server.batcher import (
    Announcement,
    QueueFullError,
    RequestCancelledError,
    RequestExpiredError,
)
from audioembed_server.convert import RequestOptions, result_to_proto
from audioembed_server.engine import Engine, check_deadline
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.status import CallStats, status_for

T = TypeVar("T")
Outstanding = deque[tuple[Any, int]]  # (future, examples) queued by this call and not yet waited for


def embed_batch(
    engine: Engine,
    request: pb.EmbedBatchRequest,
    context: grpc.ServicerContext,
    stats: CallStats,
    *,
    max_items: int,
) -> pb.EmbedBatchResponse:
    """Answer one ``EmbedBatch`` call; a failed item is that item's status, not the call's.

    Raises
    ------
    InvalidOptionError
        More than ``max_items`` items.
    RequestCancelledError, RequestExpiredError
        The whole call is gone (cancelled, or past its deadline): no point answering item by item.
    """
    count = len(request.items)
    if count > max_items:
        raise InvalidOptionError(f"EmbedBatch takes at most {max_items} items per call, got {count}")
    check_deadline(context)
    stats.extra["items"] = count
    response = pb.EmbedBatchResponse()

    def queue(item: pb.EmbedRequest, outstanding: Outstanding) -> tuple[Any, Any, RequestOptions]:
        options = RequestOptions.from_proto(item.options, pca_loaded=engine.pca_loaded)
        with engine.batcher.expecting() as announcement:
            examples = engine.extract(item.audio, options, stats)
            future = _submit_in_wave(engine, examples.log_mel, context, outstanding, announcement)
        return examples, future, options

    def finish(entry: tuple[Any, Any, RequestOptions]) -> pb.EmbedResponse:
        examples, future, options = entry
        raw, quantized = engine.wait(future, context, stats)
        result = engine.embedder.make_result(examples, raw, quantized)
        message = result_to_proto(result, output=options.output)
        stats.examples += raw.shape[0]
        return message

    answer_items(request.items, queue, finish, response.items.add, stats)
    return response


def answer_items(
    items: Sequence[Any],
    queue: Callable[[Any, Outstanding], T],
    finish: Callable[[T], Any],
    add: Callable[..., Any],
    stats: CallStats,
) -> None:
    """The two phases of a batch call: queue every item first (so they share model batches), then answer each.

    ``queue(item, outstanding)`` extracts and submits one item; ``finish(queued)`` waits for it and returns
    its result message, passed as ``add(result=...)``. An item that fails in either phase becomes
    ``add(error=Status)`` and the others go on; a cancelled or expired call ends the whole call.
    """
    pending: list[T | BaseException] = []
    outstanding: Outstanding = deque()
    for item in items:
        try:
            pending.append(queue(item, outstanding))
        except (RequestCancelledError, RequestExpiredError):
            raise
        except Exception as error:
            pending.append(error)
    failed = 0
    for entry in pending:
        try:
            if isinstance(entry, BaseException):
                raise entry
            add(result=finish(entry))
        except (RequestCancelledError, RequestExpiredError):
            raise
        except Exception as error:
            mapped = status_for(error)
            add(error=pb.Status(code=mapped.code.value[0], message=mapped.message))
            failed += 1
    stats.extra["failed_items"] = failed


def _submit_in_wave(
    engine: Engine,
    log_mel: np.ndarray,
    context: grpc.ServicerContext,
    outstanding: Outstanding,
    announcement: Announcement | None = None,
) -> Any:
    """Queue one item once the call's earlier items leave it room; track its future.

    Waits (oldest first) for earlier items of the same call while they and this item together would
    exceed the queue, and again if the queue is full of other calls' work while ours is outstanding.
    An item is refused for queue space only when none of this call's items is left to wait for.
    """
    count = int(log_mel.shape[0])
    capacity = engine.batcher.max_queued
    while outstanding and sum(n for _, n in outstanding) + count > capacity:
        _settle_oldest(outstanding, context)
    while True:
        try:
            future = engine.submit(log_mel, context, announcement)
            break
        except QueueFullError:
            if not outstanding or count > capacity:
                raise
            _settle_oldest(outstanding, context)
    if future is not None:
        outstanding.append((future, count))
    return future


def _settle_oldest(outstanding: Outstanding, context: grpc.ServicerContext) -> None:
    """Wait until the oldest outstanding item's future resolves (its outcome is read later, in order)."""
    future, _ = outstanding.popleft()
    remaining = context.time_remaining()
    futures_wait([future], timeout=None if remaining is None else max(remaining, 0.0))
    if not future.done():  # the caller's deadline passed first
        raise RequestExpiredError("deadline expired while waiting for earlier items of the batch")
