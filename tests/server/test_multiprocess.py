"""``serve --processes N``: real supervisor and child processes sharing one port, on loopback."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from audioembed_server import SERVICE_NAME, EmbeddingClient, ServerConfig, config_from
from audioembed_server.config import add_arguments
from audioembed_server.metrics_merge import merge_expositions
from audioembed_server.serve_command import resolve_processes
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audioembed.errors import InvalidOptionError
from tests.server.conftest import int16_tone

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
SERVING = health_pb2.HealthCheckResponse.SERVING


# --- configuration ----------------------------------------------------------------------------------


def _parse(*argv: str, env: dict[str, str] | None = None) -> ServerConfig:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from(parser.parse_args(list(argv)), env or {})


def test_processes_flag_and_variable_accept_counts_and_auto():
    assert ServerConfig().processes == 1
    assert _parse("--processes", "3").processes == 3
    assert _parse("--processes", "auto").processes == 0
    assert _parse(env={"AUDIOEMBED_PROCESSES": "AUTO"}).processes == 0
    assert _parse("--processes", "2", env={"AUDIOEMBED_PROCESSES": "4"}).processes == 2  # the flag wins


@pytest.mark.parametrize(("text", "message"), [("-1", "got -1"), ("two", "got 'two'"), ("1.5", "got '1.5'")])
def test_bad_process_counts_are_refused_by_name(text, message):
    with pytest.raises(InvalidOptionError, match=f"processes.*{re.escape(message)}"):
        _parse("--processes", text)


def test_auto_means_the_cpus_this_process_may_use():
    assert resolve_processes(0) == len(os.sched_getaffinity(0))
    assert resolve_processes(3) == 3


# --- merged metrics ---------------------------------------------------------------------------------

CHILD = """# HELP audioembed_requests_total RPCs finished
# TYPE audioembed_requests_total counter
audioembed_requests_total{method="Embed",code="OK"} 3
# HELP audioembed_batch_size examples per batch
# TYPE audioembed_batch_size histogram
audioembed_batch_size_bucket{le="1"} 2
audioembed_batch_size_sum 5
"""


def test_merged_expositions_keep_each_family_together_and_label_every_sample():
    merged = merge_expositions([("0", CHILD), ("1", CHILD.replace(" 3\n", " 4\n"))]).splitlines()
    assert merged == [
        "# HELP audioembed_requests_total RPCs finished",
        "# TYPE audioembed_requests_total counter",
        'audioembed_requests_total{process="0",method="Embed",code="OK"} 3',
        'audioembed_requests_total{process="1",method="Embed",code="OK"} 4',
        "# HELP audioembed_batch_size examples per batch",
        "# TYPE audioembed_batch_size histogram",
        'audioembed_batch_size_bucket{process="0",le="1"} 2',
        'audioembed_batch_size_sum{process="0"} 5',
        'audioembed_batch_size_bucket{process="1",le="1"} 2',
        'audioembed_batch_size_sum{process="1"} 5',
    ]


def test_a_malformed_sample_line_is_refused():
    with pytest.raises(ValueError, match="not a Prometheus sample line: 'garbage'"):
        merge_expositions([("0", "garbage\n")])


# --- real processes ---------------------------------------------------------------------------------


def _serve(*argv: str) -> subprocess.Popen:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "server"), env.get("PYTHONPATH", "")])
    command = [sys.executable, "-m", "audioembed.cli", "--log-level", "INFO", "serve", "--host", "127.0.0.1"]
    return subprocess.Popen(
        [*command, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


class _Lines:
    """Collects a pipe's lines on a thread, so the test can wait for one without blocking the server."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            self.lines.append(line)

    def wait_for(self, pattern: str, *, timeout: float = 60.0, after: int = 0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if match := re.search(pattern, line):
                    return match
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n" + "".join(self.lines))

    @property
    def text(self) -> str:
        return "".join(self.lines)


def _health(address: str) -> int:
    with grpc.insecure_channel(address) as channel:  # a new channel: a new connection, maybe another process
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10).status


def _wait_serving(address: str, process: subprocess.Popen, *, probes: int = 6) -> None:
    """Until ``probes`` consecutive new connections all find a ready process."""
    deadline = time.monotonic() + 90
    streak = 0
    while streak < probes:
        assert process.poll() is None, f"serve exited with {process.returncode}"
        assert time.monotonic() < deadline, "the processes never all became ready"
        streak = streak + 1 if _health(address) == SERVING else 0
        time.sleep(0.02)


def _probe_until(address: str, stop: threading.Event, statuses: list[int | str]) -> None:
    """Health of new connections, one after another, until ``stop`` (a failed call: its status code)."""
    while not stop.is_set():
        try:
            statuses.append(_health(address))
        except grpc.RpcError as error:
            statuses.append(error.code().name)


def _mapping(pid: int, path: Path) -> dict[str, int]:
    """kB of ``path``'s memory mappings in ``pid`` by smaps field (Rss, Shared_Clean, Private_Dirty, ...)."""
    totals: dict[str, int] = {}
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            inside = line.endswith(str(path))
        elif inside and line.endswith(" kB"):
            key, value = line.split(":")
            totals[key] = totals.get(key, 0) + int(value.split()[0])
    return totals


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def _ok_requests(text: str) -> dict[str, int]:
    pattern = r'audioembed_requests_total\{process="(\d+)",method="Embed",code="OK"\} (\d+)'
    return {p: int(n) for p, n in re.findall(pattern, text)}


@pytest.mark.slow
def test_processes_share_the_port_and_the_weights_restart_when_killed_and_drain_on_sigterm(
    synthetic_weights,
):
    process = _serve(
        "--port", "0", "--processes", "2", "--weights", str(synthetic_weights), "--metrics-port", "0",
        "--grace-seconds", "30", "--max-queue-delay-ms", "10",
    )  # fmt: skip
    err = _Lines(process.stderr)
    try:
        line = process.stdout.readline()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+) \(2 processes: pids (\d+), (\d+)\)", line)
        assert match, line + err.text
        address = f"127.0.0.1:{match[1]}"
        pids = [int(match[2]), int(match[3])]
        metrics_port = int(err.wait_for(r"event=listening address=\S+ processes=2 metrics_port=(\d+)")[1])
        _wait_serving(address, process)

        # Fresh connections are spread over both processes by the kernel (SO_REUSEPORT); the one
        # /metrics shows each process's own count.
        for seed in range(16):
            with EmbeddingClient(address) as client:
                assert client.embed(int16_tone(1.0, seed=seed), 16000).num_examples == 1
        counts = _ok_requests(_metrics(metrics_port))
        assert sum(counts.values()) == 16 and set(counts) == {"0", "1"}, counts

        # Both processes map the native weights file read-only and share its pages: no private copy.
        size_kb = synthetic_weights.stat().st_size // 1024
        for pid in pids:
            mapped = _mapping(pid, synthetic_weights)
            assert mapped.get("Private_Dirty", 0) == 0, mapped
            assert mapped.get("Shared_Clean", 0) > 0.9 * size_kb, (mapped, size_kb)

        # A killed process is restarted on the same port and the service goes on. While it restarts, every
        # new connection finds a process that can answer: the new one binds only once its model is loaded.
        statuses: list[int | str] = []
        probing = threading.Event()
        prober = threading.Thread(target=_probe_until, args=(address, probing, statuses), daemon=True)
        mark = len(err.lines)
        os.kill(pids[0], signal.SIGKILL)
        new_pid = int(err.wait_for(r"event=process_restarted index=0 pid=(\d+)", after=mark)[1])
        assert new_pid not in pids
        prober.start()  # the killed process is reaped: its socket is closed, the new one is starting
        err.wait_for(rf"event=process_listening index=0 pid={new_pid}", after=mark)
        time.sleep(1.0)  # new connections now reach both processes
        probing.set()
        prober.join(30)
        assert len(statuses) >= 10 and set(statuses) == {SERVING}, statuses
        _wait_serving(address, process)
        text = _metrics(metrics_port)
        assert "audioembed_process_restarts_total 1" in text and "audioembed_processes 2" in text

        # SIGTERM to the supervisor: every accepted request is answered, then it exits 0.
        clips = [int16_tone(3.0, seed=i) for i in range(4)]
        with ThreadPoolExecutor(len(clips)) as pool:
            futures = [pool.submit(EmbeddingClient(address, max_retries=0).embed, c, 16000) for c in clips]
            time.sleep(0.5)  # the requests are on the wire and accepted
            process.send_signal(signal.SIGTERM)
            results = [f.result(60) for f in futures]
        assert [r.num_examples for r in results] == [3, 3, 3, 3]
        assert process.wait(60) == 0, err.text
        err.wait_for(r"event=shutdown_complete clean=True")
        for pid in (pids[1], new_pid):
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


@pytest.mark.slow
def test_children_stop_when_the_supervisor_is_killed(synthetic_weights):
    process = _serve("--port", "0", "--processes", "2", "--weights", str(synthetic_weights))
    try:
        line = process.stdout.readline()
        match = re.search(r"pids (\d+), (\d+)\)", line)
        assert match, line
        process.kill()  # no chance to forward anything: the children must notice on their own
        process.wait(10)
        deadline = time.monotonic() + 30
        while any(_alive(int(pid)) for pid in match.groups()):
            assert time.monotonic() < deadline, "orphaned server processes kept running"
            time.sleep(0.1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def test_a_model_that_fails_to_load_stops_every_process_with_exit_2(tmp_path):
    bad = tmp_path / "not-weights.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    process = _serve("--port", "0", "--processes", "2", "--weights", str(bad))
    try:
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, stderr
    assert "the model failed to load" in stderr and "not-weights.safetensors" in stderr


def test_a_port_taken_by_another_program_is_a_setup_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = _serve("--port", str(port), "--processes", "2")
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in stderr


@pytest.mark.slow
def test_a_crash_loop_stops_the_server_instead_of_spinning(synthetic_weights):
    from audioembed_server.multiprocess import EXIT_FAILED, Supervisor, reserve_port

    with reserve_port("127.0.0.1", 0) as port:
        config = ServerConfig(host="127.0.0.1", port=port, processes=2, weights=str(synthetic_weights))
        supervisor = Supervisor(config, max_restarts=1)
        stop = threading.Event()
        try:
            supervisor.start(0)
            assert supervisor.wait_listening(stop) is None
            first = supervisor.children[0].process
            first.kill()
            first.join(10)
            assert supervisor.poll(restart=True) is None  # the first death is restarted ...
            second = supervisor.children[0].process
            assert second.pid != first.pid and supervisor.restart_count == 1
            assert supervisor.wait_listening(stop) is None
            second.kill()
            second.join(10)
            assert supervisor.poll(restart=True) == EXIT_FAILED  # ... the second within the window is not
            assert supervisor.children[0].process is second
        finally:
            supervisor.stop_all(10)
