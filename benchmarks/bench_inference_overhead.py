"""Inference speed of this checkout vs a baseline checkout (e.g. before autograd), same run, alternating.

Each measurement is a child process that imports the package from one checkout, builds VGGish on the
seeded weights of ``common.he_weights`` (eval mode, ndarray input: the fused engine, as the Embedder, CLI
and server run it) and times forwards at each batch size: the median wall time (examples/s) and the median
CPU time of the process per forward (``time.process_time``, all threads). On a loaded shared machine wall
time mostly measures the other tenants; CPU time per forward is what the code costs. Children alternate
between the two checkouts round after round; the ratios this/baseline come from neighbouring children.
Also checks that both checkouts give identical embeddings. Used to show that the autograd work left the
inference path unchanged (issue 10).

    mkdir -p ../baseline && git archive BASE_COMMIT | tar -x -C ../baseline  # a tree beside the repo
    python benchmarks/bench_inference_overhead.py --baseline ../baseline [--rounds 3] [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def child(batches: list[int], runs: int) -> dict:
    sys.path.insert(1, str(HERE))
    from common import he_weights, log_mel_batch  # the package imported by common is this child's

    from audioembed.vggish import VGGish

    model = VGGish()
    model.load_state_dict(he_weights(0))
    model.eval()
    result: dict = {"rates": {}, "cpu_ms": {}}
    for batch in batches:
        x = log_mel_batch(batch)
        model(x)  # warm-up: plans and buffers
        walls, cpus = [], []
        for _ in range(max(runs, 20 if batch == 1 else runs)):
            cpu, wall = time.process_time(), time.perf_counter()
            model(x)
            cpus.append(time.process_time() - cpu)
            walls.append(time.perf_counter() - wall)
        result["rates"][batch] = batch / statistics.median(walls)
        result["cpu_ms"][batch] = 1e3 * statistics.median(cpus)
    result["output"] = model(log_mel_batch(2, seed=7)).tolist()
    return result


def spawn(root: Path, batches: list[int], runs: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--runs", str(runs)]
    command += ["--batches", *map(str, batches)]
    env = dict(os.environ, PYTHONPATH=str(root))  # this child imports `audioembed` from root
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, cwd=root)
    if done.returncode != 0:
        raise RuntimeError(f"child for {root} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, help="root of the baseline checkout")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.batches, args.runs)))
        return
    if args.baseline is None or not (args.baseline / "audioembed" / "vggish").is_dir():
        parser.error(
            f"--baseline must be the root of a checkout with the audioembed package, got {args.baseline}"
        )
    roots = {"this": HERE.parent, "baseline": args.baseline.resolve()}
    load = os.getloadavg()[0]
    rounds = []
    for index in range(args.rounds):
        order = list(roots) if index % 2 == 0 else list(roots)[::-1]
        rounds.append({name: spawn(roots[name], args.batches, args.runs) for name in order})
    print(f"VGGish inference (eval mode, ndarray input), this checkout vs {roots['baseline']}")
    print(f"{args.rounds} round(s), alternating; load avg {load:.1f} → {os.getloadavg()[0]:.1f}\n")
    print(
        f"{'batch':>5}{'this ex/s':>11}{'base ex/s':>11}{'wall this/base':>16}"
        f"{'this CPU ms':>13}{'base CPU ms':>13}{'CPU base/this':>15}{'min':>6}{'max':>6}"
    )
    for batch in args.batches:
        key = str(batch)
        this = [r["this"]["rates"][key] for r in rounds]
        base = [r["baseline"]["rates"][key] for r in rounds]
        cpu_this = [r["this"]["cpu_ms"][key] for r in rounds]
        cpu_base = [r["baseline"]["cpu_ms"][key] for r in rounds]
        wall = [t / b for t, b in zip(this, base, strict=True)]
        cpu = [b / t for t, b in zip(cpu_this, cpu_base, strict=True)]
        print(
            f"{batch:>5}{statistics.median(this):>11.1f}{statistics.median(base):>11.1f}"
            f"{statistics.median(wall):>16.2f}{statistics.median(cpu_this):>13.1f}"
            f"{statistics.median(cpu_base):>13.1f}{statistics.median(cpu):>15.2f}{min(cpu):>6.2f}{max(cpu):>6.2f}"
        )
    same = all(np.array_equal(r["this"]["output"], r["baseline"]["output"]) for r in rounds)
    print(f"\nembeddings identical to the baseline's: {same}")


if __name__ == "__main__":
    main()
