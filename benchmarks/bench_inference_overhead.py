"""Inference speed of this checkout vs a baseline checkout (e.g. before autograd), same run, alternating.

Runs ``benchmarks/bench_model.py``'s own measurement child (``--child ours``: the package's VGGish in eval
mode on ndarrays, fused engine) from each checkout in turn, round after round, and prints the median
examples/s of each and the per-round ratio this/baseline. Also checks that both produce the same
embeddings. Used to show that the autograd work left the inference path's speed unchanged (issue 10).

    git archive BASE_COMMIT | tar -x -C /tmp/base       # a baseline tree, without touching the repo
    python benchmarks/bench_inference_overhead.py --baseline /tmp/base [--rounds 3] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
from common import ROOT


def spawn(root: Path, batches: list[int], runs: int) -> dict:
    script = root / "benchmarks" / "bench_model.py"
    command = [
        sys.executable,
        str(script),
        "--child",
        "ours",
        "--runs",
        str(runs),
        "--batches",
        *map(str, batches),
    ]
    env = dict(os.environ, PYTHONPATH=str(root))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"child in {root} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="root of the baseline checkout")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if not (args.baseline / "benchmarks" / "bench_model.py").is_file():
        parser.error(f"--baseline {args.baseline} has no benchmarks/bench_model.py")
    roots = {"this": ROOT, "baseline": args.baseline.resolve()}
    load = os.getloadavg()[0]
    rounds = []
    for index in range(args.rounds):
        order = list(roots) if index % 2 == 0 else list(roots)[::-1]
        rounds.append({name: spawn(roots[name], args.batches, args.runs) for name in order})
    print(f"VGGish inference (bench_model.py child 'ours'), this checkout vs {roots['baseline']}")
    print(f"{args.rounds} round(s), alternating; load avg {load:.1f} → {os.getloadavg()[0]:.1f}\n")
    print(f"{'batch':>5}{'this ex/s':>12}{'base ex/s':>12}{'this/base':>11}{'min':>7}{'max':>7}")
    for batch in args.batches:
        key = str(batch)
        this = [r["this"]["rates"][key] for r in rounds]
        base = [r["baseline"]["rates"][key] for r in rounds]
        ratios = [t / b for t, b in zip(this, base, strict=True)]
        print(
            f"{batch:>5}{statistics.median(this):>12.1f}{statistics.median(base):>12.1f}"
            f"{statistics.median(ratios):>11.2f}{min(ratios):>7.2f}{max(ratios):>7.2f}"
        )
    same = all(np.array_equal(r["this"]["output"], r["baseline"]["output"]) for r in rounds)
    print(f"\nembeddings identical to the baseline's: {same}")


if __name__ == "__main__":
    main()
