"""Service throughput and latency against in-process ``Embedder.embed_many``, measured in the same run.

Starts ``audioembed serve`` as a subprocess on a loopback port (synthetic weights unless ``--weights``).
Each run measures in-process ``embed_many`` (batch 64) on the clips, then 1, 4 and 16 concurrent clients
sending single-clip ``Embed`` requests for the same clips, so both see the same machine load. Reported:
medians over ``--runs`` runs of throughput (examples/s) and of the per-run ratio to in-process, p50/p99
request latency, the server's RSS, and a lone request's latency against the in-process one (the cost of
the batching delay and transport). Bounded in requests and in time (``--max-seconds``).

    python benchmarks/bench_service.py                 # defaults: 5 runs, 16 requests of 4 s clips
    python benchmarks/bench_service.py --runs 7 --clip-seconds 2 --requests 32
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "server")]

from audioembed_server import SERVICE_NAME, EmbeddingClient  # noqa: E402
from audioembed_server.config import ServerConfig  # noqa: E402

from audioembed import cli  # noqa: E402
from audioembed.pipeline import Embedder  # noqa: E402

WIDTHS = (7, 11, 6, 8, 8, 8, 7)  # columns of the results table


def make_clips(count: int, seconds: float) -> list[bytes]:
    """``count`` different 16 kHz 16-bit WAV files of ``seconds`` each, as bytes."""
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        t = np.arange(round(seconds * 16000)) / 16000
        samples = 0.4 * np.sin(2 * np.pi * (200 + 25 * i) * t) + 0.05 * rng.standard_normal(t.size)
        buffer = io.BytesIO()
        sf.write(buffer, samples, 16000, format="WAV", subtype="PCM_16")
        clips.append(buffer.getvalue())
    return clips


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of ``pid`` in MiB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


def start_server(weights: Path, delay_ms: float, workers: int) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "server")])}
    command = [sys.executable, "-m", "audioembed_server", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += [
        "--weights",
        str(weights),
        "--max-batch-examples",
        "64",
        "--max-queue-delay-ms",
        str(delay_ms),
    ]
    command += ["--workers", str(workers), "--log-format", "kv"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = process.stdout.readline()
    if "listening on" not in line:
        process.kill()
        raise SystemExit(f"bench_service: the server did not start: {line!r}")
    address = "127.0.0.1:" + line.rsplit(":", 1)[1].strip()
    with EmbeddingClient(
        address, max_retries=100, initial_backoff=0.1, max_backoff=0.5, timeout=120
    ) as client:
        client.model_info()  # retried (UNAVAILABLE) until the model has loaded
        if client.health(SERVICE_NAME) != "SERVING":
            raise SystemExit("bench_service: the server never became ready")
    return process, address


def in_process_run(embedder: Embedder, clips: list[bytes]) -> float:
    """Examples per second of ``embed_many`` over ``clips``."""
    started = time.perf_counter()
    examples = sum(r.num_examples for r in embedder.embed_many(clips))
    return examples / (time.perf_counter() - started)


def service_run(address: str, clips: list[bytes], concurrency: int) -> tuple[float, list[float]]:
    """Examples per second and per-request latencies for ``concurrency`` clients sharing ``clips``."""
    latencies: list[float] = []
    lock = threading.Lock()
    next_index = iter(range(len(clips)))
    counted = [0]

    def client_loop() -> None:
        with EmbeddingClient(address, timeout=300) as client:
            while True:
                with lock:
                    index = next(next_index, None)
                if index is None:
                    return
                started = time.perf_counter()
                result = client.embed(clips[index])
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    counted[0] += result.num_examples

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(client_loop) for _ in range(concurrency)]:
            future.result()
    return counted[0] / (time.perf_counter() - started), latencies


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights file (default: synthetic, made in a temp dir)")
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement; medians are reported")
    parser.add_argument("--requests", type=int, default=16, help="requests (clips) per run")
    parser.add_argument("--clip-seconds", type=float, default=4.0, help="length of each clip")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument(
        "--delay-ms",
        type=float,
        default=ServerConfig.max_queue_delay_ms,
        help="server max queue delay (default: the server's own default)",
    )
    parser.add_argument("--workers", type=int, default=16, help="server handler threads")
    parser.add_argument("--max-seconds", type=float, default=900.0, help="stop starting new runs after this")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error(f"--runs must be at least 5 for a meaningful median, got {args.runs}")
    budget_end = time.monotonic() + args.max_seconds

    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = Path(tmp) / "synthetic.safetensors"
            cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)])
        clips = make_clips(args.requests, args.clip_seconds)
        embedder = Embedder(weights, batch_size=64)
        process, address = start_server(weights, args.delay_ms, args.workers)
        try:
            in_process_run(embedder, clips[:2])  # warm-ups
            service_run(address, clips[:2], 1)
            # Runs interleave in-process and service measurements, so both see the same machine load
            # (it is shared and noisy); ratios are taken within a run, then their median reported.
            baseline_runs: list[float] = []
            service: dict[int, list[float]] = {c: [] for c in args.concurrency}
            latencies: dict[int, list[float]] = {c: [] for c in args.concurrency}
            ratios: dict[int, list[float]] = {c: [] for c in args.concurrency}
            memory: dict[int, tuple[float, float]] = {}
            lone_pairs: list[tuple[float, float]] = []
            for _ in range(args.runs):
                if time.monotonic() > budget_end:
                    break
                baseline_runs.append(in_process_run(embedder, clips))
                for concurrency in args.concurrency:
                    throughput, run_latencies = service_run(address, clips, concurrency)
                    service[concurrency].append(throughput)
                    latencies[concurrency].extend(run_latencies)
                    ratios[concurrency].append(throughput / baseline_runs[-1])
                    memory[concurrency] = rss_mb(process.pid)
                lone_pairs.append((lone_latency(address, clips[0]), direct_latency(embedder, clips[0])))
            report(args, baseline_runs, service, latencies, ratios, memory, lone_pairs)
        finally:
            process.terminate()
            process.wait(60)
    return 0


def lone_latency(address: str, clip: bytes) -> float:
    with EmbeddingClient(address) as client:
        started = time.perf_counter()
        client.embed(clip)
        return time.perf_counter() - started


def direct_latency(embedder: Embedder, clip: bytes) -> float:
    started = time.perf_counter()
    embedder.embed(clip)
    return time.perf_counter() - started


def report(
    args: argparse.Namespace,
    baseline_runs: list[float],
    service: dict[int, list[float]],
    latencies: dict[int, list[float]],
    ratios: dict[int, list[float]],
    memory: dict[int, tuple[float, float]],
    lone_pairs: list[tuple[float, float]],
) -> None:
    runs = len(baseline_runs)
    clip_text = f"{args.requests} x {args.clip_seconds:g} s clips"
    print(f"{clip_text}; {runs} runs; server: batch 64, delay {args.delay_ms:g} ms, {args.workers} workers")
    print(f"in-process embed_many (batch 64): median {statistics.median(baseline_runs):.1f} examples/s")
    header = ("clients", "examples/s", "ratio", "p50 ms", "p99 ms", "RSS MiB", "peak")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, WIDTHS, strict=True)))
    for concurrency in args.concurrency:
        if not service[concurrency]:
            continue
        p50, p99 = (
            1000 * percentile(latencies[concurrency], 50),
            1000 * percentile(latencies[concurrency], 99),
        )
        rss, peak = memory[concurrency]
        row = (f"{concurrency}", f"{statistics.median(service[concurrency]):.1f}")
        row += (
            f"{statistics.median(ratios[concurrency]):.2f}",
            f"{p50:.0f}",
            f"{p99:.0f}",
            f"{rss:.0f}",
            f"{peak:.0f}",
        )
        print(" ".join(f"{v:>{w}}" for v, w in zip(row, WIDTHS, strict=True)))
    lone = statistics.median(1000 * (s - d) for s, d in lone_pairs)
    print(
        f"lone request: median service - in-process latency {lone:.0f} ms per pair "
        f"(service {1000 * statistics.median(s for s, _ in lone_pairs):.0f} ms; "
        f"configured delay {args.delay_ms:g} ms)"
    )


if __name__ == "__main__":
    sys.exit(main())
