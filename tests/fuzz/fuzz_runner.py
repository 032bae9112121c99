"""Run fuzz cases in worker processes against a real server; count crashes, hangs and bad outcomes.

A parent thread per worker hands it one case index at a time and waits for the answer. A worker that exits
mid-case is a crash (its exit status is kept, e.g. -11 for SIGSEGV), one that stays silent past the
deadline a hang (it is killed); either way a fresh worker takes the next case. Everything a report needs is
in :class:`Tally`.
"""

from __future__ import annotations

import collections
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
HANG_SECONDS = 20.0  # any one target slower than this is a hang
CASE_DEADLINE_SECONDS = 120.0  # the parent's patience for a whole case (five targets, each ≤ 20 s)
READY_SECONDS = 180.0  # worker start-up: imports and weights (a loaded machine is slow)
BAD_STATUSES = frozenset({"UNKNOWN", "INTERNAL", "DEADLINE_EXCEEDED"})  # never a proper answer here


def environment() -> dict[str, str]:
    """The child environment: this checkout (library and server) first on the path."""
    env = dict(os.environ)
    paths = [str(ROOT), str(ROOT / "server"), str(HERE)]
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return env


class _Lines:
    """Lines from a pipe with a timeout (``select`` on the raw descriptor, our own buffer)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.fd = stream.fileno()
        self.buffer = b""

    def read(self, timeout: float) -> str | None:
        """The next line; None at end of file; ``TimeoutError`` if none arrives in time."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


@dataclass
class Tally:
    """What a run found. ``bad`` lists every case that was not a clean, typed, proper answer."""

    inputs: int = 0
    crashes: int = 0
    hangs: int = 0
    untyped: int = 0
    bad_statuses: int = 0
    outcomes: dict[str, collections.Counter] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    bad: list[dict[str, Any]] = field(default_factory=list)
    max_worker_rss: int = 0
    worker_rss_after_warmup: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, report: dict[str, Any]) -> None:
        with self.lock:
            self.inputs += 1
            problems = []
            for target, (result, seconds) in report["results"].items():
                self.outcomes[target][result.split(":")[0] if result.startswith("U:") else result] += 1
                if result.startswith("U:"):
                    self.untyped += 1
                    problems.append(f"{target}: {result}")
                elif result.split("[")[0] in BAD_STATUSES or any(
                    s in result for s in ("UNKNOWN", "INTERNAL")
                ):
                    self.bad_statuses += 1
                    problems.append(f"{target}: {result}")
                if seconds > HANG_SECONDS:
                    self.hangs += 1
                    problems.append(f"{target}: took {seconds:.1f} s")
            if problems:
                self.bad.append({"i": report["i"], "label": report["label"], "problems": problems})
            self.max_worker_rss = max(self.max_worker_rss, report.get("rss", 0))

    def add_failure(self, index: int, kind: str, detail: str) -> None:
        with self.lock:
            self.inputs += 1
            if kind == "crash":
                self.crashes += 1
            else:
                self.hangs += 1
            self.bad.append({"i": index, "label": "?", "problems": [f"{kind}: {detail}"]})

    def summary(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "crashes": self.crashes,
            "hangs": self.hangs,
            "untyped": self.untyped,
            "bad_statuses": self.bad_statuses,
            "max_worker_rss_mib": round(self.max_worker_rss / 2**20, 1),
            "outcomes": {
                target: dict(counter.most_common()) for target, counter in sorted(self.outcomes.items())
            },
            "bad": self.bad[:50],
        }


class Worker:
    """One worker process; restarted after a crash or a hang."""

    def __init__(self, arguments: Sequence[str], log: IO[bytes], case_deadline: float) -> None:
        self.arguments = list(arguments)
        self.log = log
        self.case_deadline = case_deadline
        self.process: subprocess.Popen[bytes] | None = None
        self.lines: _Lines | None = None

    def ensure(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "fuzz_worker.py"), *self.arguments],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, env=environment(), cwd=ROOT,
        )  # fmt: skip
        self.lines = _Lines(self.process.stdout)  # type: ignore[arg-type]
        if self.lines.read(READY_SECONDS) != "ready":
            raise RuntimeError(f"fuzz worker did not start (exit {self.process.wait()}); see its log")

    def run(self, index: int, tally: Tally) -> None:
        self.ensure()
        assert self.process is not None and self.lines is not None  # set by ensure()
        try:
            self.process.stdin.write(f"{index}\n".encode())  # type: ignore[union-attr]
            self.process.stdin.flush()  # type: ignore[union-attr]
            line = self.lines.read(self.case_deadline)
            while line is not None and not line.startswith(f"done {index} "):
                line = self.lines.read(self.case_deadline)
        except TimeoutError:
            self.stop()
            tally.add_failure(index, "hang", f"no answer in {self.case_deadline:.0f} s")
            return
        except BrokenPipeError:
            line = None
        if line is None:
            status = self.process.wait()
            tally.add_failure(index, "crash", f"worker exited with status {status}")
            self.process = None
            return
        tally.add(json.loads(line.split(" ", 2)[2]))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def run_cases(
    indexes: Iterable[int],
    worker_arguments: Sequence[str],
    *,
    workers: int,
    log_path: Path,
    tally: Tally,
    case_deadline: float = CASE_DEADLINE_SECONDS,
) -> Tally:
    """Run every case index on ``workers`` processes (indexes dealt round-robin); fill ``tally``."""
    pending = list(indexes)
    with open(log_path, "ab") as log:
        pool = [Worker(worker_arguments, log, case_deadline) for _ in range(workers)]

        def drive(worker: Worker, share: list[int]) -> None:
            try:
                for index in share:
                    worker.run(index, tally)
            finally:
                worker.stop()

        threads = [
            threading.Thread(target=drive, args=(worker, pending[k::workers]), daemon=True)
            for k, worker in enumerate(pool)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return tally


# --- the server under test ---------------------------------------------------------------------------------


class Server:
    """``python -m audioembed_server serve`` on a free loopback port, as a separate process."""

    def __init__(self, weights: Path, log_path: Path, *extra: str, tls_root: Path | None = None) -> None:
        self.tls_root = tls_root  # the certificate to trust when the server serves TLS
        self.log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "audioembed_server", "serve", "--host", "127.0.0.1", "--port", "0"]
        self.process = subprocess.Popen(
            [*command, "--weights", str(weights), *extra],
            stdout=subprocess.PIPE, stderr=self.log, env=environment(), cwd=ROOT,
        )  # fmt: skip
        line = _Lines(self.process.stdout).read(READY_SECONDS)  # type: ignore[arg-type]
        if not line or "listening on" not in line:
            raise RuntimeError(f"server did not start: {line!r}")
        self.address = line.rsplit(" ", 1)[1]
        self.wait_serving()

    def wait_serving(self, timeout: float = READY_SECONDS) -> bool:
        """True once the health service says the embedding service is ready."""
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        deadline = time.monotonic() + timeout
        channel = (
            grpc.insecure_channel(self.address)
            if self.tls_root is None
            else grpc.secure_channel(self.address, grpc.ssl_channel_credentials(self.tls_root.read_bytes()))
        )
        with channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    request = health_pb2.HealthCheckRequest(service="audioembed.v1.EmbeddingService")
                    if stub.Check(request, timeout=5).status == health_pb2.HealthCheckResponse.SERVING:
                        return True
                except grpc.RpcError:
                    pass
                time.sleep(0.2)
        return False

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.process.pid}/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()
        return self.process.wait()
