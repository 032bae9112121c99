"""Start-up, readiness, load failure, graceful shutdown in-process and of a real ``serve`` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import numpy as np
import pytest
from audioembed_server import SERVICE_NAME, EmbeddingClient, ServiceError
from audioembed_server.app import EmbeddingServer, ModelLoadError, create_server
from audioembed_server.batcher import BatcherClosedError
from audioembed_server.config import ServerConfig
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audioembed.errors import WeightsNotFoundError
from tests.server.conftest import GatedEmbedder, int16_tone, running_server

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(address: str) -> health_pb2_grpc.HealthStub:
    return health_pb2_grpc.HealthStub(grpc.insecure_channel(address))


def _status(address: str, service: str) -> int:
    return _health(address).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_health_is_live_but_not_ready_until_the_model_loads(embedder):
    release = threading.Event()

    def slow_factory():
        release.wait(30)
        return embedder

    with running_server(slow_factory, wait=False) as (server, address):
        assert _status(address, "") == SERVING
        watch = _health(address).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=60)
        assert next(watch).status == NOT_SERVING
        with pytest.raises(ServiceError, match="still loading") as info:
            EmbeddingClient(address, max_retries=0).embed(int16_tone(1.0), 16000)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
        # A client with retries waits the loading out.
        results = []
        waiting = threading.Thread(
            target=lambda: results.append(
                EmbeddingClient(address, max_retries=20, initial_backoff=0.05, max_backoff=0.2).embed(
                    int16_tone(1.0), 16000
                )
            )
        )
        waiting.start()
        time.sleep(0.3)
        release.set()
        assert next(watch).status == SERVING
        assert server.wait_ready(30)
        waiting.join(60)
        assert results and results[0].num_examples == 1
        stopper = threading.Thread(target=server.stop, kwargs={"grace": 5})
        stopper.start()
        assert next(watch).status == NOT_SERVING  # shutdown is announced to watchers first
        stopper.join(30)


def test_a_model_that_fails_to_load_keeps_the_service_unavailable(caplog):
    def broken_factory():
        raise WeightsNotFoundError("no weights found: run `audioembed weights download`")

    with running_server(broken_factory, wait=False) as (server, address):
        with pytest.raises(WeightsNotFoundError, match="no weights found"):
            server.wait_ready(30)
        assert _status(address, SERVICE_NAME) == NOT_SERVING
        with pytest.raises(ServiceError, match="failed to load: no weights found") as info:
            EmbeddingClient(address, max_retries=0).embed(int16_tone(1.0), 16000)
        assert info.value.code == grpc.StatusCode.UNAVAILABLE
    records = _load_failure_records(caplog)
    assert records and not records[0].exc_info  # the message says what to do; no traceback to bury it


def test_a_bug_while_loading_is_logged_with_its_traceback(caplog):
    def buggy_factory():
        raise ZeroDivisionError("a bug, not a user error")

    with running_server(buggy_factory, wait=False) as (server, _), pytest.raises(ZeroDivisionError):
        server.wait_ready(30)
    records = _load_failure_records(caplog)
    assert records and records[0].exc_info


def test_load_first_serves_only_once_loaded_and_names_a_load_failure(embedder):
    config = ServerConfig(host="127.0.0.1", port=0)
    server, port = create_server(config, lambda: embedder, load_first=True)
    try:
        assert server.ready  # loaded before create_server returned: no NOT_SERVING phase to see
        assert _status(f"127.0.0.1:{port}", SERVICE_NAME) == SERVING
    finally:
        server.stop(grace=0)

    def broken_factory():
        raise WeightsNotFoundError("no weights found: run `audioembed weights download`")

    with pytest.raises(ModelLoadError, match="the model failed to load: no weights found") as info:
        create_server(config, broken_factory, load_first=True)
    assert isinstance(info.value.__cause__, WeightsNotFoundError)


def test_load_first_closes_the_loaded_model_when_the_port_cannot_be_bound(embedder):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        config = ServerConfig(host="127.0.0.1", port=taken.getsockname()[1])
        server = EmbeddingServer(config, lambda: embedder, load_first=True)
        with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1"):
            server.start()
    engine = server.servicer.engine
    assert engine is not None
    with pytest.raises(BatcherClosedError):  # closed: its batcher takes no more work
        engine.batcher.submit(np.zeros((1, 96, 64), np.float32))


def _load_failure_records(caplog) -> list:
    return [record for record in caplog.records if "model_load_failed" in record.getMessage()]


def test_graceful_stop_finishes_in_flight_work_and_refuses_new(embedder):
    gated = GatedEmbedder(embedder)
    with running_server(lambda: gated, max_queue_delay_ms=0) as (server, address):
        gated.gate.clear()
        gated.entered.clear()
        health = _health(address)  # connected before the stop: a new connection would be refused
        watch = health.Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=60)
        assert next(watch).status == SERVING
        with ThreadPoolExecutor(2) as pool:
            in_flight = pool.submit(EmbeddingClient(address).embed, int16_tone(2.0), 16000)
            assert gated.entered.wait(20)
            stopper = pool.submit(server.stop, 30)
            assert next(watch).status == NOT_SERVING
            time.sleep(0.2)  # let stop() reach the gRPC server
            with pytest.raises(ServiceError) as refused:
                EmbeddingClient(address, max_retries=0, timeout=5).embed(int16_tone(1.0), 16000)
            assert refused.value.code == grpc.StatusCode.UNAVAILABLE
            gated.gate.set()
            assert in_flight.result(30).num_examples == 2
            stopper.result(30)


def _serve(weights: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "server"), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "audioembed_server", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--weights", str(weights), "--grace-seconds", "30", *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_sigterm_lets_accepted_requests_finish_and_exits_zero(synthetic_weights):
    process = _serve(synthetic_weights, "--max-queue-delay-ms", "50")
    try:
        line = process.stdout.readline()
        assert "listening on 127.0.0.1:" in line, line + process.stderr.read()
        address = "127.0.0.1:" + line.rsplit(":", 1)[1].strip()
        deadline = time.monotonic() + 60
        while _status(address, SERVICE_NAME) != SERVING:
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, "the model never loaded"
            time.sleep(0.05)
        clips = [int16_tone(3.0, seed=i) for i in range(4)]
        with ThreadPoolExecutor(len(clips)) as pool:
            futures = [pool.submit(EmbeddingClient(address, max_retries=0).embed, c, 16000) for c in clips]
            time.sleep(0.3)  # the requests are on the wire and accepted
            process.send_signal(signal.SIGTERM)
            results = [f.result(60) for f in futures]
        assert [r.num_examples for r in results] == [3, 3, 3, 3]
        assert process.wait(60) == 0
        log = process.stderr.read()
        assert "event=shutdown_complete" in log
        assert log.count("event=request method=Embed code=OK") == 4
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
