"""Repeated ``Embedder.embed_many`` calls in one process: this checkout against a baseline checkout.

The defect reported with the transfer benchmark: with BLAS limits set and restored per stage, a second
``embed_many`` in the same process ran many times slower than the first. Each child process (alternating
this checkout and ``--baseline``, ``--rounds`` times) embeds the same ``--files`` 5 s clips ``--calls``
times with one Embedder on synthetic weights, at OpenBLAS's default thread count; reported per tree: the
median over rounds of (slowest later call / first call), and the BLAS threads left after the last call.

    mkdir -p ../baseline && git archive <commit> | tar -x -C ../baseline
    python benchmarks/bench_embed_repeat.py --baseline ../baseline
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, sys, tempfile, time
from pathlib import Path
import numpy as np, soundfile as sf
from threadpoolctl import threadpool_info
from audioembed import Embedder, cli

files, calls = int(sys.argv[1]), int(sys.argv[2])
tmp = Path(tempfile.mkdtemp())
weights = tmp / "w.safetensors"
cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)])
paths = []
for i in range(files):
    t = np.arange(16000 * 5) / 16000
    paths.append(tmp / f"{i}.wav")
    sf.write(paths[-1], 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t), 16000)
embedder = Embedder(weights)
times = []
for _ in range(calls):
    start = time.perf_counter()
    list(embedder.embed_many(paths))
    times.append(time.perf_counter() - start)
print(json.dumps([times, [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]]))
"""


def run(tree: Path, args: argparse.Namespace) -> tuple[list[float], list[int]]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "server")])
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(args.files), str(args.calls)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=tree,
    ).stdout
    times, threads = json.loads(out.strip().splitlines()[-1])
    return times, threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of the repository")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args(argv)
    if args.calls < 2:
        parser.error(f"--calls must be at least 2 to compare later calls with the first, got {args.calls}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    trees = {"this": ROOT, "baseline": args.baseline.resolve()}
    slowdowns: dict[str, list[float]] = {name: [] for name in trees}
    for round_index in range(args.rounds):
        for name in trees if round_index % 2 == 0 else list(trees)[::-1]:
            times, threads = run(trees[name], args)
            slowdowns[name].append(max(times[1:]) / times[0])
            calls = ", ".join(f"{t:.2f}" for t in times)
            line = f"calls {calls} s; BLAS threads after: {threads}"
            print(f"round {round_index + 1} {name:>8}: {line}", flush=True)
    for name, values in slowdowns.items():
        print(
            f"{name:>8}: median slowest-later / first call {statistics.median(values):.2f} "
            f"(rounds {min(values):.2f}..{max(values):.2f})"
        )
    ratio = statistics.median(slowdowns["baseline"]) / statistics.median(slowdowns["this"])
    print(f"baseline / this (median slowdowns): {ratio:.2f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
