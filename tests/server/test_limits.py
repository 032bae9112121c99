"""Backpressure, message limits, deadlines, cancellation and batching delay, on servers with a held model."""

from __future__ import annotations

import json
import threading
import time

import grpc
import numpy as np
import pytest
from audioembed_server import EmbeddingClient, ServiceError
from audioembed_server.client_command import COMMAND as CLIENT
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from audioembed_server.status import RETRY_AFTER_KEY

from audioembed import cli
from tests.server.conftest import GatedEmbedder, assert_same_result, int16_tone, running_server, wav_bytes

pytestmark = pytest.mark.timeout(120)


def _request(seconds: float, seed: int = 0) -> pb.EmbedRequest:
    """A raw-PCM request with ``floor(seconds / 0.96)`` examples (for seconds >= 0.975)."""
    samples = int16_tone(seconds, seed=seed)
    fmt = pb.PcmFormat(encoding=pb.PCM_ENCODING_S16LE, sample_rate=16000, channels=1)
    return pb.EmbedRequest(audio=pb.Audio(pcm=pb.RawPcm(data=samples.tobytes(), format=fmt)))


def _wait_until(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


@pytest.fixture
def gated(embedder) -> GatedEmbedder:
    return GatedEmbedder(embedder)


def test_full_queue_is_resource_exhausted_with_a_retry_hint(gated):
    with running_server(lambda: gated, max_batch_examples=2, max_queue_examples=4, max_queue_delay_ms=0) as (
        server,
        address,
    ):
        stub = pb_grpc.EmbeddingServiceStub(grpc.insecure_channel(address))
        gated.gate.clear()
        gated.entered.clear()
        holding = stub.Embed.future(_request(1.0), timeout=60)  # taken by the model thread, which then waits
        assert gated.entered.wait(20)
        queued = [stub.Embed.future(_request(2.0, seed=i), timeout=60) for i in (1, 2)]  # 2 + 2 examples
        batcher = server.servicer.engine.batcher
        _wait_until(lambda: batcher.queued_rows == 4)
        with pytest.raises(grpc.RpcError) as info:
            stub.Embed(_request(1.0, seed=3), timeout=30)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "queue full: 4 examples queued, limit 4" in info.value.details()
        hints = dict(info.value.trailing_metadata())
        assert int(hints[RETRY_AFTER_KEY]) >= 10

        # A client with retries rides it out once the model moves again.
        results = []
        retrying = threading.Thread(
            target=lambda: results.append(
                EmbeddingClient(address, max_retries=8).embed(int16_tone(1.0), 16000)
            )
        )
        retrying.start()
        _wait_until(lambda: server.metrics.requests.value("Embed", "RESOURCE_EXHAUSTED") >= 2)
        gated.gate.set()
        retrying.join(60)
        assert results and results[0].num_examples == 1
        for future in [holding, *queued]:
            assert future.result().result.num_examples in (1, 2)
        # A clip bigger than the whole queue is refused outright, without a retry hint.
        with pytest.raises(ServiceError, match="more than the queue holds") as too_big:
            EmbeddingClient(address).embed(int16_tone(5.0), 16000)
        assert too_big.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_expired_and_cancelled_requests_never_reach_the_model(gated):
    with running_server(lambda: gated, max_batch_examples=4, max_queue_delay_ms=0) as (server, address):
        stub = pb_grpc.EmbeddingServiceStub(grpc.insecure_channel(address))
        baseline = gated.computed_rows  # the warm-up batch
        gated.gate.clear()
        gated.entered.clear()
        holding = stub.Embed.future(_request(1.0), timeout=60)
        assert gated.entered.wait(20)
        batcher = server.servicer.engine.batcher
        expiring = stub.Embed.future(_request(2.0, seed=1), timeout=1.5)
        _wait_until(lambda: batcher.queued_rows == 2)
        cancelled = stub.Embed.future(_request(3.0, seed=2), timeout=60)
        _wait_until(lambda: batcher.queued_rows == 5)
        assert cancelled.cancel()
        with pytest.raises(grpc.RpcError) as info:
            expiring.result()
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        gated.gate.set()
        assert holding.result().result.num_examples == 1
        _wait_until(lambda: batcher.queued_rows == 0)
        # Only the holding request's example was computed: 2 + 3 abandoned examples were dropped.
        assert gated.computed_rows == baseline + 1
        _wait_until(lambda: server.metrics.requests.value("Embed", "CANCELLED") == 1)
        assert server.metrics.requests.value("Embed", "DEADLINE_EXCEEDED") == 1


def test_message_over_the_receive_limit_is_refused_clearly(embedder, tmp_path, capsys):
    with running_server(lambda: embedder, max_receive_message_mb=0.25) as (server, address):
        client = EmbeddingClient(address)
        with pytest.raises(ServiceError) as info:
            client.embed(int16_tone(10.0), 16000)  # 320 kB of PCM
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (
            "larger than max" in info.value.details
            and "send long audio with embed_stream" in info.value.details
        )
        # The client command streams a file that is too big for one message by itself.
        big = tmp_path / "big.wav"
        big.write_bytes(wav_bytes(10.0))
        args = cli.build_parser([CLIENT]).parse_args(["client", "--address", address, str(big)])
        assert args._run(args) == 0
        assert json.loads(capsys.readouterr().out)["num_examples"] == 10
        # One stream chunk over the limit: gRPC's own status, not an internal error.
        with pytest.raises(ServiceError, match="larger than max") as chunk_info:
            list(client.embed_stream([b"\x00" * 300_000]))
        assert chunk_info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert server.metrics.requests.value("EmbedStream", "INTERNAL") == 0
        # The same audio goes through as a stream of small messages.
        samples = int16_tone(10.0)
        parts = list(client.embed_stream(np.array_split(samples, 8), sample_rate=16000))
        assert sum(p.num_examples for p in parts) == 10


def test_encoded_stream_over_the_stream_limit_is_refused(embedder):
    with running_server(lambda: embedder, max_stream_mb=0.05) as (_server, address):
        client = EmbeddingClient(address)
        with pytest.raises(ServiceError, match="stream exceeded the server's limit of 52428 bytes") as info:
            list(client.embed_stream([b"\x00" * 40000, b"\x00" * 40000]))
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_lone_request_waits_about_the_batching_delay_not_for_a_full_batch(embedder):
    delay_ms = 300.0
    with running_server(lambda: embedder, max_batch_examples=64, max_queue_delay_ms=delay_ms) as (
        server,
        address,
    ):
        client = EmbeddingClient(address)
        started = time.monotonic()
        client.embed(int16_tone(1.0), 16000)
        elapsed = time.monotonic() - started
        queued = server.metrics.queue_seconds.sum
        computed = server.metrics.compute_seconds.sum
    assert queued == pytest.approx(delay_ms / 1000, abs=0.1)
    # delay + compute + decoding/transport; generous slack for a shared 2-core machine.
    assert elapsed < delay_ms / 1000 + computed + 1.5


def test_embed_batch_larger_than_the_queue_goes_through_in_waves(embedder):
    with running_server(
        lambda: embedder, max_batch_examples=4, max_queue_examples=8, max_queue_delay_ms=0
    ) as (server, address):
        clips = [wav_bytes(3.0, seed=i) for i in range(6)]  # 6 x 3 = 18 examples: over twice the queue
        results = EmbeddingClient(address, timeout=60).embed_batch([*clips, wav_bytes(10.0)])
        assert server.metrics.requests.value("EmbedBatch", "OK") == 1
    for clip, result in zip(clips, results[:6], strict=True):
        assert not isinstance(result, Exception), result
        assert_same_result(result, embedder.embed(clip))
    # An item bigger than the whole queue still fails alone, and says why.
    assert isinstance(results[6], ServiceError) and results[6].code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (
        "would make 10 examples (10.0 s at a 0.96 s hop), more than the queue holds (8)" in results[6].details
    )


def test_a_clip_that_would_flood_the_queue_is_refused_before_decoding(embedder):
    import io

    import soundfile as sf

    silence = io.BytesIO()  # a few KB of FLAC that decode to two minutes: 124 examples
    sf.write(silence, np.zeros(120 * 16000, dtype=np.int16), 16000, format="FLAC")
    assert len(silence.getvalue()) < 100_000
    with running_server(lambda: embedder, max_batch_examples=8, max_queue_examples=32) as (_, address):
        client = EmbeddingClient(address, max_retries=0)
        too_many = r"would make 124 examples \(120\.0 s at a 0\.96 s hop\), more than the queue holds \(32\)"
        with pytest.raises(ServiceError, match=too_many) as info:
            client.embed(silence.getvalue())
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(ServiceError, match=r"would make 2\d\d examples") as info:  # a tiny hop multiplies
            client.embed(int16_tone(3.0), 16000, hop_seconds=0.01)
        assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert client.embed(int16_tone(2.0), 16000).num_examples == 2  # and the server keeps serving
