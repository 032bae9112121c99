"""How big a source is before decoding it: :func:`probe` reads only the header, and
:func:`expected_examples` turns a duration into the exact number of examples the framing will make.

A server uses both to refuse an oversized request while it is still a few bytes of header, instead of
after decoding (and resampling) all of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from audioembed.audio.constants import (
    EXAMPLE_HOP_SECONDS,
    EXAMPLE_WINDOW_FRAMES,
    MIN_EXAMPLE_SAMPLES,
    SAMPLE_RATE_HZ,
    STFT_HOP_SAMPLES,
    STFT_WINDOW_SAMPLES,
)
from audioembed.audio.decode import AudioSource, describe, file_sample_rate, open_audio
from audioembed.audio.examples import check_short_clip, hop_to_frames
from audioembed.audio.melspec import num_frames
from audioembed.audio.samples import check_layout, check_sample_rate
from audioembed.errors import AudioDecodeError, InvalidAudioError, InvalidOptionError

# A duration is n / rate for whole n, so n · 16000 / rate is either a whole number or at least
# 1 / 384000 ≈ 2.6e-6 away from one; float rounding of duration · 16000 is ~2e-16 of it. Flooring with
# this slack is exact while 2e-16 · n16 < 1e-6, i.e. for audio up to ~50 hours.
_SAMPLE_SLACK = 1e-6


@dataclass(frozen=True)
class AudioInfo:
    """What a source's header says about its size.

    Attributes
    ----------
    frames : int
        Samples per channel (for MP3, libsndfile's estimate from the stream, within a frame or so).
    sample_rate : int
    channels : int
    duration_seconds : float
        ``frames / sample_rate``.
    """

    frames: int
    sample_rate: int
    channels: int
    duration_seconds: float


def probe(source: AudioSource, *, sample_rate: int | None = None) -> AudioInfo:
    """Size and format of audio without decoding it: the header of encoded audio, the shape of an array.

    Parameters
    ----------
    source : path, bytes-like, seekable binary file object, or np.ndarray
        As for :func:`~audioembed.audio.load_audio`. A file object's position is restored afterwards, so
        the same object can then be decoded.
    sample_rate : int, optional
        Required with an array; with encoded audio, if given, it must agree with the header.

    Returns
    -------
    AudioInfo

    Raises
    ------
    AudioDecodeError
        Missing file, empty data, unknown / garbled / truncated container, or a non-seekable file object
        (it cannot be probed without consuming it).
    InvalidAudioError
        A bad array (type, rank, dtype, channels, empty), a rate outside 4000..384000 Hz, or no samples.
    InvalidOptionError
        ``sample_rate`` missing for an array, or contradicting a file's rate.
    """
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise InvalidOptionError("an array of samples needs its sample_rate=...")
        channels = check_layout(source)
        rate = check_sample_rate(sample_rate)
        return AudioInfo(source.shape[0], rate, channels, source.shape[0] / rate)
    name = describe(source)
    position = _tell(source) if hasattr(source, "read") else None
    try:
        with open_audio(source) as handle:
            rate = file_sample_rate(handle, name, sample_rate=sample_rate)
            frames, channels = int(handle.frames), int(handle.channels)
    finally:
        if position is not None:
            source.seek(position)  # type: ignore[union-attr]
    if frames < 1:
        raise InvalidAudioError(f"audio {name} contains no samples")
    return AudioInfo(frames, rate, channels, frames / rate)


def _tell(source: IO[bytes]) -> int:
    seekable = getattr(source, "seekable", None)
    if not (callable(seekable) and seekable()):
        raise AudioDecodeError(
            f"cannot probe a non-seekable {type(source).__name__} without consuming it; "
            "read it into bytes and probe those"
        )
    try:
        return source.tell()
    except OSError as e:
        raise AudioDecodeError(f"cannot probe {type(source).__name__}: tell() failed: {e}") from e


def expected_examples(
    duration_seconds: Any, *, hop_seconds: float = EXAMPLE_HOP_SECONDS, short_clip: str = "pad"
) -> int:
    """The number of examples the front-end makes from audio of this duration, without any audio.

    The same arithmetic as the framing: ``n16 = floor(duration · 16000)`` samples after resampling,
    ``F = 1 + (n16 - 400) // 160`` log-mel frames, ``N = 1 + (F - 96) // hop_frames`` examples, or the
    short-clip policy (``"pad"``: 1, ``"drop"``: 0) below 15600 samples (0.975 s).

    Parameters
    ----------
    duration_seconds : float
        Of the source, ``frames / sample_rate`` (e.g. :attr:`AudioInfo.duration_seconds`); positive.
    hop_seconds : float
        A positive multiple of 10 ms, as for :func:`~audioembed.audio.waveform_to_examples`.
    short_clip : {"pad", "drop"}

    Returns
    -------
    int
        Exactly ``waveform_to_examples(...)[0].shape[0]`` for any accepted rate, up to ~50 hours of audio.

    Raises
    ------
    InvalidAudioError
        ``duration_seconds`` not a finite positive number.
    InvalidOptionError
        A bad hop or short-clip policy.
    """
    hop_frames = hop_to_frames(hop_seconds)
    check_short_clip(short_clip)
    if (
        isinstance(duration_seconds, (bool, np.bool_))
        or not isinstance(duration_seconds, (int, float, np.number))
        or not math.isfinite(duration_seconds)
        or duration_seconds <= 0
    ):
        raise InvalidAudioError(f"duration_seconds must be a positive number, got {duration_seconds!r}")
    samples_16k = math.floor(float(duration_seconds) * SAMPLE_RATE_HZ + _SAMPLE_SLACK)
    if samples_16k < MIN_EXAMPLE_SAMPLES:
        return 1 if short_clip == "pad" else 0
    frames = num_frames(samples_16k, window=STFT_WINDOW_SAMPLES, hop=STFT_HOP_SAMPLES)
    return num_frames(frames, window=EXAMPLE_WINDOW_FRAMES, hop=hop_frames)
