"""Front-end speed (× real time, one core) and peak memory of a 1-hour file through the streaming path.

Run from the repository root::

    python benchmarks/bench_frontend.py            # full run: 5 timed runs per case + the 1-hour RSS check
    python benchmarks/bench_frontend.py --rss-hours 0.05 --runs 3   # a quick look

Speed: each case is timed ``--runs`` times, interleaved with the other cases so a slow spell of the shared
machine hits all of them, with BLAS limited to one thread; the table shows the median and the spread.
Memory: a 44.1 kHz stereo 16-bit WAV of ``--rss-hours`` is written block-wise into a temporary directory
(never kept), then a fresh subprocess runs :func:`audioembed.audio.iter_file_examples` over it and reports
its peak RSS (``ru_maxrss``) next to its RSS right after the imports.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audioembed import audio  # noqa: E402

SPEED_TARGETS = {"16k": 300.0, "44k": 100.0}  # × real time, from the issue
RSS_TARGET_MB = 300.0

# The child reads its high-water mark from /proc (VmHWM): unlike ru_maxrss, which Linux carries across
# exec, it cannot include the parent's memory at fork time.
_CHILD = """
import json, resource, sys, time
def peak_mb():
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
sys.path.insert(0, sys.argv[1])
from audioembed import audio
base = peak_mb()
start = time.perf_counter()
count = sum(block.shape[0] for block, _ in audio.iter_file_examples(sys.argv[2], resampler=sys.argv[3]))
seconds = time.perf_counter() - start
print(json.dumps({"examples": count, "seconds": seconds, "base_mb": base, "peak_mb": peak_mb()}))
"""


def test_signal(seconds: float, rate: int, channels: int, *, seed: int = 0, start: int = 0) -> np.ndarray:
    """Tones + noise, float64 [n, channels]: something for the STFT and resampler to chew on."""
    rng = np.random.default_rng(seed + start)
    t = (start + np.arange(round(seconds * rate))) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440.0 * t) + 0.2 * np.sin(2 * np.pi * 3100.0 * t)
    noise = 0.05 * rng.standard_normal((t.shape[0], channels))
    return np.clip(tone[:, None] + noise, -1, 1)


def time_cases(cases: dict[str, tuple[float, Callable[[], object]]], runs: int) -> dict[str, list[float]]:
    """Run every case ``runs`` times, interleaved; return the × real time of each run."""
    speeds: dict[str, list[float]] = {name: [] for name in cases}
    for _, run in cases.values():
        run()  # warm-up: imports, caches, filter tables
    for _ in range(runs):
        for name, (audio_seconds, run) in cases.items():
            start = time.perf_counter()
            run()
            speeds[name].append(audio_seconds / (time.perf_counter() - start))
    return speeds


def write_long_wav(path: Path, hours: float, *, rate: int = 44100, block_seconds: float = 60.0) -> float:
    """Write a 16-bit stereo WAV block by block (memory stays at one block); return its duration."""
    total = round(hours * 3600 * rate)
    block = round(block_seconds * rate)
    with soundfile.SoundFile(path, "w", samplerate=rate, channels=2, subtype="PCM_16", format="WAV") as out:
        for first in range(0, total, block):
            out.write(test_signal(min(block, total - first) / rate, rate, 2, start=first))
    return total / rate


def measure_rss(hours: float, resampler: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "long_44k1_stereo.wav"
        duration = write_long_wav(path, hours)
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, str(ROOT), str(path), resampler],
            check=True,
            capture_output=True,
            text=True,
        )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["duration"] = duration
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (median reported; >= 5)")
    parser.add_argument("--seconds-16k", type=float, default=60.0, help="length of the 16 kHz test signal")
    parser.add_argument("--seconds-44k", type=float, default=20.0, help="length of the 44.1 kHz test signal")
    parser.add_argument("--rss-hours", type=float, default=1.0, help="length of the streamed file (0 = skip)")
    parser.add_argument("--rss-resampler", default="reference", choices=audio.RESAMPLER_METHODS)
    args = parser.parse_args()

    mono16 = test_signal(args.seconds_16k, 16000, 1)[:, 0]
    wav16 = io.BytesIO()
    soundfile.write(wav16, mono16, 16000, format="WAV", subtype="PCM_16")
    stereo44 = test_signal(args.seconds_44k, 44100, 2)
    s16, s44 = args.seconds_16k, args.seconds_44k
    cases = {
        "16k mono, array -> examples": (s16, lambda: audio.waveform_to_examples(mono16, 16000)),
        "16k mono, WAV bytes -> Examples": (s16, lambda: audio.extract_examples(wav16.getvalue())),
        "16k mono, WAV bytes, streaming (5 s blocks)": (
            s16,
            lambda: list(audio.iter_file_examples(wav16.getvalue(), block_seconds=5.0)),
        ),
        "44.1k stereo, array -> examples, reference": (
            s44,
            lambda: audio.waveform_to_examples(stereo44, 44100),
        ),
        "44.1k stereo, resampling alone, reference": (
            s44,
            lambda: audio.resample(audio.to_mono(stereo44), 44100, 16000, method="reference"),
        ),
        "44.1k stereo, array -> examples, fast": (
            s44,
            lambda: audio.waveform_to_examples(stereo44, 44100, resampler="fast"),
        ),
    }
    with threadpool_limits(limits=1):
        speeds = time_cases(cases, args.runs)

    print(f"\nFront-end speed, x real time on one core (median of {args.runs} interleaved runs)")
    print(f"{'case':48s} {'median':>9s} {'min':>9s} {'max':>9s} {'target':>8s}")
    for name, values in speeds.items():
        target = SPEED_TARGETS["16k"] if name == "16k mono, array -> examples" else None
        if name == "44.1k stereo, array -> examples, reference":
            target = SPEED_TARGETS["44k"]
        mark = (
            ""
            if target is None
            else (f">={target:.0f} " + ("ok" if statistics.median(values) >= target else "MISS"))
        )
        print(f"{name:48s} {statistics.median(values):9.1f} {min(values):9.1f} {max(values):9.1f} {mark:>8s}")
    resampling = statistics.median(speeds["44.1k stereo, resampling alone, reference"])
    whole = statistics.median(speeds["44.1k stereo, array -> examples, reference"])
    print(f"share of 44.1k reference time spent resampling: {whole / resampling:.0%}")

    if args.rss_hours > 0:
        print(
            f"\nPeak RSS, {args.rss_hours:g} h 44.1 kHz stereo WAV, iter_file_examples ({args.rss_resampler})"
        )
        result = measure_rss(args.rss_hours, args.rss_resampler)
        verdict = "ok" if result["peak_mb"] < RSS_TARGET_MB else "MISS"
        print(
            f"examples {result['examples']}, {result['duration'] / result['seconds']:.1f}x real time, "
            f"RSS after imports {result['base_mb']:.0f} MB, peak {result['peak_mb']:.0f} MB "
            f"(target < {RSS_TARGET_MB:.0f} MB: {verdict})"
        )


if __name__ == "__main__":
    main()
