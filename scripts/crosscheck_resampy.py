"""Dev-only: compare ``audioembed.audio.resample`` with resampy 0.4.3 itself, across many rates.

Needs resampy (and so numba), which the project never needs at run time::

    pip install resampy==0.4.3       # into a scratch environment
    python scripts/crosscheck_resampy.py [--seconds 3]

For every rate pair it resamples the same signals with ``resampy.resample(x, rate_in, rate_out)``
(``kaiser_best``, float64) and reports the largest absolute difference of

- ``direct``: our direct form (``_kaiser_interp.interpolate_direct``), expected to be exactly 0;
- ``resample``: the public ``resample(..., method="reference")`` (the polyphase bank), expected ~1e-15;
- ``stream``: ``StreamingResampler`` fed blocks of random sizes, expected ~1e-15;
- ``stereo``: a two-channel signal along axis 0 through ``resample``.

Signals: uniform noise in [-1, 1) and a full-scale chirp. Exit status 1 if any difference exceeds 1e-12.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audioembed.audio import _kaiser_interp as kaiser  # noqa: E402
from audioembed.audio.resample import StreamingResampler, resample  # noqa: E402

RATES_IN = [8000, 11025, 16000, 22050, 32000, 44100, 48000, 88200, 96000, 192000, 7200, 10050, 19200, 28800]
EXTRA_PAIRS = [
    (16000, 44100),
    (16000, 48000),
    (44100, 48000),
    (48000, 44100),
    (22050, 8000),
    (1000, 999),
    (11127, 16000),  # periods too long for a filter bank: the direct form alone
    (22254, 16000),
]
LIMIT = 1e-12


def _signals(rate: int, seconds: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = int(rate * seconds)
    t = np.arange(n) / rate
    return {
        "noise": rng.uniform(-1, 1, n),
        "chirp": np.sin(2 * np.pi * (50 * t + 0.45 * rate / seconds / 2 * t**2)),
    }


def _stream(x: np.ndarray, rate_in: int, rate_out: int, rng: np.random.Generator) -> np.ndarray:
    r = StreamingResampler(rate_in, rate_out)
    parts, i = [], 0
    while i < x.shape[0]:
        size = int(rng.integers(1, 3 * rate_in // 10))
        parts.append(r.process(x[i : i + size]))
        i += size
    return np.concatenate([*parts, r.flush()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each test signal")
    args = parser.parse_args(argv)
    try:
        import resampy
    except ImportError:
        print("resampy is not installed: pip install resampy==0.4.3 (dev only)", file=sys.stderr)
        return 2
    print(f"resampy {resampy.__version__}, {args.seconds:g} s signals; max |ours - resampy|")
    print(
        f"{'rate_in':>8}{'rate_out':>9}{'signal':>7}{'direct':>11}{'resample':>11}{'stream':>11}{'stereo':>11}"
    )
    rng = np.random.default_rng(0)
    worst = 0.0
    pairs = [(r, 16000) for r in RATES_IN] + EXTRA_PAIRS
    for rate_in, rate_out in pairs:
        plan = kaiser.kaiser_plan(rate_in, rate_out)
        for name, x in _signals(rate_in, args.seconds, rng).items():
            expected = resampy.resample(x, rate_in, rate_out)
            if rate_in == rate_out:
                direct = x.copy()
            else:
                t = np.arange(expected.shape[0], dtype=np.int64)
                direct = kaiser.interpolate_direct(plan, x[:, None], 0, t)[:, 0]
            stereo_in = np.stack([x, -0.5 * x[::-1]], axis=1)  # (n, 2)
            stereo_expected = resampy.resample(stereo_in, rate_in, rate_out, axis=0)
            diffs = [
                np.max(np.abs(direct - expected)),
                np.max(np.abs(resample(x, rate_in, rate_out) - expected)),
                np.max(np.abs(_stream(x, rate_in, rate_out, rng) - expected)),
                np.max(np.abs(resample(stereo_in, rate_in, rate_out) - stereo_expected)),
            ]
            worst = max(worst, *diffs)
            print(f"{rate_in:>8}{rate_out:>9}{name:>7}" + "".join(f"{d:>11.1e}" for d in diffs))
    verdict = "OK" if worst <= LIMIT else "FAIL"
    print(f"worst difference {worst:.2e} ({verdict}: limit {LIMIT:g})")
    return 0 if worst <= LIMIT else 1


if __name__ == "__main__":
    raise SystemExit(main())
