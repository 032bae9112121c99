"""One optimizer step over VGGish's 72.1 M float32 parameters: ours vs ``torch.optim`` (when installed).

Gradients are random and fixed; each configuration takes ``--runs`` steps after a warm-up step (which also
allocates the state) and reports the median. Rounds alternate which engine goes first; the ours/torch time
ratio of a configuration is the median over rounds of the ratio of the two neighbouring measurements, so
compare ratios, not absolute times, on a shared machine. torch runs in this process with 2 threads (the
machine's cores); it is dev-only (``pip install torch==2.13.0``) and skipped when missing.

    python benchmarks/bench_optim.py [--rounds 3] [--runs 5]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from audioembed.nn import Parameter
from audioembed.nn.optim import SGD, Adam, AdamW
from audioembed.vggish import params

CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "SGD momentum 0.9": ("SGD", {"lr": 1e-3, "momentum": 0.9}),
    "SGD momentum + weight decay": ("SGD", {"lr": 1e-3, "momentum": 0.9, "weight_decay": 1e-4}),
    "Adam": ("Adam", {"lr": 1e-3}),
    "AdamW amsgrad": ("AdamW", {"lr": 1e-3, "amsgrad": True}),
}
OURS = {"SGD": SGD, "Adam": Adam, "AdamW": AdamW}


def median_step(step: Callable[[], Any], runs: int) -> float:
    step()  # warm-up: allocates the optimizer state
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ours = [Parameter(rng.standard_normal(v.shape, dtype=np.float32)) for v in params.VARIABLES]
    for p in ours:
        p.grad = rng.standard_normal(p.shape, dtype=np.float32)
    torch = None
    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(2)
        theirs = [torch.nn.Parameter(torch.from_numpy(p.data.copy())) for p in ours]
        for t, p in zip(theirs, ours, strict=True):
            t.grad = torch.from_numpy(p.grad.copy())
    total = sum(p.data.size for p in ours)
    print(f"{total:,} float32 parameters in {len(ours)} arrays; median of {args.runs} steps per measurement")
    for name, (kind, options) in CONFIGS.items():
        mine, ratios = [], []
        for round_ in range(args.rounds):
            ours_step = OURS[kind](ours, **options).step
            if torch is None:
                mine.append(median_step(ours_step, args.runs))
                continue
            torch_step = getattr(torch.optim, kind)(theirs, **options).step
            if round_ % 2 == 0:
                a, b = median_step(ours_step, args.runs), median_step(torch_step, args.runs)
            else:
                b, a = median_step(torch_step, args.runs), median_step(ours_step, args.runs)
            mine.append(a)
            ratios.append(a / b)
        line = f"{name:30s} ours {statistics.median(mine) * 1e3:7.1f} ms"
        if ratios:
            rounds = ", ".join(f"{r:.2f}" for r in ratios)
            line += f"   ours/torch time {statistics.median(ratios):.2f} (rounds: {rounds})"
        print(line)


if __name__ == "__main__":
    main()
