"""The container's health probe against a real in-process gRPC health service."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from audioembed_server import healthcheck
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from audioembed.errors import InvalidOptionError

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE = "audioembed.v1.Test"


@pytest.fixture()
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    """A gRPC server on a free loopback port with only the health service; yields (address, servicer)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        server.stop(grace=None)


def _closed_port() -> int:
    """A loopback port nothing listens on (bound then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_serving_server_is_healthy(health_server, capsys):
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert healthcheck.main(["--address", address]) == healthcheck.EXIT_HEALTHY
    assert capsys.readouterr().out.strip() == f"{address} (server): SERVING"


@pytest.mark.parametrize(
    "status", [health_pb2.HealthCheckResponse.NOT_SERVING, health_pb2.HealthCheckResponse.UNKNOWN]
)
def test_any_other_status_is_unhealthy(health_server, capsys, status):
    address, servicer = health_server
    servicer.set("", status)
    assert healthcheck.main(["--address", address]) == healthcheck.EXIT_UNHEALTHY
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(status)
    assert capsys.readouterr().out.strip() == f"{address} (server): {name}"


def test_named_service_is_checked_separately(health_server):
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert healthcheck.check(address) == (True, "SERVING")
    assert healthcheck.check(address, service=SERVICE) == (False, "NOT_SERVING")
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    assert healthcheck.main(["--address", address, "--service", SERVICE]) == healthcheck.EXIT_HEALTHY


def test_unregistered_service_is_unhealthy_and_named(health_server):
    address, _ = health_server
    healthy, detail = healthcheck.check(address, service="audioembed.v1.Missing")
    assert not healthy
    assert "'audioembed.v1.Missing' is not registered" in detail


def test_no_server_is_unhealthy_not_a_crash(capsys):
    address = f"127.0.0.1:{_closed_port()}"
    assert healthcheck.main(["--address", address, "--timeout", "2"]) == healthcheck.EXIT_UNHEALTHY
    out = capsys.readouterr().out
    assert f"no answer from {address}: UNAVAILABLE" in out


def test_server_that_does_not_answer_hits_the_deadline():
    # A socket that accepts connections but never speaks HTTP/2: the call must end at the deadline.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        healthy, detail = healthcheck.check(address, timeout=0.5)
    assert not healthy
    assert detail.startswith(f"no answer from {address}: ")
    assert "DEADLINE_EXCEEDED" in detail or "UNAVAILABLE" in detail


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "127.0.0.1:50051"),
        ({"AUDIOEMBED_PORT": "6000"}, "127.0.0.1:6000"),
        ({"AUDIOEMBED_HOST": "0.0.0.0", "AUDIOEMBED_PORT": "6001"}, "127.0.0.1:6001"),
        ({"AUDIOEMBED_HOST": "::", "AUDIOEMBED_PORT": "6002"}, "[::1]:6002"),
        ({"AUDIOEMBED_HOST": "10.1.2.3"}, "10.1.2.3:50051"),
        ({"AUDIOEMBED_HOST": "fd00::5", "AUDIOEMBED_PORT": "7"}, "[fd00::5]:7"),
    ],
)
def test_default_address_follows_the_server_environment(environ, expected):
    assert healthcheck.default_address(environ) == expected


def test_default_address_is_used_without_the_flag(health_server):
    address, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    port = address.rpartition(":")[2]
    assert healthcheck.main([], environ={"AUDIOEMBED_PORT": port}) == healthcheck.EXIT_HEALTHY


def test_bad_port_in_environment_is_a_usage_error(capsys):
    assert healthcheck.main([], environ={"AUDIOEMBED_PORT": "http"}) == healthcheck.EXIT_USAGE
    assert "AUDIOEMBED_PORT/AUDIOEMBED_HOST give a bad address" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("localhost", "address must be HOST:PORT, got 'localhost'"),
        (":50051", "address must be HOST:PORT, got ':50051'"),
        ("localhost:0", "integer in 1..65535, got '0'"),
        ("localhost:99999", "integer in 1..65535, got '99999'"),
        ("localhost:port", "integer in 1..65535, got 'port'"),
        ("[::1:50051", "IPv6 host must be in brackets"),
    ],
)
def test_bad_address_is_rejected_with_the_value(address, message):
    with pytest.raises(InvalidOptionError, match=message.replace("[", r"\[").replace(".", r"\.")):
        healthcheck.parse_address(address)


def test_bad_address_flag_is_a_usage_error_not_a_traceback(capsys):
    assert healthcheck.main(["--address", "nowhere"]) == healthcheck.EXIT_USAGE
    assert "healthcheck: error: address must be HOST:PORT, got 'nowhere'" in capsys.readouterr().err


@pytest.mark.parametrize("timeout", [0, -1.0, float("nan"), float("inf"), "3"])
def test_bad_timeout_is_rejected(timeout):
    with pytest.raises(InvalidOptionError, match="timeout must be a positive number of seconds"):
        healthcheck.check("127.0.0.1:1", timeout=timeout)


def test_bad_timeout_flag_exits_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        healthcheck.main(["--timeout", "soon"])
    assert exit_info.value.code == healthcheck.EXIT_USAGE
    assert "must be a positive number of seconds, got 'soon'" in capsys.readouterr().err


def test_module_runs_as_a_program(health_server):
    address, servicer = health_server
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "server")])
    command = [sys.executable, "-m", "audioembed_server.healthcheck", "--address", address]
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert completed.returncode == 1, completed.stderr
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip().endswith("SERVING")


# --- TLS: a container serving TLS must still be able to probe itself --------------------------------

needs_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs openssl to make a certificate"
)


def _certificate(directory: Path, names: str) -> tuple[Path, Path]:
    """A self-signed EC certificate for ``names`` (a subjectAltName list), valid for a day: (cert, key)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=audioembed-test",
         "-addext", f"subjectAltName={names}"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module", params=["DNS:localhost,IP:127.0.0.1", "DNS:audio.example.org"])
def tls_server(request, tmp_path_factory) -> Iterator[tuple[str, Path, str]]:
    """A TLS health server (SERVING) on loopback; yields (address, certificate path, certificate names)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs openssl to make a certificate")
    cert, key = _certificate(tmp_path_factory.mktemp("tls"), request.param)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}", cert, request.param
    finally:
        server.stop(grace=None)


def test_tls_server_is_healthy_with_its_certificate(tls_server):
    address, cert, names = tls_server
    name = None if "127.0.0.1" in names else "audio.example.org"
    assert healthcheck.check(address, tls_roots=cert.read_bytes(), server_name=name) == (True, "SERVING")


def test_tls_certificate_comes_from_the_server_environment(tls_server):
    # In the container the probe gets no flags: the server's own AUDIOEMBED_TLS_CERT switches it to TLS.
    address, cert, names = tls_server
    environ = {"AUDIOEMBED_PORT": address.rpartition(":")[2], "AUDIOEMBED_TLS_CERT": str(cert)}
    if "127.0.0.1" not in names:
        environ["AUDIOEMBED_HEALTHCHECK_SERVER_NAME"] = "audio.example.org"
    assert healthcheck.main([], environ=environ) == healthcheck.EXIT_HEALTHY


def test_without_override_the_certificate_must_name_the_address(tls_server):
    address, cert, names = tls_server
    healthy, detail = healthcheck.check(address, tls_roots=cert.read_bytes(), timeout=2)
    if "127.0.0.1" in names:
        assert (healthy, detail) == (True, "SERVING")
    else:  # a certificate for audio.example.org does not verify as 127.0.0.1
        assert not healthy
        assert detail.startswith(f"no answer from {address}: UNAVAILABLE")


def test_plaintext_probe_of_a_tls_server_is_unhealthy(tls_server):
    address, _, _ = tls_server
    healthy, detail = healthcheck.check(address, timeout=2)
    assert not healthy
    assert detail.startswith(f"no answer from {address}: ")


@needs_openssl
def test_untrusted_certificate_is_unhealthy(tls_server, tmp_path):
    address, _, names = tls_server
    other, _ = _certificate(tmp_path, names)  # same names, different key: not the server's certificate
    healthy, detail = healthcheck.check(
        address, tls_roots=other.read_bytes(), server_name="audio.example.org"
    )
    assert not healthy
    assert "UNAVAILABLE" in detail


def test_missing_or_non_pem_certificate_is_a_usage_error(tmp_path, capsys):
    missing = tmp_path / "missing.pem"
    assert (
        healthcheck.main(["--address", "127.0.0.1:1", "--tls-cert", str(missing)]) == healthcheck.EXIT_USAGE
    )
    assert f"cannot read the TLS certificate {str(missing)!r}" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    with pytest.raises(InvalidOptionError, match="holds no PEM certificate"):
        healthcheck.read_tls_roots(str(garbage))


def test_server_name_without_tls_is_rejected():
    with pytest.raises(InvalidOptionError, match=r"server_name 'audio\.example\.org' needs TLS roots"):
        healthcheck.check("127.0.0.1:1", server_name="audio.example.org")
