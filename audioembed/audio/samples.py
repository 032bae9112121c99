"""Callers' samples and rates: validation, conversion to float64, and the reference's down-mix.

Integer PCM arrays are scaled the way libsndfile scales the same widths (``int16 / 32768`` exactly); float
arrays are taken as they are. Every check raises :class:`~audioembed.errors.InvalidAudioError` quoting the
bad value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from audioembed.audio.constants import MAX_CHANNELS, MAX_SAMPLE_RATE_HZ, MIN_SAMPLE_RATE_HZ
from audioembed.errors import InvalidAudioError

# Integer dtypes accepted from callers' arrays, with the factor that maps them onto [-1, 1) (the
# scaling libsndfile applies to the same PCM widths). int64 is refused: its intended scale is unknowable.
_INT_SCALE = {np.dtype(np.int8): 2.0**-7, np.dtype(np.int16): 2.0**-15, np.dtype(np.int32): 2.0**-31}
_FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

# numpy sums rows of at least this many items pairwise (8 partial sums), not left to right.
_PAIRWISE_MIN_CHANNELS = 8


def check_sample_rate(sample_rate: Any, *, source: str = "") -> int:
    """Validate a sample rate and return it as an ``int``.

    Parameters
    ----------
    sample_rate : int or float
        Samples per second; an integral float (``44100.0``) is accepted.
    source : str
        Names where the rate came from (``"of audio 'x.wav'"``), for the error message.

    Returns
    -------
    int
        The rate, in ``[MIN_SAMPLE_RATE_HZ, MAX_SAMPLE_RATE_HZ]`` (4000..384000 Hz).

    Raises
    ------
    InvalidAudioError
        Not a number, not whole, below 4 kHz, or above 384 kHz.
    """
    what = f"sample rate {source}".rstrip()
    if isinstance(sample_rate, (bool, np.bool_)) or not isinstance(sample_rate, (int, float, np.number)):
        raise InvalidAudioError(f"{what} must be a positive integer in Hz, got {sample_rate!r}")
    rate = float(sample_rate)
    if not math.isfinite(rate) or rate != int(rate):
        raise InvalidAudioError(f"{what} must be a whole number of Hz, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE_HZ <= rate <= MAX_SAMPLE_RATE_HZ:
        raise InvalidAudioError(
            f"{what} must be in {MIN_SAMPLE_RATE_HZ}..{MAX_SAMPLE_RATE_HZ} Hz, got {sample_rate!r}"
        )
    return int(rate)


def check_samples(samples: Any, *, num_channels: int | None = None, allow_empty: bool = False) -> np.ndarray:
    """Validate a caller's sample array and return it as float64 ``[n]`` or ``[n, channels]``.

    Parameters
    ----------
    samples : np.ndarray [shape=(n,) or (n, channels)], float16/32/64 or int8/16/32
        Float samples are taken as they are (nominally in [-1, 1]); integer PCM is scaled by
        ``2 ** -(bits - 1)``, so ``int16`` becomes exactly ``int16 / 32768``.
    num_channels : int, optional
        If given, the channel count the array must have (1 means ``[n]`` or ``[n, 1]``).
    allow_empty : bool
        Accept ``n == 0`` (streaming blocks may be empty; whole signals may not).

    Returns
    -------
    np.ndarray [shape=(n,) or (n, channels)], float64
        A new array unless ``samples`` already was float64.

    Raises
    ------
    InvalidAudioError
        Not an array, wrong dtype or rank, no channels, too many channels, empty, or NaN/Inf.
    """
    check_layout(samples, num_channels=num_channels, allow_empty=allow_empty)
    if samples.dtype in _INT_SCALE:
        return samples.astype(np.float64) * _INT_SCALE[samples.dtype]
    out = samples.astype(np.float64, copy=False)
    # A non-finite sample would poison every frame it touches: refuse it, saying where.
    finite = np.isfinite(out)
    if not finite.all():
        index = tuple(int(i) for i in np.unravel_index(int(np.argmin(finite)), out.shape))
        value = float(out[index])
        raise InvalidAudioError(f"audio contains NaN or Inf (first at index {index}: {value!r})")
    return out


def check_layout(samples: Any, *, num_channels: int | None = None, allow_empty: bool = False) -> int:
    """The checks of :func:`check_samples` that need no pass over the values: type, rank, channels, dtype.

    Parameters
    ----------
    samples : np.ndarray [shape=(n,) or (n, channels)]
    num_channels : int, optional
        If given, the channel count the array must have.
    allow_empty : bool
        Accept ``n == 0``.

    Returns
    -------
    int
        The channel count (1 for ``[n]``).

    Raises
    ------
    InvalidAudioError
        As :func:`check_samples`, except for NaN/Inf.
    """
    if not isinstance(samples, np.ndarray):
        raise InvalidAudioError(f"samples must be a numpy array, got {type(samples).__name__}")
    if samples.ndim not in (1, 2):
        raise InvalidAudioError(
            f"samples must have shape [n] or [n, channels], got an array of shape {samples.shape}"
        )
    if samples.ndim == 2 and samples.shape[1] == 0:
        raise InvalidAudioError(f"samples have zero channels (shape {samples.shape})")
    if samples.ndim == 2 and samples.shape[1] > MAX_CHANNELS:
        raise InvalidAudioError(
            f"samples of shape {samples.shape} would have {samples.shape[1]} channels "
            f"(limit {MAX_CHANNELS}); "
            "pass [n, channels], e.g. transpose a [channels, n] array"
        )
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    if num_channels is not None and channels != num_channels:
        raise InvalidAudioError(f"expected {num_channels} channel(s), got samples of shape {samples.shape}")
    if samples.shape[0] == 0 and not allow_empty:
        raise InvalidAudioError(f"audio is empty: samples of shape {samples.shape}")
    if samples.dtype not in _INT_SCALE and samples.dtype not in _FLOAT_DTYPES:
        raise InvalidAudioError(
            f"unsupported sample dtype {samples.dtype}: "
            "use float32/float64 in [-1, 1] or int8/int16/int32 PCM"
        )
    return channels


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Down-mix to mono the way the reference does: the mean over channels of the float samples.

    Parameters
    ----------
    samples : np.ndarray [shape=(n,) or (n, channels)], float64

    Returns
    -------
    np.ndarray [shape=(n,)], float64
        ``samples`` itself if it already was 1-D.
    """
    if not isinstance(samples, np.ndarray) or samples.ndim not in (1, 2):
        shape = getattr(samples, "shape", type(samples).__name__)
        raise InvalidAudioError(f"to_mono needs an array of shape [n] or [n, channels], got {shape}")
    if samples.ndim == 1:
        return samples
    channels = samples.shape[1]
    if channels == 0:
        raise InvalidAudioError(f"samples have zero channels (shape {samples.shape})")
    if channels >= _PAIRWISE_MIN_CHANNELS:
        return np.mean(samples, axis=1)
    # np.mean over a short row adds left to right, then divides: the same operations column-wise are
    # bit-identical and ~15x faster than numpy's strided reduction over rows of 2.
    total = samples[:, 0].copy()
    for channel in range(1, channels):
        total += samples[:, channel]
    return total / channels
