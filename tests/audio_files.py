"""Small real audio files for tests, written with soundfile."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import soundfile as sf


def write_tone(
    path: Path,
    *,
    seconds: float,
    rate: int = 16000,
    channels: int = 1,
    subtype: str = "PCM_16",
    frequency: float = 440.0,
) -> np.ndarray:
    """Write a tone (with a little noise, so embeddings differ between files) and return what was written."""
    rng = np.random.default_rng(zlib.crc32(f"{path.name}-{seconds}-{rate}".encode()))
    t = np.arange(round(seconds * rate)) / rate
    mono = 0.5 * np.sin(2 * np.pi * frequency * t) + 0.05 * rng.standard_normal(t.size)
    samples = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype=subtype)
    return samples
