#!/usr/bin/env python3
"""Make a labelled sound data set offline: spoken words (espeak-ng) and non-speech classes, in noise.

Spoken classes are words said by ``espeak-ng`` (Debian package ``espeak-ng``) in several voices, speeds
and pitches; non-speech classes are tones, chirps, click trains and noise bursts drawn from NumPy. Every
clip is placed at a random offset in a fixed-length clip and mixed with background noise (white, pink or
brown) at one of several signal-to-noise ratios, so a classifier must find the sound, not the silence.
The output is a folder per label of 16 kHz 16-bit WAV files, plus ``manifest.csv`` (path, label, voice,
speed, pitch, SNR) describing how each was made. Everything derives from ``--seed``.

    python scripts/make_demo_dataset.py -o demo-data --per-class 40 --seed 0
    python scripts/make_demo_dataset.py -o demo-data --no-speech      # without espeak-ng (CI, tests)
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000  # Hz: VGGish's rate, so the demo's clips need no resampling
WORDS = ("yes", "no", "up", "down", "stop", "go")  # short commands, as in the speech-commands data sets
VOICES = ("en", "en-us", "en-gb-x-rp", "en+m3", "en+f2", "en+f4")  # espeak-ng voices and variants
SPEEDS = (120, 150, 175, 210)  # words per minute
PITCHES = (25, 45, 60, 80)  # espeak-ng pitch, 0..99
SNRS_DB = (20.0, 10.0, 5.0)  # signal-to-noise ratios of the mix
NON_SPEECH = ("tone", "chirp", "clicks", "noise_burst")


def tone(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A steady sine (200 Hz - 3 kHz) with a few harmonics and a smooth envelope."""
    t = np.arange(round(seconds * RATE)) / RATE
    f0 = rng.uniform(200.0, 3000.0)
    wave = sum((0.6**k) * np.sin(2 * np.pi * f0 * (k + 1) * t + rng.uniform(0, 2 * np.pi)) for k in range(3))
    return wave * np.hanning(t.size) ** 0.25


def chirp(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """An exponential sweep between 200 Hz and 6 kHz, up or down."""
    t = np.arange(round(seconds * RATE)) / RATE
    low, high = rng.uniform(200.0, 600.0), rng.uniform(3000.0, 6000.0)
    start, end = (low, high) if rng.random() < 0.5 else (high, low)
    rate = np.log(end / start) / seconds
    phase = 2 * np.pi * start * (np.exp(rate * t) - 1.0) / rate
    return np.sin(phase) * np.hanning(t.size) ** 0.25


def clicks(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A train of short decaying clicks, 4 - 20 per second, slightly irregular."""
    n = round(seconds * RATE)
    out = np.zeros(n)
    click = np.exp(-np.arange(64) / 6.0) * rng.choice([-1.0, 1.0], 64)
    position = 0.0
    per_second = rng.uniform(4.0, 20.0)
    while True:
        position += RATE / per_second * rng.uniform(0.8, 1.2)
        start = int(position)
        if start + click.size >= n:
            return out
        out[start : start + click.size] += click


def noise_burst(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Band-passed noise bursts of 50 - 300 ms."""
    n = round(seconds * RATE)
    out = np.zeros(n)
    for _ in range(rng.integers(2, 6)):
        length = int(rng.uniform(0.05, 0.3) * RATE)
        start = int(rng.integers(0, max(1, n - length)))
        spectrum = np.fft.rfft(rng.standard_normal(length))
        freqs = np.fft.rfftfreq(length, 1.0 / RATE)
        centre = rng.uniform(500.0, 5000.0)
        spectrum *= np.exp(-0.5 * ((freqs - centre) / (0.3 * centre)) ** 2)
        out[start : start + length] += np.fft.irfft(spectrum, length) * np.hanning(length)
    return out


GENERATORS: dict[str, Callable[[np.random.Generator, float], np.ndarray]] = {
    "tone": tone,
    "chirp": chirp,
    "clicks": clicks,
    "noise_burst": noise_burst,
}


def background(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink (1/f) or brown (1/f^2) noise of unit RMS."""
    colour = rng.choice(["white", "pink", "brown"])
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / RATE), 20.0)
    if colour == "pink":
        spectrum /= np.sqrt(freqs)
    elif colour == "brown":
        spectrum /= freqs
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def place_in_noise(rng: np.random.Generator, signal: np.ndarray, seconds: float, snr_db: float) -> np.ndarray:
    """Put ``signal`` at a random offset in a clip of ``seconds`` of noise at ``snr_db`` (by active RMS)."""
    n = round(seconds * RATE)
    signal = signal[:n]
    clip = np.zeros(n)
    start = int(rng.integers(0, n - signal.size + 1))
    clip[start : start + signal.size] = signal
    signal_rms = np.sqrt(np.mean(signal**2)) + 1e-12
    mixed = clip + background(rng, n) * signal_rms / 10 ** (snr_db / 20.0)
    return 0.5 * mixed / np.max(np.abs(mixed))  # peak at -6 dBFS: no clipping in 16 bits


def speak(word: str, voice: str, speed: int, pitch: int) -> np.ndarray:
    """``word`` said by espeak-ng, as float samples at :data:`RATE`."""
    from audioembed.audio import resample  # the project's resampler: the demo needs no other package

    completed = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", word],
        check=True,
        capture_output=True,
    )
    samples, rate = sf.read(io.BytesIO(completed.stdout), dtype="float64")
    samples = samples if samples.ndim == 1 else samples.mean(axis=1)
    nonzero = np.flatnonzero(np.abs(samples) > 1e-3)  # trim espeak's leading/trailing silence
    samples = samples[nonzero[0] : nonzero[-1] + 1] if nonzero.size else samples
    return resample(samples, rate, RATE, method="fast") if rate != RATE else samples


def make_dataset(
    root: Path, *, per_class: int, seconds: float, seed: int, speech: bool = True
) -> list[dict[str, str]]:
    """Write the data set under ``root``; return the manifest rows."""
    rng = np.random.default_rng(seed)
    rows = []
    labels = ([f"word_{w}" for w in WORDS] if speech else []) + list(NON_SPEECH)
    for label in labels:
        (root / label).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            snr = float(rng.choice(SNRS_DB))
            row = {"label": label, "snr_db": f"{snr:g}", "voice": "", "speed": "", "pitch": ""}
            if label.startswith("word_"):
                voice, speed, pitch = (
                    str(rng.choice(VOICES)),
                    int(rng.choice(SPEEDS)),
                    int(rng.choice(PITCHES)),
                )
                signal = speak(label.removeprefix("word_"), voice, speed, pitch)
                row.update(voice=voice, speed=str(speed), pitch=str(pitch))
            else:
                signal = GENERATORS[label](rng, rng.uniform(0.4, 0.8) * seconds)
            path = root / label / f"{label}_{index:03d}.wav"
            sf.write(path, place_in_noise(rng, signal, seconds, snr), RATE, subtype="PCM_16")
            rows.append({"path": path.relative_to(root).as_posix(), **row})
    with open(root / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "voice", "speed", "pitch", "snr_db"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True, help="folder to create")
    parser.add_argument("--per-class", type=int, default=40, help="clips per label (default: 40)")
    parser.add_argument("--seconds", type=float, default=2.0, help="clip length (default: 2.0)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-speech", action="store_true", help="only the non-speech classes")
    args = parser.parse_args(argv)
    if not args.no_speech and shutil.which("espeak-ng") is None:
        print("espeak-ng not found: apt-get install espeak-ng (or pass --no-speech)", file=sys.stderr)
        return 2
    if args.per_class < 1 or args.seconds < 1.0:
        print("--per-class must be >= 1 and --seconds >= 1.0", file=sys.stderr)
        return 2
    rows = make_dataset(
        args.output, per_class=args.per_class, seconds=args.seconds, seed=args.seed, speech=not args.no_speech
    )
    print(f"wrote {len(rows)} clips in {len({r['label'] for r in rows})} labels under {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
