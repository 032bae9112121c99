"""End-to-end throughput of ``audioembed embed`` over a folder of 100 generated clips.

The clips mix sample rates (8 kHz to 48 kHz), channel counts, containers (WAV, FLAC) and lengths
(0.5 s to 20 s), as a real folder would. Two measurements, both printed as medians:

1. the command itself, in a fresh process per run (``--overwrite``, so every run does all the work):
   wall time and audio seconds per wall second (× real time), including start-up and model loading;
2. inside one process, where the time goes: front-end (decode, down-mix, resample, log-mel — on the
   prefetch thread, overlapping the model) versus model (VGGish + postprocessor) busy time.

Weights are synthetic (same cost as the real ones). Run: ``python benchmarks/bench_embed_cli.py``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RATES = (8000, 16000, 22050, 32000, 44100, 48000)


def make_clips(folder: Path, count: int, seed: int) -> float:
    """Write ``count`` clips of tones + noise; return their total duration in seconds."""
    rng = np.random.default_rng(seed)
    total = 0.0
    for index in range(count):
        rate = int(rng.choice(RATES))
        seconds = float(rng.choice([0.5, 1.0, 2.5, 5.0, 10.0, 20.0]))
        channels = int(rng.choice([1, 2]))
        t = np.arange(int(seconds * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 3000) * t) + 0.05 * rng.standard_normal(t.size)
        samples = np.repeat(tone[:, None], channels, axis=1)
        suffix, subtype = (".flac", "PCM_16") if index % 3 == 0 else (".wav", "PCM_16")
        sf.write(folder / f"clip{index:03d}{suffix}", samples, rate, subtype=subtype)
        total += len(t) / rate
    return total


def time_command(clips: Path, out: Path, weights: Path, runs: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "server")])}
    command = [
        sys.executable,
        "-m",
        "audioembed.cli",
        "embed",
        str(clips),
        "-o",
        str(out),
        "--weights",
        str(weights),
        "--overwrite",
        "--quiet",
    ]
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, env=env)
        times.append(time.perf_counter() - started)
    return times


def time_stages(clips: Path, weights: Path) -> tuple[float, float, float]:
    """One in-process pass: (front-end busy seconds, model busy seconds, wall seconds)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "server")]
    from audioembed import Embedder

    embedder = Embedder(weights)
    busy = {"front-end": 0.0, "model": 0.0}

    def timed(name, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                busy[name] += time.perf_counter() - started

        return wrapper

    # embed_many decodes on its worker thread through feeding.input_pieces: time each step of it there.
    import audioembed.feeding as feeding

    original_pieces = feeding.input_pieces

    def timed_pieces(source, options):
        pieces = original_pieces(source, options)
        while True:
            started = time.perf_counter()
            try:
                piece = next(pieces)
            except StopIteration:
                return
            finally:
                busy["front-end"] += time.perf_counter() - started
            yield piece

    feeding.input_pieces = timed_pieces
    embedder.run_model = timed("model", embedder.run_model)
    try:
        started = time.perf_counter()
        for _ in embedder.embed_many(sorted(clips.iterdir())):
            pass
        wall = time.perf_counter() - started
    finally:
        feeding.input_pieces = original_pieces
    return busy["front-end"], busy["model"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5, help="runs of the command (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        temp_dir = Path(temp)
        clips = temp_dir / "clips"
        clips.mkdir()
        audio_seconds = make_clips(clips, args.clips, args.seed)
        weights = temp_dir / "synthetic.safetensors"
        subprocess.run(
            [sys.executable, "-m", "audioembed.cli", "weights", "synth", "--seed", "0", "-o", str(weights)],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "server")])},
        )
        times = time_command(clips, temp_dir / "out", weights, args.runs)
        front, model, wall = time_stages(clips, weights)
    wall_median = statistics.median(times)
    print(f"\n{args.clips} clips, {audio_seconds:.1f} s of audio (rates {RATES}, mono/stereo, WAV/FLAC)")
    print(
        f"audioembed embed, fresh process each run (median of {args.runs}): {wall_median:.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}) = {audio_seconds / wall_median:.1f}x real time"
    )
    print(f"in-process embed_many: {wall:.2f} s wall = {audio_seconds / wall:.1f}x real time")
    print(
        f"  busy time: front-end {front:.2f} s, model {model:.2f} s; front-end share "
        f"{front / (front + model):.0%} (it runs on the prefetch thread, overlapping the model)"
    )


if __name__ == "__main__":
    main()
