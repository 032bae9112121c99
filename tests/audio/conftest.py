"""Helpers for the audio tests: fixture paths, reference outputs, signal generators, a naive front-end.

The files in ``tests/fixtures/reference`` are the project's shared golden set, produced by Google's original
TensorFlow VGGish code (``vggish_input.wavfile_to_examples``: int16 / 32768, mean over channels, resampy 0.4.3
``kaiser_best`` to 16 kHz, log-mel, 96-frame examples, hop 96) with numpy 2.4.6, scipy 1.17.1,
soundfile 0.14.0:

- ``sine1k_16k_3s.wav``: 16 kHz mono PCM_16, 3 s, a full-scale 1 kHz sine;
- ``speechlike_16k_10s.wav``: 16 kHz mono PCM_16, 10 s, band-limited noise + gliding harmonics;
- ``stereo_44k1_5s.wav``: 44.1 kHz stereo PCM_16, 5 s, a log chirp (left), tones and a noise burst (right);
- ``<name>.reference.npz``: ``log_mel`` float64 [N, 96, 64]; the stereo file's also holds ``waveform_16k``
  float32 [80000], the reference's down-mixed, resampled signal.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "reference"


def reference_wav(name: str) -> Path:
    """Path of a reference input, e.g. ``reference_wav("sine1k_16k_3s")``."""
    return REFERENCE_DIR / f"{name}.wav"


def reference_outputs(name: str) -> dict[str, np.ndarray]:
    """Arrays of ``<name>.reference.npz`` (made by Google's original pipeline; see the shared README)."""
    with np.load(REFERENCE_DIR / f"{name}.reference.npz") as data:
        return {key: data[key] for key in data.files}


def sine(freq_hz: float, seconds: float, rate: int, *, amplitude: float = 0.5) -> np.ndarray:
    """A sine wave, float64 [n]."""
    t = np.arange(round(seconds * rate)) / rate
    return amplitude * np.sin(2 * np.pi * freq_hz * t)


def naive_log_mel(waveform: np.ndarray) -> np.ndarray:
    """Loop twin of the vectorised front-end: explicit frames, a direct DFT, explicit mel sums.

    Parameters
    ----------
    waveform : np.ndarray [shape=(n,)], float64, 16 kHz

    Returns
    -------
    np.ndarray [shape=(F, 64)], float64
    """
    from audioembed.audio.melspec import mel_matrix

    window = np.array([0.5 - 0.5 * np.cos(2 * np.pi * i / 400) for i in range(400)])
    matrix = mel_matrix()
    k = np.arange(257)[:, None]
    n = np.arange(400)[None, :]
    dft = np.exp(-2j * np.pi * k * n / 512)  # (257, 400): rows = bins, the 512-point DFT of a padded frame
    rows = []
    for start in range(0, len(waveform) - 400 + 1, 160):
        spectrum = np.abs(dft @ (waveform[start : start + 400] * window))
        mel = [sum(spectrum[b] * matrix[b, j] for b in range(257)) for j in range(64)]
        rows.append(np.log(np.array(mel) + 0.01))
    return np.array(rows).reshape(-1, 64)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261121)
