"""Where a server's BLAS thread limit must live, and why the library pins the count instead of restoring it.

Variants, each a fresh single-process ``audioembed serve`` under ``--clients`` concurrent clients:

* ``pinned``: as shipped: ``serve`` pins the whole process to one BLAS thread at start
  (``serve_command.limit_blas_threads``), and the library's stages pin it too (a no-op by then);
* ``library``: the library alone (``limit_blas_threads`` replaced by a no-op): its first stage pins the
  count to 1 (``audioembed.blas``);
* ``toggling``: no ``serve`` pin, and every stage sets the count to 1 and restores the process default when
  the last stage in flight leaves (reference-counted): the library's behaviour before it pinned.

Starts alternate between variants, so all see the same machine load. Per start: examples/s over
``--rounds`` rounds after a warm-up, and the server's CPU seconds per example (``/proc/PID/stat``); a start
whose CPU per example is over 4x the pinned variant's median is counted as spinning.

    python benchmarks/bench_blas_threads.py                # 3 starts per variant, 16 clients
    python benchmarks/bench_blas_threads.py --starts 5 --variants pinned library
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "benchmarks")]

from audioembed_server import SERVICE_NAME, EmbeddingClient  # noqa: E402
from bench_scaleout import service_run  # noqa: E402
from bench_service import make_clips  # noqa: E402

from audioembed import cli  # noqa: E402

# (before the library is imported, after the server is) in the server process: what each variant changes.
_TOGGLING = """
import contextlib, sys, threading
from audioembed import blas
lock, state = threading.Lock(), {"depth": 0, "saved": None}

@contextlib.contextmanager
def toggling(n):
    controllers = blas._controllers()
    with lock:
        if state["depth"] == 0:
            state["saved"] = [c.num_threads for c in controllers]
            for c in controllers:
                c.set_num_threads(n)
        state["depth"] += 1
    try:
        yield
    finally:
        with lock:
            state["depth"] -= 1
            if state["depth"] == 0:
                for c, saved in zip(controllers, state["saved"]):
                    c.set_num_threads(saved)

# Before any stage's module is imported, so that every `from audioembed.blas import blas_threads` gets it.
stages = ("audioembed.audio", "audioembed.nn", "audioembed.pipeline")
assert not any(m.startswith(stages) for m in sys.modules)
blas.blas_threads = toggling
"""
_PATCHES = {
    "pinned": ("", ""),
    "library": ("", "serve_command.limit_blas_threads = lambda: None"),
    "toggling": (_TOGGLING, "serve_command.limit_blas_threads = lambda: None"),
}
_SERVE = """
import sys
{early}
from audioembed_server import serve_command
{patch}
from audioembed import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def start_server(weights: Path, variant: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "server")])}
    early, patch = _PATCHES[variant]
    command = [sys.executable, "-c", _SERVE.format(early=early, patch=patch), "serve", "--host", "127.0.0.1"]
    command += ["--port", "0", "--weights", str(weights), "--processes", "1", "--workers", "16"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", process.stdout.readline())
    if not match:
        process.kill()
        raise SystemExit("bench_blas_threads: the server did not start")
    address = f"127.0.0.1:{match[1]}"
    deadline = time.monotonic() + 120
    with EmbeddingClient(address, timeout=10) as client:
        while True:
            try:
                if client.health(SERVICE_NAME) == "SERVING":
                    return process, address
            except Exception:  # not listening yet
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit("bench_blas_threads: the server never became ready")
            time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (all its threads), from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_start(
    weights: Path, variant: str, clips: list[bytes], args: argparse.Namespace
) -> tuple[float, float]:
    """(median examples/s over the rounds, CPU seconds per example) of one fresh server."""
    process, address = start_server(weights, variant)
    try:
        service_run(address, clips[: args.clients], args.clients)  # warm-up: each connection's first call
        examples_per_clip = 2  # make_clips(…, 2.0): 2 s at the default 0.96 s hop
        cpu_before = cpu_seconds(process.pid)
        rates = [service_run(address, clips, args.clients) for _ in range(args.rounds)]
        cpu = cpu_seconds(process.pid) - cpu_before
    finally:
        process.terminate()
        process.wait(60)
    return statistics.median(rates), cpu / (args.rounds * len(clips) * examples_per_clip)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=3, help="fresh servers per variant")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per server start")
    parser.add_argument("--requests", type=int, default=32, help="2 s clips per round")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--variants", nargs="+", default=list(_PATCHES), choices=list(_PATCHES))
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "synthetic.safetensors"
        cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)])
        clips = make_clips(args.requests, 2.0)
        for start in range(args.starts):
            order = args.variants if start % 2 == 0 else args.variants[::-1]
            for variant in order:
                rate, cpu = one_start(weights, variant, clips, args)
                results[variant].append((rate, cpu))
                line = f"{rate:6.1f} examples/s, {cpu * 1e3:7.1f} CPU-ms/example"
                print(f"start {start + 1} {variant:>8}: {line}", flush=True)
    reference = statistics.median(c for _, c in results.get("pinned") or results[args.variants[0]])
    print(f"{args.clients} clients, {args.requests} x 2 s clips per round, {args.rounds} rounds per start")
    for variant, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        spinning = sum(c > 4 * reference for _, c in runs)
        print(
            f"{variant:>8}: median {rate:.1f} examples/s, {cpu * 1000:.1f} CPU-ms/example "
            f"(x{cpu / reference:.2f} of the reference), {spinning} of {len(runs)} starts spinning"
        )
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
