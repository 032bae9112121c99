"""``serve --processes 2`` against one process at 16 clients, and the memory each extra process adds.

Throughput: two servers run side by side on loopback (``--processes 1`` and ``--processes 2``, synthetic
weights unless ``--weights``); each round sends the same clips from ``--clients`` concurrent clients (one
channel, hence one connection, each: the kernel spreads connections over the processes) to one server,
then the other, alternating which goes first, so both see the same machine load. Reported: medians over
rounds of examples/s and of the per-round ratio.

Memory: then, one server at a time (so nothing else maps the weights file and PSS is not split with the
other server), ``--processes`` 1, 2 and 3 after one round of load: PSS, USS (private pages) and RSS of every
process from ``/proc/PID/smaps_rollup`` (Linux). The cost of one more process is the growth of the group's
total PSS from 2 to 3 processes; RSS would count the shared weight pages once per process.

    python benchmarks/bench_scaleout.py                   # 5 rounds of 32 x 2 s clips, 16 clients
    python benchmarks/bench_scaleout.py --rounds 7 --requests 48
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "server"), str(ROOT / "benchmarks")]

from audioembed_server import SERVICE_NAME, EmbeddingClient  # noqa: E402
from bench_service import make_clips  # noqa: E402

from audioembed import cli  # noqa: E402

MIB = 1024.0


def start_server(weights: Path, processes: int) -> tuple[subprocess.Popen, str, list[int]]:
    """``audioembed serve --processes N`` on a free loopback port; (process, address, server pids)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "server")])}
    command = [sys.executable, "-m", "audioembed.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    command += ["--weights", str(weights), "--processes", str(processes), "--workers", "16"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = process.stdout.readline()
    match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"bench_scaleout: the server did not start: {line!r}")
    address = f"127.0.0.1:{match[1]}"
    children = [int(p) for p in re.findall(r"\d+", line.partition("pids")[2])]
    pids = [process.pid, *children]
    # Every process must be ready: new connections land on any of them.
    deadline = time.monotonic() + 120
    ready = 0
    while ready < 8 * processes:
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("bench_scaleout: the server never became ready")
        with EmbeddingClient(address, timeout=10) as client:
            try:
                ready = ready + 1 if client.health(SERVICE_NAME) == "SERVING" else 0
            except Exception:  # not listening yet
                ready = 0
        time.sleep(0.02)
    return process, address, pids


def service_run(address: str, clips: list[bytes], clients: int) -> float:
    """Examples per second of ``clients`` concurrent clients sharing ``clips``, one connection each.

    gRPC shares connections between channels to the same target within a process; a local subchannel pool
    gives each client its own, as separate client programs would have, so the kernel can spread them over
    the server's processes.
    """
    pending = iter(range(len(clips)))
    lock = threading.Lock()
    examples = [0]

    def client_loop() -> None:
        options = [("grpc.use_local_subchannel_pool", 1)]
        with EmbeddingClient(address, timeout=300, channel_options=options) as client:
            while True:
                with lock:
                    index = next(pending, None)
                if index is None:
                    return
                count = client.embed(clips[index]).num_examples
                with lock:
                    examples[0] += count

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    return examples[0] / (time.perf_counter() - started)


def smaps_rollup(pid: int) -> dict[str, float]:
    """Rss, Pss and Uss (Private_Clean + Private_Dirty) of ``pid`` in MiB."""
    kb = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, value = line.partition(":")
        kb[key] = int(value.split()[0])
    return {
        "rss": kb["Rss"] / MIB,
        "pss": kb["Pss"] / MIB,
        "uss": (kb["Private_Clean"] + kb["Private_Dirty"]) / MIB,
    }


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(60)


def throughput(args: argparse.Namespace, weights: Path, clips: list[bytes]) -> None:
    servers = {n: start_server(weights, n) for n in (1, 2)}
    try:
        for _, address, _ in servers.values():
            service_run(address, clips[: args.clients], args.clients)  # warm-up: each connection's 1st call
        rates: dict[int, list[float]] = {1: [], 2: []}
        ratios = []
        for round_index in range(args.rounds):
            order = (1, 2) if round_index % 2 == 0 else (2, 1)
            for n in order:
                rates[n].append(service_run(servers[n][1], clips, args.clients))
            ratios.append(rates[2][-1] / rates[1][-1])
    finally:
        for process, _, _ in servers.values():
            stop(process)
    clip_text = f"{args.requests} x {args.clip_seconds:g} s clips"
    print(f"{args.clients} clients, {clip_text} per round, {args.rounds} rounds")
    for n in (1, 2):
        spread = f"{min(rates[n]):.1f}..{max(rates[n]):.1f}"
        print(f"--processes {n}: median {statistics.median(rates[n]):.1f} examples/s (rounds {spread})")
    spread = f"{min(ratios):.2f}..{max(ratios):.2f}"
    print(f"ratio 2 / 1 processes: median {statistics.median(ratios):.2f} (rounds {spread})")


def memory(args: argparse.Namespace, weights: Path, clips: list[bytes]) -> None:
    print(f"memory after one round of load, MiB (weights file {weights.stat().st_size / MIB / MIB:.0f} MiB):")
    header = f"{'processes':>9} {'total PSS':>9} {'total RSS':>9} {'supervisor PSS':>14}"
    print(f"{header}  per server process PSS / USS")
    totals = {}
    for n in (1, 2, 3):
        process, address, pids = start_server(weights, n)
        try:
            service_run(address, clips, args.clients)
            stats = [smaps_rollup(pid) for pid in pids]
        finally:
            stop(process)
        servers = stats if n == 1 else stats[1:]  # one process serves itself; N > 1 adds a supervisor
        supervisor = "-" if n == 1 else f"{stats[0]['pss']:.0f}"
        totals[n] = sum(s["pss"] for s in stats)
        per = ", ".join(f"{s['pss']:.0f} / {s['uss']:.0f}" for s in servers)
        print(f"{n:>9} {totals[n]:>9.0f} {sum(s['rss'] for s in stats):>9.0f} {supervisor:>14}  {per}")
    print(f"one more server process adds {totals[3] - totals[2]:.0f} MiB of PSS (3 vs 2 processes)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="weights file (default: synthetic, made in a temp dir)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per server; medians are reported")
    parser.add_argument("--requests", type=int, default=32, help="requests (clips) per round")
    parser.add_argument("--clip-seconds", type=float, default=2.0, help="length of each clip")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--skip-memory", action="store_true", help="only the throughput comparison")
    args = parser.parse_args(argv)
    if args.rounds < 3:
        parser.error(f"--rounds must be at least 3 for a meaningful median, got {args.rounds}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        weights = args.weights
        if weights is None:
            weights = Path(tmp) / "synthetic.safetensors"
            cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)])
        clips = make_clips(args.requests, args.clip_seconds)
        throughput(args, weights, clips)
        if not args.skip_memory:
            memory(args, weights, clips)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
