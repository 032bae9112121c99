"""The Docker image, built from this checkout and run for real on the host network.

One build per session (see ``conftest.py``); one serving container for the read-only checks, and a
container of its own for each test that ends one. Skipped only when no Docker engine is reachable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from audioembed_server import healthcheck
from audioembed_server.client import EmbeddingClient
from audioembed_server.servicer import SERVICE_NAME
from docker_harness import LABEL, Container, docker, free_port, run_cli

pytestmark = pytest.mark.slow

STOP_GRACE_SECONDS = 30
DOCKER_STOP_DEFAULT_SECONDS = 10
UID = "10001"
SERVICE = SERVICE_NAME  # readiness: SERVING once the model has loaded


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for ``/models`` holding synthetic weights + PCA parameters, made with the host's CLI.

    The file is where ``audioembed weights download`` would put it in the image (``$AUDIOEMBED_HOME``
    = ``/models``), so the container finds it with no setting at all.
    """
    directory = tmp_path_factory.mktemp("models")
    completed = run_cli("weights", "synth", "--seed", "0", "--output", str(directory / "vggish.safetensors"))
    assert completed.returncode == 0, completed.stderr
    # pytest's tmp dirs are private to the host user; the container's user (uid 10001) must read them.
    for path in [directory, *directory.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return directory


def _start_server(run_container, models: Path, *options: str) -> tuple[Container, int]:
    """Start the image's default command with the synthetic models, probed every second; wait for healthy."""
    port = free_port()
    container = run_container(
        "--health-interval=1s",  # the image probes every 10 s; the test need not wait that long
        "--env",
        f"AUDIOEMBED_PORT={port}",
        "--volume",
        f"{models}:/models:ro",
        *options,
    )
    container.wait_healthy()
    return container, port


@pytest.fixture(scope="module")
def server(run_container, models) -> tuple[Container, int]:
    """One serving container shared by the checks that leave it running."""
    return _start_server(run_container, models)


def test_image_metadata_declares_the_runtime_contract(image):
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config["Entrypoint"] == ["audioembed"]
    assert config["Cmd"] == ["serve"]
    assert config["User"] == f"{UID}:{UID}"
    assert "50051/tcp" in config["ExposedPorts"]
    assert "/models" in config["Volumes"]
    assert config["StopSignal"] == "SIGTERM"
    assert config["Healthcheck"]["Test"][-4:] == ["-m", "audioembed_server.healthcheck", "--service", SERVICE]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["AUDIOEMBED_HOME"] == "/models"
    assert env["AUDIOEMBED_HOST"] == "0.0.0.0"
    assert env["AUDIOEMBED_PORT"] == "50051"
    assert float(env["AUDIOEMBED_GRACE_SECONDS"]) < DOCKER_STOP_DEFAULT_SECONDS


def test_image_holds_no_weights_tests_or_sources(image):
    # Weights anywhere an install could have put them (not /proc or /sys: walking those is pointless).
    script = (
        "import os, audioembed, audioembed_server\n"
        "found = [os.path.join(d, f) for top in ('/opt', '/usr', '/home', '/models', '/srv', '/root')\n"
        "         for d, _, files in os.walk(top) for f in files\n"
        "         if f.endswith(('.safetensors', '.pth')) or f.startswith(('vggish', 'model.ckpt'))]\n"
        "print(sorted(os.listdir('/models')))\n"
        "print(found)\n"
        "print([p for p in ('/src', '/tests') if os.path.exists(p)])\n"
        "print(audioembed.__file__)\n"
    )
    completed = docker("run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", script)
    lines = completed.stdout.splitlines()
    assert lines[:3] == ["[]", "[]", "[]"], completed.stdout
    assert lines[3].startswith("/opt/audioembed/lib/"), lines[3]


def test_cli_is_the_entrypoint(image):
    from audioembed import __version__

    completed = docker("run", "--rm", "--network", "none", image, "--version")
    assert completed.stdout.strip() == f"audioembed {__version__}"


def test_container_becomes_healthy_through_the_grpc_health_service(server):
    container, port = server
    health = container.state()["Health"]
    assert health["Status"] == "healthy"
    assert health["Log"][-1]["ExitCode"] == 0
    assert health["Log"][-1]["Output"].strip() == f"127.0.0.1:{port} {SERVICE}: SERVING"
    # The same service answers from the host, over the host network.
    assert healthcheck.check(f"127.0.0.1:{port}", service=SERVICE) == (True, "SERVING")


def test_smoke_test_passes_through_grpc_from_the_host(server, models):
    _, port = server
    # With the same weights on the host, the smoke test also compares the service's output with its own.
    weights = str(models / "vggish.safetensors")
    completed = run_cli("smoke-test", "--server", f"127.0.0.1:{port}", "--weights", weights)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_smoke_test_runs_in_the_image_against_the_server(server, image, models):
    _, port = server
    completed = docker(
        "run", "--rm", "--network", "host", "--volume", f"{models}:/models:ro", image,
        "smoke-test", "--server", f"127.0.0.1:{port}",
        check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_server_runs_as_non_root(server):
    container, _ = server
    assert docker("exec", container.name, "id", "-u").stdout.strip() == UID
    # The serving process itself, not just a fresh exec: PID 1 is the server.
    status = docker("exec", container.name, "cat", "/proc/1/status").stdout
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    assert uids == [UID] * 4


def test_sigterm_drains_and_exits_zero_within_the_grace_period(run_container, models):
    container, _ = _start_server(run_container, models)
    start = time.monotonic()
    docker("stop", container.name, timeout=60)  # docker's default: SIGTERM, SIGKILL 10 s later
    elapsed = time.monotonic() - start
    state = container.state()
    logs = container.logs()
    assert state["ExitCode"] == 0, logs[-4000:]
    assert not state["OOMKilled"]
    # SIGKILL would have come at 10 s (exit 137); well before it means SIGTERM was honoured.
    assert elapsed < DOCKER_STOP_DEFAULT_SECONDS, f"took {elapsed:.1f} s\n{logs[-4000:]}"
    # The server's structured log: shutdown began (NOT_SERVING, no new calls, drain) and completed.
    assert "event=shutdown_started" in logs, logs[-4000:]
    assert "event=shutdown_complete" in logs, logs[-4000:]
    assert "Traceback" not in logs


def test_without_weights_or_network_exits_with_the_weights_message(image):
    name = f"audioembed-test-noweights-{time.time_ns()}"
    try:
        # --network none: no registry, no download; /models is the image's empty volume.
        completed = docker(
            "run", "--name", name, "--label", LABEL, "--network", "none", image, timeout=120, check=False
        )
    finally:
        docker("rm", "--force", "--volumes", name, check=False)
    assert completed.returncode != 0
    assert "audioembed serve: error:" in completed.stderr, completed.stderr
    assert "weights download" in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr


def _metric(port: int, name: str) -> float:
    """One unlabelled value from the server's Prometheus text endpoint (0 while the series is absent)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(f"{name} ")]
    return float(values[0]) if values else 0.0


def test_sigterm_lets_an_in_flight_request_finish(run_container, models):
    # Two minutes of audio = 124 examples = 8 model batches of 16: the stop is sent once the first batch
    # has run, so the call is in flight whatever the machine's speed. The grace period covers the other
    # seven on a slow, shared machine.
    metrics_port = free_port()
    container, port = _start_server(
        run_container,
        models,
        *("--env", "AUDIOEMBED_GRACE_SECONDS=25", "--env", "AUDIOEMBED_MAX_BATCH_EXAMPLES=16"),
        *("--env", f"AUDIOEMBED_METRICS_PORT={metrics_port}"),
    )
    rate = 16000
    samples = 0.5 * np.sin(2 * np.pi * 440.0 * np.arange(120 * rate) / rate)
    outcome: dict[str, object] = {}

    def call() -> None:
        # No retries: a call refused during shutdown must fail here, not be retried into success.
        with EmbeddingClient(f"127.0.0.1:{port}", timeout=60.0, max_retries=0) as client:
            try:
                outcome["result"] = client.embed((samples, rate), output="raw")
            except Exception as error:  # the assertion below shows it
                outcome["error"] = error
            outcome["done"] = time.monotonic()

    worker = threading.Thread(target=call)
    worker.start()
    deadline = time.monotonic() + 60
    while _metric(metrics_port, "audioembed_batches_total") < 1 and worker.is_alive():
        assert time.monotonic() < deadline, "the request never reached the model"
        time.sleep(0.02)
    stop_started = time.monotonic()
    docker("stop", "--time", str(STOP_GRACE_SECONDS), container.name, timeout=STOP_GRACE_SECONDS + 30)
    worker.join(timeout=90)
    logs = container.logs()
    assert "error" not in outcome, (
        f"{outcome.get('error')} {outcome['done'] - stop_started:.1f} s after stop\n{logs}"
    )
    assert outcome["result"].num_examples == 124  # 11998 frames of 10 ms -> 124 whole 96-frame examples
    assert stop_started < outcome["done"], "the call ended before the stop: nothing was drained"
    assert container.state()["ExitCode"] == 0, logs[-4000:]
    assert "method=Embed code=OK" in logs, logs[-4000:]


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_tls_server_is_probed_over_tls(run_container, models, tmp_path):
    # The HEALTHCHECK takes no flags: the probe must follow the server's AUDIOEMBED_TLS_CERT by itself.
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem"), "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    for path in [tmp_path, certs, *certs.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the container's uid
    container, port = _start_server(
        run_container,
        models,
        *("--volume", f"{certs}:/certs:ro"),
        *("--env", "AUDIOEMBED_TLS_CERT=/certs/cert.pem", "--env", "AUDIOEMBED_TLS_KEY=/certs/key.pem"),
    )
    assert container.state()["Health"]["Status"] == "healthy"
    roots = (certs / "cert.pem").read_bytes()
    assert healthcheck.check(f"127.0.0.1:{port}", service=SERVICE, tls_roots=roots) == (True, "SERVING")
    assert not healthcheck.check(f"127.0.0.1:{port}", service=SERVICE, timeout=2)[0]  # plaintext refused


def test_weights_commands_write_to_the_models_volume_and_fail_cleanly_offline(image):
    # The image's /models volume belongs to the runtime user: the weights CLI can install files into it.
    synth = docker(
        "run", "--rm", "--network", "none", image, "weights", "synth", "--seed", "0", "-o",
        "/models/vggish.safetensors",
        check=False,
    )  # fmt: skip
    assert synth.returncode == 0, synth.stderr
    assert "wrote /models/vggish.safetensors: SYNTHETIC weights (seed 0)" in synth.stdout
    # Offline, `weights download` says what to do instead of showing a traceback.
    fetch = docker("run", "--rm", "--network", "none", image, "weights", "download", timeout=120, check=False)
    assert fetch.returncode != 0
    assert "audioembed weights: error: could not reach" in fetch.stderr, fetch.stderr
    assert "Traceback" not in fetch.stderr
