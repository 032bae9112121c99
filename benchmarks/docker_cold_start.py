"""Cold start of the Docker image: seconds from ``docker run`` to the embedding service reporting SERVING.

Usage (from the repository root, with a built image)::

    docker build --network host --build-arg BASE_IMAGE=... -t audioembed .
    python benchmarks/docker_cold_start.py --image audioembed [--runs 5]

Each run starts a fresh container on the host network with synthetic weights (made once with this
checkout's ``audioembed weights synth``) mounted at ``/models``, polls ``grpc.health.v1`` from the host
every 20 ms, and removes the container. Prints the image size and, over the runs, the median, min and max
time until the health service first answers (process up) and until the embedding service is SERVING
(weights loaded, model warmed up: what the image's HEALTHCHECK waits for).
Docker's own ``healthy`` status lags this by up to one probe interval, so it is not what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO_ROOT), str(REPO_ROOT / "server")]

from audioembed_server import healthcheck  # noqa: E402  (needs the path set above)

POLL_SECONDS = 0.02
SERVICE = "audioembed.v1.EmbeddingService"  # SERVING once the model has loaded; "" only means "process up"
START_TIMEOUT_SECONDS = 120.0


def _docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _synthetic_models(directory: Path) -> list[str]:
    """Write synthetic weights into ``directory``; return the ``docker run`` options that use them."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "server")]))
    subprocess.run(
        [sys.executable, "-m", "audioembed.cli", "weights", "synth", "--seed", "0", "--output",
         str(directory / "vggish.safetensors")],
        check=True,
        env=env,
    )  # fmt: skip
    for path in [directory, *directory.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # readable by the image's uid 10001
    return ["--volume", f"{directory}:/models:ro", "--env", "AUDIOEMBED_WEIGHTS=/models/vggish.safetensors"]


def cold_start(image: str, options: list[str]) -> tuple[float, float]:
    """Seconds from launching ``docker run`` to the first answer of a fresh container's health service
    (the process is up) and to the embedding service reporting SERVING (the model is loaded)."""
    port = _free_port()
    name = f"audioembed-bench-{uuid.uuid4().hex[:12]}"
    address = f"127.0.0.1:{port}"
    start = time.perf_counter()
    _docker("run", "--detach", "--name", name, "--network", "host", "--env", f"AUDIOEMBED_PORT={port}",
            *options, image)  # fmt: skip
    up = None
    try:
        while time.perf_counter() - start < START_TIMEOUT_SECONDS:
            healthy, detail = healthcheck.check(address, service=SERVICE, timeout=1.0)
            if up is None and not detail.startswith("no answer"):
                up = time.perf_counter() - start
            if healthy:
                return up, time.perf_counter() - start
            time.sleep(POLL_SECONDS)
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, check=False)
        raise RuntimeError(f"{name} not SERVING after {START_TIMEOUT_SECONDS} s:\n{logs.stderr[-2000:]}")
    finally:
        subprocess.run(["docker", "rm", "--force", "--volumes", name], capture_output=True, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="tag of a built audioembed image")
    parser.add_argument("--runs", type=int, default=5, help="cold starts to time (default: %(default)s)")
    args = parser.parse_args()

    size = int(json.loads(_docker("image", "inspect", "--format", "{{json .Size}}", args.image)))
    print(f"image {args.image}: {size / 1e6:.0f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        options = _synthetic_models(directory)
        runs = [cold_start(args.image, options) for _ in range(args.runs)]
    for label, times in (
        ("health service answering", [r[0] for r in runs]),
        (f"{SERVICE} SERVING", [r[1] for r in runs]),
    ):
        print(
            f"docker run -> {label}, {args.runs} runs: median {statistics.median(times):.2f} s "
            f"(min {min(times):.2f}, max {max(times):.2f})"
        )


if __name__ == "__main__":
    main()
