"""Open EmbedStream calls: capped below the worker count, and ended when the client goes silent."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from audioembed_server.streams import IdleTimeoutReader, StreamIdleError, StreamSlots, TooManyStreamsError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.server.conftest import int16_tone, running_server

pytestmark = pytest.mark.timeout(90)

IDLE_SECONDS = 1.5
READER_THREAD = "audioembed-stream-reader"


def _config() -> pb.EmbedStreamRequest:
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=16000, channels=1)
    return pb.EmbedStreamRequest(config=pb.StreamConfig(pcm=fmt))


def _held_stream(feed: queue.Queue) -> Iterator[pb.EmbedStreamRequest]:
    """Send the config, then whatever ``feed`` gives until it gives None: a client that can stall."""
    yield _config()
    while (item := feed.get()) is not None:
        yield item


def _wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def _reader_threads() -> int:
    return sum(thread.name == READER_THREAD for thread in threading.enumerate())


def _drain(call: grpc.Call) -> grpc.RpcError | None:
    try:
        for _ in call:
            pass
    except grpc.RpcError as error:
        return error
    return None


def test_stalled_streams_leave_threads_for_health_are_capped_and_time_out(embedder):
    with running_server(lambda: embedder, workers=4, stream_idle_seconds=IDLE_SECONDS) as (server, address):
        assert server.config.max_concurrent_streams == 2  # workers // 2
        channel = grpc.insecure_channel(address)
        stub = pb_grpc.EmbeddingServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        feeds = [queue.Queue(), queue.Queue()]
        try:
            opened = time.monotonic()
            stalled = [stub.EmbedStream(_held_stream(feed), timeout=60) for feed in feeds]
            _wait_until(lambda: server.servicer.streams.open == 2)
            # Both slots are held by silent clients, yet the other workers still answer.
            check = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
            assert check.status == health_pb2.HealthCheckResponse.SERVING
            assert stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=5).dimension == 128
            with pytest.raises(grpc.RpcError) as refused:
                list(stub.EmbedStream(iter([_config()]), timeout=5))
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "too many open streams: 2 of max_concurrent_streams=2" in refused.value.details()
            # The silent streams end on their own after the idle timeout and free their slots and threads.
            errors = [_drain(call) for call in stalled]
            waited = time.monotonic() - opened
            for error in errors:
                assert error is not None and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
                assert f"no stream message for {IDLE_SECONDS:g} s (stream_idle_seconds)" in error.details()
            assert waited >= IDLE_SECONDS
            _wait_until(lambda: server.servicer.streams.open == 0)
            _wait_until(lambda: _reader_threads() == 0, timeout=10)
            assert server.metrics.requests.value("EmbedStream", "DEADLINE_EXCEEDED") == 2
        finally:
            for feed in feeds:
                feed.put(None)
        # A slow but live client (pauses shorter than the timeout) is served in full.
        samples = int16_tone(3.0)
        feed: queue.Queue = queue.Queue()
        call = stub.EmbedStream(_held_stream(feed), timeout=60)
        for part in np.array_split(samples, 3):
            time.sleep(IDLE_SECONDS / 3)
            feed.put(pb.EmbedStreamRequest(chunk=part.tobytes()))
        feed.put(None)
        responses = list(call)
        assert responses[-1].final and sum(r.result.num_examples for r in responses) == 3


def test_idle_reader_passes_messages_ends_and_errors_through():
    assert list(IdleTimeoutReader(iter([1, 2, 3]), idle_seconds=5)) == [1, 2, 3]

    def failing() -> Iterator[int]:
        yield 1
        raise RuntimeError("stream broke after 1 message")

    reader = IdleTimeoutReader(failing(), idle_seconds=5)
    assert next(reader) == 1
    with pytest.raises(RuntimeError, match="stream broke after 1 message"):
        next(reader)
    with pytest.raises(StopIteration):
        next(reader)


def test_idle_reader_times_out_and_close_releases_a_reader_blocked_on_a_full_queue():
    gate = threading.Event()

    def slow() -> Iterator[int]:
        gate.wait()
        yield from range(100)  # more than the read-ahead queue holds

    reader = IdleTimeoutReader(slow(), idle_seconds=0.2)
    started = time.monotonic()
    with pytest.raises(StreamIdleError, match=r"no stream message for 0\.2 s"):
        next(reader)
    assert time.monotonic() - started >= 0.2
    gate.set()
    reader.close()
    _wait_until(lambda: not reader.reader_alive, timeout=5)
    with pytest.raises(ValueError, match="idle_seconds must be > 0, got 0"):
        IdleTimeoutReader(iter([]), idle_seconds=0)


def test_stream_slots_refuse_beyond_the_limit_and_free_on_exit():
    slots = StreamSlots(1)
    with slots.hold():
        assert slots.open == 1
        with pytest.raises(TooManyStreamsError, match="1 of max_concurrent_streams=1"), slots.hold():
            pass
    assert slots.open == 0
    with slots.hold():
        pass
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        StreamSlots(0)
