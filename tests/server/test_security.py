"""TLS and bearer-token authentication, on a real server with a self-signed certificate (openssl binary)."""

from __future__ import annotations

import shutil
import subprocess

import grpc
import pytest
from audioembed_server import EmbeddingClient, ServiceError
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.server.conftest import int16_tone, running_server

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(
        shutil.which("openssl") is None, reason="needs the openssl binary to make a certificate"
    ),
]
TOKEN = "correct-horse-battery-staple"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for localhost / 127.0.0.1, valid for a day: (cert path, key path)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def secure(embedder, certificate):
    cert, key = certificate
    with running_server(lambda: embedder, tls_cert=str(cert), tls_key=str(key), token=TOKEN) as (
        server,
        address,
    ):
        yield server, f"localhost:{address.rsplit(':', 1)[1]}", cert


def test_tls_with_the_token_embeds(secure):
    _, address, cert = secure
    with EmbeddingClient(address, root_certificates=cert, token=TOKEN) as client:
        assert client.embed(int16_tone(1.0), 16000).num_examples == 1
        assert client.model_info().synthetic is True


@pytest.mark.parametrize(
    ("token", "message"), [(None, "missing 'authorization"), ("wrong", "invalid bearer token")]
)
def test_missing_or_wrong_token_is_unauthenticated(secure, token, message):
    server, address, cert = secure
    before = server.metrics.requests.value("Embed", "UNAUTHENTICATED")
    with EmbeddingClient(address, root_certificates=cert, token=token) as client:
        with pytest.raises(ServiceError, match=message) as info:
            client.embed(int16_tone(1.0), 16000)
        assert info.value.code == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(ServiceError, match=message):
            list(client.embed_stream([int16_tone(1.0)], sample_rate=16000))
    assert server.metrics.requests.value("Embed", "UNAUTHENTICATED") == before + 1


def test_health_stays_open_without_a_token(secure):
    _, address, cert = secure
    channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(cert.read_bytes()))
    response = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=10
    )
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_plaintext_client_cannot_talk_to_a_tls_server(secure):
    _, address, _ = secure
    with (
        EmbeddingClient(address, token=TOKEN, max_retries=0, timeout=5) as client,
        pytest.raises(ServiceError) as info,
    ):
        client.embed(int16_tone(1.0), 16000)
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
