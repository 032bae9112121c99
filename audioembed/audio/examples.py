"""Samples at any rate → ``[N, 96, 64]`` log-mel examples with start times: the reference's
``vggish_input.waveform_to_examples``, plus the options it lacks (hop, short-clip policy, resampler).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioembed.audio.constants import (
    EXAMPLE_HOP_SECONDS,
    EXAMPLE_WINDOW_FRAMES,
    EXAMPLE_WINDOW_SECONDS,
    FRAMES_PER_SECOND,
    MAX_ABS_SAMPLE,
    MIN_EXAMPLE_SAMPLES,
    NUM_MEL_BANDS,
    SAMPLE_RATE_HZ,
)
from audioembed.audio.decode import AudioSource, load_audio
from audioembed.audio.melspec import frame_examples, log_mel_bound, log_mel_spectrogram
from audioembed.audio.resample import resample
from audioembed.audio.samples import check_sample_rate, check_samples, to_mono
from audioembed.errors import InvalidAudioError, InvalidOptionError

SHORT_CLIP_POLICIES = ("pad", "drop")  # what to do with a clip shorter than one example (0.975 s)
RESAMPLER_METHODS = ("reference", "fast")  # resampy-exact, or a faster close approximation
_HOP_TOLERANCE_FRAMES = 1e-4  # how far from a whole number of 10 ms frames a hop may be spelled
# No waveform with |x| <= MAX_ABS_SAMPLE gives a log-mel above this (~29.0); anything higher, inf or NaN
# comes from samples that are not scaled audio.
LOG_MEL_CEILING = log_mel_bound(MAX_ABS_SAMPLE)


def peak_abs(samples: np.ndarray) -> float:
    """``max |samples|`` (0 for an empty array), without allocating an ``abs`` copy."""
    if samples.size == 0:
        return 0.0
    return max(float(np.max(samples)), -float(np.min(samples)))


def check_log_mel(log_mel: np.ndarray, *, peak: Callable[[], float]) -> None:
    """Refuse log-mel values that no audio scaled to about [-1, 1] can produce, including inf and NaN.

    The model batches examples of many requests together, so one non-finite example must fail its own
    request here, not the batch. One comparison over the log-mel (64 values per 160 samples) is cheap.

    Parameters
    ----------
    log_mel : np.ndarray [shape=(..., 64)], float64
    peak : callable
        Returns the peak ``|sample|`` of the source, for the message; only called on failure.

    Raises
    ------
    InvalidAudioError
        Some value is above :data:`LOG_MEL_CEILING` or NaN; the message names the peak ``|sample|``.
    """
    if not np.all(log_mel <= LOG_MEL_CEILING):  # NaN compares False, so it fails too
        raise InvalidAudioError(
            f"audio samples are far too large to analyse: peak |sample| is {peak():.6g} "
            f"(any peak up to {MAX_ABS_SAMPLE:.6g} is always accepted); "
            "audio should be scaled to about [-1, 1] (float) or passed as integer PCM"
        )


def hop_to_frames(hop_seconds: Any) -> int:
    """Validate an example hop and return it in 10 ms frames.

    Parameters
    ----------
    hop_seconds : float
        A positive multiple of 10 ms (0.96 = the reference's non-overlapping examples; 0.48 = half
        overlap, like YAMNet).

    Returns
    -------
    int
        The hop in frames, ≥ 1.

    Raises
    ------
    InvalidOptionError
        Not a number, not positive, or not a whole number of 10 ms frames.
    """
    if isinstance(hop_seconds, (bool, np.bool_)) or not isinstance(hop_seconds, (int, float, np.number)):
        raise InvalidOptionError(f"hop_seconds must be a number of seconds, got {hop_seconds!r}")
    frames = float(hop_seconds) * FRAMES_PER_SECOND
    nearest = round(frames) if math.isfinite(frames) else 0
    # Tolerate float spelling: 0.29 * 100 = 28.999999999999996, and float32 hops are ~4e-6 frames off
    # (np.float32(0.96) * 100 = 96.0000038). 1e-4 frames is 1 µs: far below any hop a user means.
    if nearest < 1 or abs(frames - nearest) > _HOP_TOLERANCE_FRAMES:
        raise InvalidOptionError(
            f"hop_seconds must be a positive multiple of {1 / FRAMES_PER_SECOND} s, got {hop_seconds!r}"
        )
    return nearest


def check_short_clip(short_clip: Any) -> str:
    """Validate a short-clip policy (``"pad"`` or ``"drop"``) and return it."""
    if short_clip not in SHORT_CLIP_POLICIES:
        raise InvalidOptionError(f"short_clip must be one of {SHORT_CLIP_POLICIES}, got {short_clip!r}")
    return short_clip


def check_resampler(resampler: Any) -> str:
    """Validate a resampler name (``"reference"`` or ``"fast"``) and return it."""
    if resampler not in RESAMPLER_METHODS:
        raise InvalidOptionError(f"resampler must be one of {RESAMPLER_METHODS}, got {resampler!r}")
    return resampler


def resample_to_model_rate(samples: np.ndarray, sample_rate: int, *, method: str) -> np.ndarray:
    """Resample a mono waveform to 16 kHz (a no-op at 16 kHz).

    Parameters
    ----------
    samples : np.ndarray [shape=(n,)], float64
    sample_rate : int
    method : {"reference", "fast"}

    Returns
    -------
    np.ndarray [shape=(int(n * 16000 / sample_rate),)], float64
        Empty when the input is too short to give one output sample.
    """
    if sample_rate == SAMPLE_RATE_HZ:
        return samples
    if int(samples.shape[0] * float(SAMPLE_RATE_HZ) / float(sample_rate)) < 1:
        return np.zeros(0)  # shorter than one output period: nothing to resample (a short clip)
    return resample(samples, sample_rate, SAMPLE_RATE_HZ, method=method)


def waveform16k_to_examples(
    waveform: np.ndarray,
    *,
    hop_frames: int,
    short_clip: str,
    peak: Callable[[], float] | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Log-mel examples of a 16 kHz mono waveform, applying the short-clip policy.

    Parameters
    ----------
    waveform : np.ndarray [shape=(n,)], float64
    hop_frames : int
        From :func:`hop_to_frames`.
    short_clip : {"pad", "drop"}
    peak : callable, optional
        Peak ``|sample|`` of the source before down-mix and resampling, named if the log-mel is refused;
        defaults to the waveform's.

    Returns
    -------
    log_mel : np.ndarray [shape=(N, 96, 64)], float64
    starts : np.ndarray [shape=(N,)], float64
        Start of each example in seconds.
    applied : {"none", "pad", "drop"}
        ``"none"`` when the waveform held at least one example.

    Raises
    ------
    InvalidAudioError
        The samples are so large that the log-mel is out of range or not finite (see :func:`check_log_mel`).
    """
    applied = "none"
    if waveform.shape[0] < MIN_EXAMPLE_SAMPLES:
        applied = short_clip
        if short_clip == "drop":
            return np.zeros((0, EXAMPLE_WINDOW_FRAMES, NUM_MEL_BANDS)), np.zeros(0), applied
        padded = np.zeros(MIN_EXAMPLE_SAMPLES)
        padded[: waveform.shape[0]] = waveform
        waveform = padded
    frames = log_mel_spectrogram(waveform)  # (F, 64)
    check_log_mel(frames, peak=(lambda: peak_abs(waveform)) if peak is None else peak)
    log_mel = frame_examples(frames, hop_frames=hop_frames)  # (N, 96, 64)
    return log_mel, example_starts(0, log_mel.shape[0], hop_frames=hop_frames), applied


def example_starts(first: int, count: int, *, hop_frames: int) -> np.ndarray:
    """Start times in seconds of examples ``first .. first + count - 1``.

    Returns
    -------
    np.ndarray [shape=(count,)], float64
        ``index * hop_frames / 100``: computed from integers, so start times never drift.
    """
    return np.arange(first, first + count) * hop_frames / FRAMES_PER_SECOND


def waveform_to_examples(
    samples: np.ndarray,
    sample_rate: int,
    *,
    hop_seconds: float = EXAMPLE_HOP_SECONDS,
    short_clip: str = "pad",
    resampler: str = "reference",
) -> tuple[np.ndarray, np.ndarray]:
    """Samples → log-mel examples and their start times (``vggish_input.waveform_to_examples``).

    Parameters
    ----------
    samples : np.ndarray [shape=(n,) or (n, channels)]
        Float samples in [-1, 1], or integer PCM (scaled as in :func:`~audioembed.audio.check_samples`).
    sample_rate : int
        Rate of ``samples``; resampled to 16 kHz after the down-mix, as in the reference.
    hop_seconds : float
        Between example starts: a positive multiple of 10 ms.
    short_clip : {"pad", "drop"}
        For clips under 0.975 s: zero-pad the 16 kHz waveform to one example, or return none (the
        reference's behaviour).
    resampler : {"reference", "fast"}

    Returns
    -------
    log_mel : np.ndarray [shape=(N, 96, 64)], float64
    starts : np.ndarray [shape=(N,)], float64
        Start of each example in seconds of the source.

    Raises
    ------
    InvalidAudioError
        Bad samples or rate (see :func:`~audioembed.audio.check_samples`), or samples so large that the
        log-mel would be out of range or not finite (the message names the peak ``|sample|``).
    InvalidOptionError
        A bad hop, short-clip policy or resampler name.
    """
    hop_frames = hop_to_frames(hop_seconds)
    check_short_clip(short_clip)
    check_resampler(resampler)
    checked = check_samples(samples)
    waveform = resample_to_model_rate(to_mono(checked), check_sample_rate(sample_rate), method=resampler)
    log_mel, starts, _ = waveform16k_to_examples(
        waveform, hop_frames=hop_frames, short_clip=short_clip, peak=lambda: peak_abs(checked)
    )
    return log_mel, starts


@dataclass(frozen=True, eq=False)
class Examples:
    """The front-end's output for one source: examples, their times, and how they were made.

    Attributes
    ----------
    log_mel : np.ndarray [shape=(N, 96, 64)], float64
    timestamps : np.ndarray [shape=(N,)], float64
        Start of each example in seconds.
    window_seconds : float
        Length of each example (0.96 s).
    hop_seconds : float
    duration_seconds : float
        Of the source, at its own rate.
    sample_rate : int
        Of the source.
    num_channels : int
        Of the source (before the down-mix).
    short_clip : {"none", "pad", "drop"}
        The policy that applied: ``"none"`` when the source was long enough for one example.
    """

    log_mel: np.ndarray
    timestamps: np.ndarray
    window_seconds: float
    hop_seconds: float
    duration_seconds: float
    sample_rate: int
    num_channels: int
    short_clip: str

    @property
    def num_examples(self) -> int:
        """``N``, the number of examples."""
        return int(self.log_mel.shape[0])


def extract_examples(
    source: AudioSource,
    *,
    sample_rate: int | None = None,
    hop_seconds: float = EXAMPLE_HOP_SECONDS,
    short_clip: str = "pad",
    resampler: str = "reference",
) -> Examples:
    """Decode any supported source and compute its examples, with everything a caller needs to use them.

    Parameters
    ----------
    source : path, bytes-like, binary file object, or np.ndarray
        As for :func:`~audioembed.audio.load_audio`.
    sample_rate : int, optional
        Required for arrays.
    hop_seconds, short_clip, resampler
        As for :func:`waveform_to_examples`; validated before anything is decoded.

    Returns
    -------
    Examples

    Raises
    ------
    AudioDecodeError, InvalidAudioError, InvalidOptionError
        As for :func:`~audioembed.audio.load_audio` and :func:`waveform_to_examples`.
    """
    hop_frames = hop_to_frames(hop_seconds)
    check_short_clip(short_clip)
    check_resampler(resampler)
    samples, rate = load_audio(source, sample_rate=sample_rate)
    waveform = resample_to_model_rate(to_mono(samples), rate, method=resampler)
    log_mel, starts, applied = waveform16k_to_examples(
        waveform, hop_frames=hop_frames, short_clip=short_clip, peak=lambda: peak_abs(samples)
    )
    return Examples(
        log_mel=log_mel,
        timestamps=starts,
        window_seconds=EXAMPLE_WINDOW_SECONDS,
        hop_seconds=hop_frames / FRAMES_PER_SECOND,
        duration_seconds=samples.shape[0] / rate,
        sample_rate=rate,
        num_channels=1 if samples.ndim == 1 else samples.shape[1],
        short_clip=applied,
    )
