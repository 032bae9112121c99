"""Helpers of the image test: run docker and the host CLI, pick ports, watch a container's health.

A module with its own name (not ``conftest``) so test files can import it unambiguously.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE_ENV = "AUDIOEMBED_DOCKER_BASE_IMAGE"
DEFAULT_BASE_IMAGE = "python:3.11-slim"
BUILD_TIMEOUT_SECONDS = 1200  # a cold build downloads numpy, scipy and grpcio wheels
HEALTHY_TIMEOUT_SECONDS = 120
# Every container and image this suite makes carries this label, so a crashed run can be cleaned by it.
LABEL = "audioembed.test=1"


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; with ``check``, fail the test with docker's stderr when it exits non-zero."""
    completed = subprocess.run(
        ["docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if check and completed.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {completed.returncode}:\n{completed.stderr[-4000:]}")
    return completed


def cli_env() -> dict[str, str]:
    """The environment for running this checkout's ``audioembed`` CLI on the host."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "server")])
    return env


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run this checkout's ``audioembed ARGS`` on the host (not in a container)."""
    return subprocess.run(
        [sys.executable, "-m", "audioembed.cli", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the container binds it on the host network)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Container:
    """A detached container started by :func:`run_container`; removed when the test ends."""

    name: str

    def state(self) -> dict:
        """``docker inspect``'s ``.State``: Status, Running, ExitCode, Health, ..."""
        out = docker("inspect", "--format", "{{json .State}}", self.name).stdout
        return json.loads(out)

    def logs(self) -> str:
        """stdout and stderr of the container so far, interleaved as docker stored them."""
        completed = docker("logs", self.name, check=False)
        return completed.stdout + completed.stderr

    def wait_healthy(self, timeout: float = HEALTHY_TIMEOUT_SECONDS) -> float:
        """Poll docker's health status until ``healthy``; return the seconds waited.

        Fails the test with the logs and the health probe's output if the container stops or the
        status is not ``healthy`` in time.
        """
        start = time.monotonic()
        while True:
            state = self.state()
            health = (state.get("Health") or {}).get("Status")
            if health == "healthy":
                return time.monotonic() - start
            if not state["Running"] or health == "unhealthy" or time.monotonic() - start > timeout:
                probes = (state.get("Health") or {}).get("Log") or []
                pytest.fail(
                    f"container {self.name} is {state['Status']} (exit {state['ExitCode']}), health "
                    f"{health!r} after {time.monotonic() - start:.0f} s\nlast probes: "
                    f"{[p.get('Output', '').strip() for p in probes[-3:]]}\nlogs:\n{self.logs()[-4000:]}"
                )
            time.sleep(0.25)
