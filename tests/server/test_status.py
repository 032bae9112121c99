"""Exceptions -> gRPC status codes, in one place; an unexpected error gets an id that is logged."""

from __future__ import annotations

import logging

import grpc
import pytest
from audioembed_server import EmbeddingClient, ServiceError
from audioembed_server.batcher import (
    BatcherClosedError,
    QueueFullError,
    RequestCancelledError,
    RequestExpiredError,
)
from audioembed_server.status import (
    RETRY_AFTER_KEY,
    DeadlineTooShortError,
    ModelNotReadyError,
    PayloadTooLargeError,
    status_for,
)

from audioembed.errors import (
    AudioDecodeError,
    InvalidAudioError,
    InvalidOptionError,
    ShapeError,
    WeightsFormatError,
)
from tests.server.conftest import int16_tone, running_server

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (AudioDecodeError("cannot decode audio <3 bytes>"), grpc.StatusCode.INVALID_ARGUMENT),
        (InvalidAudioError("samples contain NaN"), grpc.StatusCode.INVALID_ARGUMENT),
        (InvalidOptionError("hop_seconds must be positive, got -1"), grpc.StatusCode.INVALID_ARGUMENT),
        (ShapeError("expected [N, 96, 64], got [3]"), grpc.StatusCode.INVALID_ARGUMENT),
        (QueueFullError("queue full", retry_after_ms=None), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (PayloadTooLargeError("stream exceeded"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (ModelNotReadyError("still loading"), grpc.StatusCode.UNAVAILABLE),
        (BatcherClosedError("shutting down"), grpc.StatusCode.UNAVAILABLE),
        (RequestExpiredError("deadline expired"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (DeadlineTooShortError("deadline leaves 1 ms"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (RequestCancelledError("cancelled"), grpc.StatusCode.CANCELLED),
        (WeightsFormatError("truncated file"), grpc.StatusCode.FAILED_PRECONDITION),
        (grpc.RpcError(), grpc.StatusCode.CANCELLED),
    ],
)
def test_known_errors_map_to_their_code_with_the_message(error, code):
    mapped = status_for(error)
    assert (mapped.code, mapped.error_id) == (code, None)
    if not isinstance(error, grpc.RpcError):
        assert mapped.message == str(error)


def test_queue_full_carries_the_retry_hint_as_trailing_metadata():
    mapped = status_for(QueueFullError("queue full", retry_after_ms=250))
    assert mapped.trailing == ((RETRY_AFTER_KEY, "250"),)


def test_unexpected_errors_are_internal_with_an_id_in_the_log(caplog):
    with caplog.at_level(logging.ERROR, logger="audioembed_server"):
        mapped = status_for(ZeroDivisionError("division by zero in a bug"))
    assert mapped.code == grpc.StatusCode.INTERNAL and len(mapped.error_id) == 12
    assert mapped.message == f"internal error {mapped.error_id}: the server log has the details"
    assert mapped.error_id in caplog.text and "ZeroDivisionError" in caplog.text
    assert caplog.records[-1].exc_info is not None  # the traceback is logged


class BrokenModel:
    """A real Embedder whose model starts failing once ``broken`` is set (after the warm-up batch)."""

    def __init__(self, embedder) -> None:
        self._embedder = embedder
        self.broken = False

    def run_model(self, log_mel):
        if self.broken:
            raise RuntimeError("simulated model failure")
        return self._embedder.run_model(log_mel)

    def __getattr__(self, name):
        return getattr(self._embedder, name)


def test_a_failing_model_is_internal_for_the_caller_and_logged(embedder, caplog):
    model = BrokenModel(embedder)
    with running_server(lambda: model) as (server, address):
        model.broken = True
        with caplog.at_level(logging.ERROR, logger="audioembed_server"), pytest.raises(ServiceError) as info:
            EmbeddingClient(address, max_retries=0).embed(int16_tone(1.0), 16000)
        assert info.value.code == grpc.StatusCode.INTERNAL
        error_id = info.value.details.split()[2].rstrip(":")
        assert f"error_id={error_id}" in caplog.text and "simulated model failure" in caplog.text
        assert server.metrics.requests.value("Embed", "INTERNAL") == 1
