"""Resampler speed (× real time, one core) and how far the fast method lands from the reference.

Run from the repository root::

    python benchmarks/bench_resample.py               # 7 timed runs per case, 10 s signals
    python benchmarks/bench_resample.py --runs 5 --seconds 4 --threads 2

Every case is timed ``--runs`` times, interleaved with the other cases so that a slow spell of the shared
machine hits all of them, with BLAS limited to ``--threads`` threads; the table shows the median and the
spread (min–max) of wall-clock speed, and the median speed in process CPU time, which a crowded machine
inflates less (with one thread, CPU time is the time the work needed on the core it got).

Cases: one-shot ``resample`` with ``method="reference"`` and ``"fast"``, and the
``StreamingResampler`` fed 1 s blocks (reference). If resampy happens to be installed (dev only), it is
timed in the same runs and the table gives our speed-up over it.

The signal is realistic rather than white: a speech-like harmonic glide with syllable-rate amplitude
modulation, a log chirp up to 0.45 × the input rate and band-limited noise, at about -6 dBFS, generated at
each input rate. The last table gives the largest difference between the fast and the reference method,
over the whole output and away from the edges (where the two filters see different zero padding).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audioembed.audio.resample import StreamingResampler, resample  # noqa: E402

PAIRS = [(44100, 16000), (48000, 16000), (8000, 16000), (96000, 16000)]
TARGET_X_REALTIME = 150.0  # the resampler's share of the front-end's 100x budget, 44.1 kHz -> 16 kHz


def realistic_signal(rate: int, seconds: float, *, seed: int = 0) -> np.ndarray:
    """A speech-and-music-like test signal at ``rate`` Hz, float64 [n], peak below 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    f0 = 140 + 60 * np.sin(2 * np.pi * 0.3 * t)  # gliding pitch
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 25) if k * 200 < 0.45 * rate)
    voice *= 0.5 * (1 + np.sin(2 * np.pi * 4 * t))  # syllable rate
    top = 0.45 * rate
    chirp = np.sin(2 * np.pi * 100 * seconds / np.log(top / 100) * ((top / 100) ** (t / seconds) - 1))
    noise = np.convolve(rng.standard_normal(t.shape[0]), np.hanning(9) / 4, mode="same")
    x = 0.25 * voice + 0.15 * chirp + 0.05 * noise
    return 0.5 * x / np.max(np.abs(x))


def _streamed(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    r = StreamingResampler(rate_in, rate_out)
    parts = [r.process(x[i : i + rate_in]) for i in range(0, x.shape[0], rate_in)]
    return np.concatenate([*parts, r.flush()])


def _cases(pairs: list[tuple[int, int]], seconds: float) -> dict[str, tuple[float, Callable[[], object]]]:
    """Name → (seconds of audio, callable) for every timed case."""
    try:
        import resampy  # dev-only comparison
    except ImportError:
        resampy = None
    cases: dict[str, tuple[float, Callable[[], object]]] = {}
    for rate_in, rate_out in pairs:
        x = realistic_signal(rate_in, seconds)
        name = f"{rate_in // 1000}k->{rate_out // 1000}k"
        cases[f"{name} reference"] = (seconds, lambda x=x, a=rate_in, b=rate_out: resample(x, a, b))
        cases[f"{name} fast"] = (seconds, lambda x=x, a=rate_in, b=rate_out: resample(x, a, b, method="fast"))
        cases[f"{name} streaming 1 s blocks"] = (
            seconds,
            lambda x=x, a=rate_in, b=rate_out: _streamed(x, a, b),
        )
        if resampy is not None:
            cases[f"{name} resampy 0.4"] = (
                seconds,
                lambda x=x, a=rate_in, b=rate_out: resampy.resample(x, a, b, filter="kaiser_best"),
            )
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per case (median reported; >= 5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each test signal")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads")
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error(f"--runs must be at least 5, got {args.runs}")

    cases = _cases(PAIRS, args.seconds)
    times: dict[str, list[float]] = {name: [] for name in cases}
    cpu: dict[str, list[float]] = {name: [] for name in cases}
    with threadpool_limits(args.threads):
        for _, run in cases.values():  # warm-up: tables, filter banks, scipy import, numba compilation
            run()
        for _ in range(args.runs):
            for name, (_, run) in cases.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                run()
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)

    print(f"resampler speed: {args.runs} runs, {args.seconds:g} s signals, {args.threads} BLAS thread(s)")
    print(f"{'case':<34}{'median ms':>10}{'x real time':>13}{'spread':>12}{'x (CPU)':>10}{'vs resampy':>12}")
    for name, (seconds, _) in cases.items():
        med = statistics.median(times[name])
        lo, hi = seconds / max(times[name]), seconds / min(times[name])
        peer = name.rsplit(" ", 1)[0] if name.endswith("reference") else None
        ref_name = f"{peer} resampy 0.4" if peer else None
        ratio = f"{statistics.median(times[ref_name]) / med:.1f}x" if ref_name in times else ""
        speed_cpu = seconds / statistics.median(cpu[name])
        print(
            f"{name:<34}{1e3 * med:>10.1f}{seconds / med:>13.0f}{f'{lo:.0f}-{hi:.0f}':>12}"
            f"{speed_cpu:>10.0f}{ratio:>12}"
        )
    key = "44k->16k reference"
    if key in times:
        speed = args.seconds / statistics.median(times[key])
        speed_cpu = args.seconds / statistics.median(cpu[key])
        verdict = "meets" if speed >= TARGET_X_REALTIME else "MISSES"
        print(
            f"44.1 kHz -> 16 kHz reference: {speed:.0f}x real time wall-clock ({speed_cpu:.0f}x in CPU "
            f"time), {verdict} the {TARGET_X_REALTIME:.0f}x target"
        )

    print("\nfast (resample_poly) vs reference (resampy kaiser_best), same realistic signal:")
    print(f"{'pair':<14}{'max |diff|':>12}{'interior':>12}{'rms diff':>12}")
    for rate_in, rate_out in PAIRS:
        x = realistic_signal(rate_in, args.seconds)
        ref = resample(x, rate_in, rate_out)
        diff = np.abs(resample(x, rate_in, rate_out, method="fast") - ref)
        edge = rate_out // 10  # 0.1 s at each end
        print(
            f"{rate_in // 1000}k->{rate_out // 1000}k".ljust(14)
            + f"{diff.max():>12.2e}{diff[edge:-edge].max():>12.2e}{np.sqrt(np.mean(diff**2)):>12.2e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
