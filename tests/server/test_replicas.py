"""Several replicas behind one client: targets, round-robin balancing, and a replica killed under load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import soundfile as sf
from audioembed_server import SERVICE_NAME, EmbeddingClient
from audioembed_server.__main__ import main as server_main
from audioembed_server.targets import channel_target

from audioembed.errors import InvalidOptionError
from tests.server.conftest import int16_tone, running_server, tone

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


# --- targets ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "target"),
    [
        ("localhost:50051", "localhost:50051"),
        ("dns:///embed.default.svc.cluster.local:50051", "dns:///embed.default.svc.cluster.local:50051"),
        (["127.0.0.1:1", "127.0.0.1:2"], "ipv4:127.0.0.1:1,127.0.0.1:2"),
        ("127.0.0.1:1, 127.0.0.2:2", "ipv4:127.0.0.1:1,127.0.0.2:2"),
        (["localhost:1", "127.0.0.1:2"], "ipv4:127.0.0.1:1,127.0.0.1:2"),
        (["[::1]:1", "[::1]:2"], "ipv6:[::1]:1,[::1]:2"),
        (["127.0.0.1:1"], "127.0.0.1:1"),
    ],
)
def test_addresses_become_grpc_targets(address, target):
    assert channel_target(address) == target


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("", "got ''"),
        (["a:1", ""], "got ['a:1', '']"),
        ("127.0.0.1", "port in 1..65535, got '127.0.0.1'"),
        ("127.0.0.1:1,127.0.0.1:0", "got '127.0.0.1:0'"),
        ("127.0.0.1:1,host:http", "got 'host:http'"),
        ("127.0.0.1:1,dns:///x:2", "not target URIs, got 'dns:///x:2'"),
        ("127.0.0.1:1,[::1]:2", "all IPv4 or all IPv6"),
        ("127.0.0.1:1,no-such-host.invalid:2", "cannot resolve 'no-such-host.invalid'"),
        ([b"127.0.0.1:1"], "addresses must be strings"),
    ],
)
def test_bad_addresses_are_refused_by_value(address, message):
    with pytest.raises(InvalidOptionError, match=re.escape(message)):
        channel_target(address)


# --- balancing over in-process replicas ---------------------------------------------------------------


def test_calls_are_balanced_round_robin_over_the_replicas(embedder):
    with running_server(lambda: embedder) as (first, a), running_server(lambda: embedder) as (second, b):
        with EmbeddingClient([a, b]) as client:
            assert client.health(SERVICE_NAME) == "SERVING"
            for seed in range(8):
                assert client.embed(int16_tone(1.0, seed=seed), 16000).num_examples == 1
        served = [s.metrics.requests.value("Embed", "OK") for s in (first, second)]
    assert sum(served) == 8 and min(served) >= 2, served


def test_a_dns_target_reaches_the_replicas_its_name_resolves_to(served):
    port = served[1].rsplit(":", 1)[1]
    # localhost may resolve to ::1 too, where nothing listens: round-robin uses only the ready address.
    with EmbeddingClient(f"dns:///localhost:{port}") as client:
        assert client.embed(int16_tone(1.0), 16000).num_examples == 1


def test_client_command_takes_repeated_and_comma_separated_replicas(embedder, tmp_path, capsys):
    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(1.0), 16000, subtype="PCM_16")
    with running_server(lambda: embedder) as (first, a), running_server(lambda: embedder) as (second, b):
        assert server_main(["client", "--address", a, "--server", b, *[str(clip)] * 4]) == 0
        assert server_main(["client", "--address", f"{a},{b}", *[str(clip)] * 4]) == 0
        served = [s.metrics.requests.value("Embed", "OK") for s in (first, second)]
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["num_examples"] for s in summaries] == [1] * 8
    assert sum(served) == 8 and min(served) >= 2, served


def test_client_command_refuses_a_bad_replica_list(capsys):
    assert server_main(["client", "--address", "127.0.0.1:1,127.0.0.1:0", "x.wav"]) == 2
    assert "port in 1..65535, got '127.0.0.1:0'" in capsys.readouterr().err


# --- a replica killed under load ----------------------------------------------------------------------


def _replica(weights: Path, log: Path) -> tuple[subprocess.Popen, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "server"), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "audioembed_server", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--weights", str(weights), "--max-queue-delay-ms", "5"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("w"), text=True, env=env)
    line = process.stdout.readline()
    assert "listening on 127.0.0.1:" in line, line + log.read_text()
    return process, "127.0.0.1:" + line.rsplit(":", 1)[1].strip()


@pytest.mark.slow
def test_every_request_is_answered_when_a_replica_is_killed_under_load(synthetic_weights, tmp_path):
    replicas = [_replica(synthetic_weights, tmp_path / f"replica{i}.log") for i in range(2)]
    try:
        for _, address in replicas:
            with EmbeddingClient(address, max_retries=200, initial_backoff=0.05, max_backoff=0.2) as c:
                c.model_info()  # retried (UNAVAILABLE) until this replica's model has loaded
        victim = replicas[0][0]
        done = threading.Semaphore(0)
        client = EmbeddingClient(
            [address for _, address in replicas], max_retries=8, initial_backoff=0.05, max_backoff=0.5
        )

        def one(seed: int) -> int:
            result = client.embed(int16_tone(1.0, seed=seed), 16000)
            done.release()
            return result.num_examples

        with client, ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, seed) for seed in range(32)]
            for _ in range(8):  # a quarter answered: both replicas are busy
                assert done.acquire(timeout=60)
            victim.send_signal(signal.SIGKILL)
            answers = [f.result(120) for f in futures]
        assert answers == [1] * 32
        assert victim.wait(10) == -signal.SIGKILL
        logs = [(tmp_path / f"replica{i}.log").read_text() for i in range(2)]
        served = [log.count("event=request method=Embed code=OK") for log in logs]
        assert served[0] > 0 and served[1] > 0, served  # both took work before the kill
        assert sum(served) >= 32, served  # each answer was logged by the replica that computed it
    finally:
        for process, _ in replicas:
            if process.poll() is None:
                process.kill()
            process.wait(10)
