"""VGGish's conv + pool stack on the fused Winograd engine vs this machine's 4096² float32 matmul.

Effective rate = direct-convolution FLOPs (2·H·W·9·Cin·Cout per layer, 1.5925 GFLOP per example) / time; the
Winograd engine does fewer real FLOPs, so this rate can exceed the matmul's. Each run times one matmul probe
and one batch through the stack back to back, so the ratio compares the two under the same machine load.

    python benchmarks/bench_conv_stack.py [--batch 64] [--runs 7] [--workers 2] [--scratch-mib 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import CONV_FLOPS, CONV_LAYERS, he_weights, log_mel_batch, matmul_gflops, timed

from audioembed.nn.fused import DEFAULT_SCRATCH_BYTES, ConvStackPlan

OPENBLAS_SPIN_SECONDS = 0.3


def build_plan(*, workers: int | None, scratch_mib: float, tile: int) -> ConvStackPlan:
    weights = he_weights(0)
    layers = [(weights[f"{name}.weight"], weights[f"{name}.bias"], pool) for name, *_, pool in CONV_LAYERS]
    return ConvStackPlan(
        layers,
        input_shape=(96, 64, 1),
        tile=tile,
        num_workers=workers,
        scratch_bytes=int(scratch_mib * 2**20),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--runs", type=int, default=7, help="timed runs (≥ 5), after 2 warm-up runs")
    parser.add_argument("--workers", type=int, default=None, help="Python worker threads (default: CPUs)")
    parser.add_argument("--scratch-mib", type=float, default=DEFAULT_SCRATCH_BYTES / 2**20)
    parser.add_argument("--tile", type=int, default=4, choices=[2, 4])
    args = parser.parse_args()
    if args.runs < 5:
        parser.error(f"--runs must be at least 5, got {args.runs}")

    plan = build_plan(workers=args.workers, scratch_mib=args.scratch_mib, tile=args.tile)
    x = log_mel_batch(args.batch)
    flops = sum(CONV_FLOPS.values()) * args.batch
    for _ in range(2):
        plan(x)
        matmul_gflops()
    conv_rates, probes, ratios = [], [], []
    for _ in range(args.runs):
        probe = matmul_gflops()
        # OpenBLAS's own threads spin for ~0.1 s after a multi-threaded call and would steal the core our
        # second worker needs: let them go to sleep first.
        time.sleep(OPENBLAS_SPIN_SECONDS)
        rate = flops / timed(lambda: plan(x)) / 1e9
        conv_rates.append(rate)
        probes.append(probe)
        ratios.append(rate / probe)
    plan.close()

    conv = statistics.median(conv_rates)
    engine = f"{plan.pool.num_workers} worker(s), F({args.tile}x{args.tile},3x3)"
    print(f"VGGish conv stack, batch {args.batch}, {engine},")
    print(f"scratch {args.scratch_mib:g} MiB/worker, chunks per stage {[s.chunk for s in plan._stages]}")
    print(f"median of {args.runs} runs after 2 warm-ups (each run: matmul probe, then the stack)\n")
    print(f"{'measure':<42}{'median':>12}{'min':>10}{'max':>10}")
    rows = [
        ("conv stack, effective GFLOP/s", conv_rates),
        ("conv stack, examples/s", [r * 1e9 / sum(CONV_FLOPS.values()) for r in conv_rates]),
        ("4096² float32 matmul, GFLOP/s", probes),
        ("ratio conv/matmul (same run)", ratios),
    ]
    for label, values in rows:
        print(f"{label:<42}{statistics.median(values):>12.3f}{min(values):>10.3f}{max(values):>10.3f}")
    print(f"\nratio of medians: {conv / statistics.median(probes):.3f}  (target ≥ 1.0)")


if __name__ == "__main__":
    main()
