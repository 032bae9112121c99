"""Every endpoint of a real server on a loopback port, compared with the in-process Embedder."""

from __future__ import annotations

import threading
import urllib.request

import grpc
import numpy as np
import pytest
from audioembed_server import SERVICE_NAME, EmbeddingClient, ServiceError
from audioembed_server.client import concatenate_results
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.server.conftest import assert_same_result, int16_tone, tone, wav_bytes

pytestmark = pytest.mark.timeout(120)


def test_embed_encoded_file_equals_in_process(client, embedder):
    data = wav_bytes(2.5, rate=22050, channels=2, seed=1)
    result = client.embed(data)
    assert result.num_examples == 2
    assert (result.sample_rate, result.short_clip) == (22050, "none")
    assert result.duration_seconds == pytest.approx(2.5, abs=1e-4)
    assert_same_result(result, embedder.embed(data))


def test_embed_raw_pcm_int16_and_float32_equal_in_process(client, embedder):
    samples = int16_tone(1.5, seed=2)
    assert_same_result(
        client.embed(samples, 16000), embedder.embed(samples.astype(np.float64) / 32768, 16000)
    )
    floats = tone(1.2, rate=8000, channels=2, seed=3).astype(np.float32)
    assert_same_result(client.embed(floats, 8000), embedder.embed(floats.astype(np.float64), 8000))


def test_options_hop_short_clip_and_output_kinds(client, embedder):
    samples = int16_tone(2.0, seed=4)
    overlapped = client.embed(samples, 16000, hop_seconds=0.48)
    np.testing.assert_allclose(overlapped.timestamps, [0.0, 0.48, 0.96])
    assert overlapped.hop_seconds == pytest.approx(0.48)
    short = int16_tone(0.5, seed=5)
    padded = client.embed(short, 16000)
    assert (padded.num_examples, padded.short_clip) == (1, "pad")
    dropped = client.embed(short, 16000, short_clip="drop")
    assert (dropped.num_examples, dropped.short_clip) == (0, "drop")
    assert dropped.embeddings.shape == (0, 128) and dropped.quantized.shape == (0, 128)
    raw_only = client.embed(samples, 16000, output="raw")
    assert raw_only.quantized is None and raw_only.embeddings.shape == (2, 128)
    quantized_only = client.embed(samples, 16000, output="quantized")
    assert quantized_only.embeddings is None and quantized_only.quantized.shape == (2, 128)


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (pb.Audio(encoded=b"definitely not audio"), "cannot decode audio"),
        (pb.Audio(), "carries no audio"),
        (
            pb.Audio(pcm=pb.RawPcm(data=b"\x00\x01\x02", format=pb.PcmFormat(encoding=1, sample_rate=16000))),
            "3 bytes",
        ),
        (
            pb.Audio(pcm=pb.RawPcm(data=b"\x00\x00", format=pb.PcmFormat(sample_rate=16000))),
            "PCM_ENCODING_UNSPECIFIED",
        ),
        (pb.Audio(pcm=pb.RawPcm(data=b"\x00\x00", format=pb.PcmFormat(encoding=1, sample_rate=0))), "got 0"),
    ],
)
def test_bad_audio_is_invalid_argument_naming_the_problem(served, audio, message):
    stub = pb_grpc.EmbeddingServiceStub(grpc.insecure_channel(served[1]))
    with pytest.raises(grpc.RpcError) as info:
        stub.Embed(pb.EmbedRequest(audio=audio), timeout=30)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in info.value.details()


def test_bad_options_are_invalid_argument(client):
    with pytest.raises(ServiceError, match="hop_seconds must be a positive multiple") as info:
        client.embed(int16_tone(1.0), 16000, hop_seconds=0.015)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_batch_returns_a_result_per_item_and_a_bad_item_fails_alone(client, embedder):
    good = [wav_bytes(1.0, seed=6), (int16_tone(2.0, seed=7), 16000)]
    results = client.embed_batch([good[0], b"garbage", good[1]])
    assert len(results) == 3
    assert_same_result(results[0], embedder.embed(good[0]))
    assert isinstance(results[1], ServiceError)
    assert results[1].code == grpc.StatusCode.INVALID_ARGUMENT and "cannot decode audio" in results[1].details
    assert_same_result(results[2], embedder.embed(good[1][0].astype(np.float64) / 32768, 16000))


def test_batch_over_the_item_limit_is_refused(client, served):
    limit = served[0].config.max_batch_items
    with pytest.raises(ServiceError, match=f"at most {limit} items per call, got {limit + 1}"):
        client.embed_batch([b"x"] * (limit + 1))


def test_concurrent_clients_each_get_their_own_results(served, embedder):
    clips = [int16_tone(1.0 + 0.1 * i, seed=10 + i) for i in range(6)]  # one example each, all different
    expected = list(embedder.embed_many([(c.astype(np.float64) / 32768, 16000) for c in clips]))
    results: list = [None] * len(clips)

    def worker(i: int) -> None:
        with EmbeddingClient(served[1]) as own:
            results[i] = own.embed(clips[i], 16000)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(clips))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for result, reference in zip(results, expected, strict=True):
        assert_same_result(result, reference)


def test_model_info_reports_provenance_and_limits(client, embedder, served):
    info = client.model_info()
    reference = embedder.model_info
    assert (info.sample_rate, info.window_seconds, info.dimension) == (16000, 0.96, 128)
    assert info.weights_sha256 == reference.weights_sha256 and len(info.weights_sha256) == 64
    assert info.synthetic is True and info.pca_loaded is True
    assert info.limits["max_batch_examples"] == served[0].config.max_batch_examples
    assert info.limits["max_receive_message_bytes"] == 64 * 1024 * 1024


def test_pcm_stream_equals_one_shot_and_answers_as_examples_complete(client, embedder):
    samples = int16_tone(2.3, rate=44100, seed=20)
    # Odd-sized chunks split frames between messages; the server must stitch them.
    chunks = [samples[i : i + 7001].tobytes() for i in range(0, len(samples), 7001)]
    chunks = [b"".join(chunks)[i : i + 30001] for i in range(0, len(b"".join(chunks)), 30001)]
    parts = list(client.embed_stream(chunks, sample_rate=44100, encoding="s16le"))
    # Two examples answered while audio was still arriving, then the final (empty) message.
    assert [p.num_examples for p in parts] == [1, 1, 0]
    whole = concatenate_results(parts)
    assert_same_result(whole, embedder.embed(samples.astype(np.float64) / 32768, 44100))


def test_encoded_stream_equals_one_shot(client, embedder):
    data = wav_bytes(2.2, rate=48000, channels=2, seed=21)
    parts = list(client.embed_stream(data[i : i + 10000] for i in range(0, len(data), 10000)))
    assert_same_result(concatenate_results(parts), embedder.embed(data))


def test_short_stream_applies_the_policy(client):
    parts = list(client.embed_stream([int16_tone(0.4)], sample_rate=16000, short_clip="drop"))
    assert [(p.num_examples, p.short_clip) for p in parts] == [(0, "drop")]


def test_stream_protocol_errors(served):
    stub = pb_grpc.EmbeddingServiceStub(grpc.insecure_channel(served[1]))
    cases = [
        ([pb.EmbedStreamRequest(chunk=b"\x00\x00")], "first EmbedStream message must carry `config`"),
        ([pb.EmbedStreamRequest(config=pb.StreamConfig())], "must set `pcm`"),
        (
            [
                pb.EmbedStreamRequest(
                    config=pb.StreamConfig(pcm=pb.PcmFormat(encoding=1, sample_rate=16000))
                ),
                pb.EmbedStreamRequest(chunk=b"\x00\x00\x00"),
            ],
            "ended inside a frame",
        ),
        ([pb.EmbedStreamRequest(config=pb.StreamConfig(encoded=True))], "no audio data"),
    ]
    for requests, message in cases:
        with pytest.raises(grpc.RpcError) as info:
            list(stub.EmbedStream(iter(requests), timeout=30))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, message
        assert message in info.value.details()


def test_reflection_lists_the_services(served):
    stub = reflection_pb2_grpc.ServerReflectionStub(grpc.insecure_channel(served[1]))
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for s in next(iter(responses)).list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names


def test_health_is_serving_once_loaded(served):
    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(served[1]))
    for service in ("", SERVICE_NAME):
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_metrics_count_what_happened(served, client):
    server = served[0]
    before_ok = server.metrics.requests.value("Embed", "OK")
    before_bad = server.metrics.requests.value("Embed", "INVALID_ARGUMENT")
    before_examples = server.metrics.examples.value()
    before_batches = server.metrics.batches.value()
    client.embed(int16_tone(2.0, seed=30), 16000)
    with pytest.raises(ServiceError):
        client.embed(b"garbage")
    body = (
        urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10).read().decode()
    )
    assert server.metrics.requests.value("Embed", "OK") == before_ok + 1
    assert server.metrics.requests.value("Embed", "INVALID_ARGUMENT") == before_bad + 1
    assert server.metrics.examples.value() == before_examples + 2
    assert server.metrics.batches.value() >= before_batches + 1
    ok = server.metrics.requests.value("Embed", "OK")
    assert f'audioembed_requests_total{{method="Embed",code="OK"}} {ok:g}' in body
    assert "audioembed_batch_size_bucket" in body and "audioembed_audio_seconds_total" in body
    assert "audioembed_queue_seconds_count" in body and "audioembed_compute_seconds_sum" in body
