"""``embed --engine ray`` on a 2-CPU local Ray cluster versus the local engine, same corpus, same run.

The corpus is ``bench_embed_cli.py``'s: 100 generated clips of mixed rates, channels, containers and lengths.
Each round runs, back to back in this process (medians over rounds, because the machine is noisy):

1. ``audioembed embed DIR -o OUT`` (the local engine), in a fresh process;
2. ``audioembed embed DIR -o OUT --engine ray --ray-address ADDR --actors 1`` and ``--actors 2``, in fresh
   processes joining a ``ray.init(num_cpus=2)`` cluster this script keeps running (a cluster outlives jobs;
   its start is reported once); the actors' start-up is included.
The order of the three alternates between rounds.

Then the per-row overhead of the Ray path: the same dataset layout through an actor that returns
precomputed results of the real size (no model), so what is timed is Ray's data plane (blocks, object
store, driver iteration) and the driver's conversion back to results; and the object-store traffic per row.
Last, a cost model for 5,800 hours of audio built only from those measured numbers.

``--copies K`` lists the corpus K times (hard links in K folders): the same work per clip, K times the rows,
so the fixed start-up of a job weighs K times less; it tells start-up from steady-state throughput.

Run: ``python benchmarks/bench_ray.py [--rounds 3] [--clips 100] [--copies 1]``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_embed_cli import make_clips  # noqa: E402

from audioembed import cli  # noqa: E402
from audioembed.bulk.inputs import InputFile, expand_inputs  # noqa: E402
from audioembed.bulk.runner import UNIT_FILES, split_units  # noqa: E402
from audioembed.ray import model_spec  # noqa: E402
from audioembed.ray.engine import _rows, _unit_tables  # noqa: E402

CORPUS_HOURS = 5800.0  # AudioSet-sized
CLIP_SECONDS = 10.0  # AudioSet's clip length: rows = clips


class FixedResults:
    """A stand-in for EmbedActor with no model: returns results of a real row's size, to time Ray itself."""

    def __init__(self, examples: int) -> None:
        self.examples = examples

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        count, n = len(batch["path"]), self.examples
        column = np.empty(count, dtype=object)
        out = {"path": batch["path"], "name": batch["name"]}
        for name, make in (
            ("timestamps", lambda: np.arange(n) * 0.96),
            ("embedding", lambda: np.ones((n, 128), np.float32)),
            ("quantized", lambda: np.ones((n, 128), np.uint8)),
        ):
            column = np.empty(count, dtype=object)
            for index in range(count):
                column[index] = make()
            out[name] = column
        out.update(
            error=np.full(count, None, dtype=object),
            error_type=np.full(count, None, dtype=object),
            num_examples=np.full(count, n),
            window_seconds=np.full(count, 0.96),
            hop_seconds=np.full(count, 0.96),
            duration_seconds=np.full(count, n * 0.96),
            sample_rate=np.full(count, 16000),
            short_clip=np.full(count, "none", dtype=object),
            node_id=np.full(count, "bench", dtype=object),
        )
        return out


def time_command(clips: Path, out: Path, weights: Path, *engine: str, env: dict | None = None) -> float:
    """Wall time of one ``audioembed embed`` in a fresh process (start-up and model loading included)."""
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "server")])}
    command = [sys.executable, "-m", "audioembed.cli", "embed", str(clips), "-o", str(out)]
    command += ["--weights", str(weights), "--overwrite", "--quiet", *engine]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def time_overhead(ray, spec, rows: int, examples: int) -> float:
    """Seconds per row of the Ray path without the model, in the steady state: from the first row the driver
    receives to the last (the pool's start-up is outside that window); median of 3."""

    def run() -> float:
        files = [InputFile(Path(f"/nowhere/{i}.wav"), PurePosixPath(f"{i}")) for i in range(rows)]
        dataset = ray.data.from_blocks(_unit_tables(split_units(files, UNIT_FILES)))
        out = dataset.map_batches(
            FixedResults,
            batch_size=UNIT_FILES,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=2),
            num_cpus=1,
            fn_constructor_kwargs={"examples": examples},
        )
        first = None
        for _ in _rows(out, {str(f.relative_name): f for f in files}, spec, True):
            first = first or time.perf_counter()
        return (time.perf_counter() - first) / (rows - 1)

    return statistics.median(run() for _ in range(3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--copies", type=int, default=1, help="list the corpus this many times")
    parser.add_argument("--overhead-rows", type=int, default=4000)
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as temp:
        temp_dir = Path(temp)
        clips = temp_dir / "clips"
        (clips / "copy0").mkdir(parents=True)
        audio_seconds = make_clips(clips / "copy0", args.clips, 0) * args.copies
        for copy in range(1, args.copies):
            (clips / f"copy{copy}").mkdir()
            for clip in (clips / "copy0").iterdir():
                os.link(clip, clips / f"copy{copy}" / clip.name)
        weights = temp_dir / "synthetic.safetensors"
        cli.main(["weights", "synth", "--seed", "0", "-o", str(weights)])
        files = expand_inputs([str(clips)])
        spec = model_spec(weights)
        started = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        ray_start = time.perf_counter() - started
        ray.data.DataContext.get_current().enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        address = ray.get_runtime_context().gcs_address  # each command joins this running cluster
        engines = {
            "local": (),
            # What Ray does for an actor with num_cpus=1: OpenBLAS without helper threads (they spin on a
            # loaded machine); tells the engines' difference from the environment's.
            "local 1thr": ("OPENBLAS_NUM_THREADS=1",),
            "ray x1": ("--engine", "ray", "--ray-address", address, "--actors", "1"),
            "ray x2": ("--engine", "ray", "--ray-address", address, "--actors", "2"),
        }
        rounds: dict[str, list[float]] = {name: [] for name in engines}
        for round_index in range(args.rounds):
            order = list(engines) if round_index % 2 == 0 else list(reversed(engines))
            for name in order:
                out = temp_dir / name.replace(" ", "")
                flags = [flag for flag in engines[name] if "=" not in flag]
                env = dict(flag.split("=", 1) for flag in engines[name] if "=" in flag)
                rounds[name].append(time_command(clips, out, weights, *flags, env=env))
            print(f"round {round_index}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in rounds.items()))
        total_examples = sum(int(np.load(p)["timestamps"].size) for p in (temp_dir / "rayx2").rglob("*.npz"))
        mean_examples = max(1, round(total_examples / len(files)))
        overhead = time_overhead(ray, spec, args.overhead_rows, round(CLIP_SECONDS / 0.96))
        ray.shutdown()

    medians = {name: statistics.median(times) for name, times in rounds.items()}
    print(
        f"\n{len(files)} clips, {audio_seconds:.1f} s of audio, {total_examples} examples; "
        f"ray start {ray_start:.1f} s"
    )
    for name, wall in medians.items():
        ratio = medians["local"] / wall
        print(
            f"{name:10s} median {wall:6.2f} s  {audio_seconds / wall:6.1f}x real time  "
            f"throughput vs local {ratio:5.0%}  (rounds: {', '.join(f'{t:.2f}' for t in rounds[name])})"
        )
    best = min(("ray x1", "ray x2"), key=lambda name: medians[name])
    for reference in ("local", "local 1thr"):
        ratio = medians[reference] / medians[best]
        verdict = "MET" if ratio >= 0.9 else "NOT MET"
        print(f"goal >= 90% of {reference} throughput: {verdict} ({best}: {ratio:.0%})")

    window_bytes = 128 * 4 + 128 + 8  # raw float32 + quantized uint8 + timestamp
    row_bytes = mean_examples * window_bytes + 120  # + path, name and the scalar columns (measured ~120 B)
    print(
        f"\nRay path per-row overhead (no model, steady state, {args.overhead_rows} rows of 10 windows): "
        f"{overhead * 1e3:.2f} ms"
    )
    print(
        f"object-store traffic per 10 s clip: ~{(10 * window_bytes + 120) / 1e3:.1f} kB "
        "(a path in, results out)"
    )

    # Cost model: per-CPU throughput from the best Ray configuration on 2 CPUs.
    per_cpu = audio_seconds / medians[best] / 2  # seconds of audio per second, per CPU
    clips_total = CORPUS_HOURS * 3600 / CLIP_SECONDS
    cpu_hours = CORPUS_HOURS * 3600 / per_cpu / 3600
    driver_hours = clips_total * overhead / 3600  # if the driver's per-row cost were the only limit
    traffic_gb = clips_total * (10 * window_bytes + 120) / 1e9
    print(f"\ncost model for {CORPUS_HOURS:.0f} h of audio ({clips_total / 1e6:.2f} M clips of 10 s):")
    print(f"  per-CPU throughput {per_cpu:.1f}x real time -> {cpu_hours:,.0f} CPU-hours")
    print(f"  driver per-row cost alone: {driver_hours:.1f} h (a floor on wall time, one driver)")
    print(f"  results through the object store: {traffic_gb:.1f} GB; weights: 0 (path) or 0.29 GB per node")
    for cpus in (16, 32, 64):
        for hours in (24, 8):
            nodes = math.ceil(cpu_hours / (cpus * hours))
            print(f"  {cpus}-CPU nodes, done in {hours:2d} h: {nodes:4d} nodes")
    print(f"  ({row_bytes} B per corpus row here, {mean_examples} windows per clip on average)")


if __name__ == "__main__":
    main()
