"""16 kHz waveform → log-mel frames → ``[N, 96, 64]`` examples: the reference's ``mel_features.py``.

Every function reproduces the reference's arithmetic in the same order and in float64 (periodic Hann,
``rfft`` magnitude of the zero-padded window, a dense mel matrix, ``log(mel + 0.01)``), so results agree
with it to float64 rounding. Long signals are transformed in chunks of frames, which bounds the memory of
the strided frame matrix without changing any value.
"""

from __future__ import annotations

import functools

import numpy as np

from audioembed.audio.constants import (
    EXAMPLE_WINDOW_FRAMES,
    FFT_SIZE,
    LOG_OFFSET,
    MEL_BREAK_HZ,
    MEL_HIGH_FREQUENCY_Q,
    MEL_MAX_HZ,
    MEL_MIN_HZ,
    NUM_FFT_BINS,
    NUM_MEL_BANDS,
    SAMPLE_RATE_HZ,
    STFT_HOP_SAMPLES,
    STFT_WINDOW_SAMPLES,
)
from audioembed.blas import blas_threads

# Frames transformed per chunk: 4096 × 400 float64 frames ≈ 13 MB, large enough to amortise the calls.
_CHUNK_FRAMES = 4096


def num_frames(num_samples: int, *, window: int, hop: int) -> int:
    """Number of whole windows of ``window`` items, ``hop`` apart, that fit in ``num_samples``."""
    return 0 if num_samples < window else 1 + (num_samples - window) // hop


def frame(x: np.ndarray, *, window: int, hop: int) -> np.ndarray:
    """View ``x`` as overlapping frames along its first axis, without copying.

    Parameters
    ----------
    x : np.ndarray [shape=(n, ...)]
    window, hop : int
        Frame length and step, in items of axis 0.

    Returns
    -------
    np.ndarray [shape=(F, window, ...)]
        A read-only strided view, ``F = num_frames(n, window=window, hop=hop)``; frames that would run
        past the end are dropped, as in the reference.
    """
    count = num_frames(x.shape[0], window=window, hop=hop)
    shape = (count, window, *x.shape[1:])  # (F, window, ...)
    strides = (hop * x.strides[0], *x.strides)
    return np.lib.stride_tricks.as_strided(x, shape=shape, strides=strides, writeable=False)


def periodic_hann(window: int) -> np.ndarray:
    """The periodic Hann window (the reference's ``periodic_hann``, not numpy's symmetric ``hanning``).

    Returns
    -------
    np.ndarray [shape=(window,)], float64
        ``0.5 - 0.5 cos(2π n / window)``: one period of a raised cosine, so it overlap-adds flat.
    """
    return 0.5 - (0.5 * np.cos(2 * np.pi / window * np.arange(window)))


def hertz_to_mel(frequencies_hz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: ``1127 · ln(1 + f / 700)``."""
    return MEL_HIGH_FREQUENCY_Q * np.log(1.0 + np.asarray(frequencies_hz, dtype=np.float64) / MEL_BREAK_HZ)


def mel_matrix(
    *,
    num_bands: int = NUM_MEL_BANDS,
    num_fft_bins: int = NUM_FFT_BINS,
    sample_rate: int = SAMPLE_RATE_HZ,
    min_hz: float = MEL_MIN_HZ,
    max_hz: float = MEL_MAX_HZ,
) -> np.ndarray:
    """The reference's mel weight matrix (``spectrogram_to_mel_matrix``).

    Triangles are built in mel space: band ``i`` rises linearly (in mel) from edge ``i`` to edge ``i+1``
    and falls to edge ``i+2``, with ``num_bands + 2`` edges spaced evenly in mel between ``min_hz`` and
    ``max_hz``. There is no area normalisation, and the DC bin's row is zeroed.

    Returns
    -------
    np.ndarray [shape=(num_fft_bins, num_bands)], float64
        ``spectrogram [F, num_fft_bins] @ matrix`` gives mel energies ``[F, num_bands]``.
    """
    bins_mel = hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, num_fft_bins))  # (bins,)
    edges_mel = np.linspace(hertz_to_mel(min_hz), hertz_to_mel(max_hz), num_bands + 2)  # (bands + 2,)
    matrix = np.empty((num_fft_bins, num_bands))
    for band in range(num_bands):
        lower, center, upper = edges_mel[band : band + 3]
        rising = (bins_mel - lower) / (center - lower)
        falling = (upper - bins_mel) / (upper - center)
        matrix[:, band] = np.maximum(0.0, np.minimum(rising, falling))
    matrix[0, :] = 0.0  # the reference zeroes DC even though 0 Hz is below min_hz anyway
    return matrix


@functools.cache
def _default_mel_matrix() -> np.ndarray:
    matrix = mel_matrix()
    matrix.flags.writeable = False  # shared by every call: nobody may modify it
    return matrix


@functools.cache
def _default_window() -> np.ndarray:
    window = periodic_hann(STFT_WINDOW_SAMPLES)
    window.flags.writeable = False
    return window


def stft_magnitude(samples: np.ndarray) -> np.ndarray:
    """Magnitude spectrogram: 400-sample periodic-Hann frames every 160 samples, 512-point ``rfft``.

    Parameters
    ----------
    samples : np.ndarray [shape=(n,)], float64
        The 16 kHz waveform.

    Returns
    -------
    np.ndarray [shape=(F, 257)], float64
        ``F = 1 + (n - 400) // 160`` frames (0 if ``n < 400``).
    """
    frames = frame(samples, window=STFT_WINDOW_SAMPLES, hop=STFT_HOP_SAMPLES)  # (F, 400)
    return np.abs(np.fft.rfft(frames * _default_window(), FFT_SIZE))  # (F, 257)


def log_mel_bound(peak: float) -> float:
    """The largest log-mel value any waveform with ``|x| <= peak`` can produce.

    Each rfft bin is a sum of window-weighted samples, so ``|X_k| <= peak · Σ window``; a mel energy is a
    non-negative weighting of those bins, so it is at most ``peak · Σ window · (largest column sum of the
    mel matrix)``.

    Parameters
    ----------
    peak : float
        A bound on the absolute value of the samples.

    Returns
    -------
    float
        ``log(peak · Σ window · max_j Σ_k mel[k, j] + 0.01)``.
    """
    largest_band = float(np.max(np.sum(_default_mel_matrix(), axis=0)))
    return float(np.log(peak * float(np.sum(_default_window())) * largest_band + LOG_OFFSET))


def log_mel_spectrogram(samples: np.ndarray) -> np.ndarray:
    """Log-mel frames of a 16 kHz waveform: ``log(|STFT| @ mel_matrix + 0.01)``.

    Parameters
    ----------
    samples : np.ndarray [shape=(n,)], float64
        The 16 kHz mono waveform.

    Returns
    -------
    np.ndarray [shape=(F, 64)], float64
        One row per 10 ms frame, ``F = 1 + (n - 400) // 160`` (0 if ``n < 400``). Absurdly large samples
        (~1e307) give inf or NaN here, silently: callers check the result (see ``check_log_mel``).
    """
    total = num_frames(samples.shape[0], window=STFT_WINDOW_SAMPLES, hop=STFT_HOP_SAMPLES)
    out = np.empty((total, NUM_MEL_BANDS))
    # Overflow is reported by the callers' check of the output, with a message about the audio's scale;
    # numpy's RuntimeWarnings would only add noise (or errors, under -W error) before it.
    # One BLAS thread for the mel projection (see audioembed.blas): [4096, 257] @ [257, 64] is too small for
    # OpenBLAS's threads to pay off, and under concurrent callers they only spin.
    with np.errstate(over="ignore", invalid="ignore"), blas_threads(1):
        _fill_log_mel(samples, out)
    return out


def _fill_log_mel(samples: np.ndarray, out: np.ndarray) -> None:
    """Write the log-mel frames of ``samples`` into ``out`` [shape=(F, 64)], chunk by chunk."""
    total = out.shape[0]
    for start in range(0, total, _CHUNK_FRAMES):
        stop = min(total, start + _CHUNK_FRAMES)
        # Samples of frames start..stop-1: the last frame ends STFT_WINDOW_SAMPLES after its start.
        chunk = samples[start * STFT_HOP_SAMPLES : (stop - 1) * STFT_HOP_SAMPLES + STFT_WINDOW_SAMPLES]
        spectrum = stft_magnitude(chunk)  # (stop - start, 257)
        if spectrum.shape[0] == 1:
            # BLAS takes a matrix-vector path for one row, which sums in another order; duplicating the
            # row keeps a streamed frame bit-identical to the same frame computed in a batch.
            spectrum = np.concatenate((spectrum, spectrum))  # (2, 257)
        mel = (spectrum @ _default_mel_matrix())[: stop - start]  # (stop - start, 64)
        np.log(mel + LOG_OFFSET, out=out[start:stop])


def frame_examples(log_mel: np.ndarray, *, hop_frames: int) -> np.ndarray:
    """Group log-mel frames into 96-frame examples, ``hop_frames`` apart.

    Parameters
    ----------
    log_mel : np.ndarray [shape=(F, 64)], float64
    hop_frames : int
        Frames between the starts of consecutive examples (96 = the reference's non-overlapping hop).

    Returns
    -------
    np.ndarray [shape=(N, 96, 64)], float64
        A new contiguous array; ``N = 1 + (F - 96) // hop_frames`` (0 if ``F < 96``).
    """
    return np.ascontiguousarray(frame(log_mel, window=EXAMPLE_WINDOW_FRAMES, hop=hop_frames))  # (N, 96, 64)
