"""Encoded audio → float64 samples at the source rate: files, bytes, file objects, arrays, raw PCM.

Every decoder returns ``float64`` samples, ``[n]`` for mono or ``[n, channels]``, scaled the way the
reference scales them: 16-bit PCM is exactly ``int16 / 32768`` (libsndfile's integer → double conversion
multiplies by a power of two, so no rounding happens); wider PCM and float input keep their precision.
Failures of libsndfile are re-raised as :class:`~audioembed.errors.AudioDecodeError` naming the source.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import numpy as np
import soundfile

from audioembed.audio.constants import MAX_CHANNELS
from audioembed.audio.samples import check_sample_rate, check_samples
from audioembed.errors import AudioDecodeError, InvalidAudioError, InvalidOptionError

AudioSource = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes] | np.ndarray

# Raw PCM encodings of decode_pcm: name → (numpy dtype, scale to [-1, 1)).
PCM_ENCODINGS = {"s16le": (np.dtype("<i2"), 2.0**-15), "f32le": (np.dtype("<f4"), 1.0)}

# libsndfile logs "data : <declared> (should be <present>)" when a WAV/AIFF data chunk is cut short,
# then quietly reads what is there. The chunk names are those of the sample-data chunks.
_SHORT_CHUNK = re.compile(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Writers that cannot seek back (pipes) leave a placeholder size; such files are not truncated.
_PLACEHOLDER_SIZE = 0x7FFFFFFF
# Formats whose frame count is an estimate from the stream, so a short read proves nothing.
_ESTIMATED_LENGTH_FORMATS = frozenset({"MP3", "MPEG"})


def decode_pcm(
    data: bytes | bytearray | memoryview, *, encoding: str = "s16le", sample_rate: int, channels: int = 1
) -> np.ndarray:
    """Decode raw interleaved little-endian PCM bytes (the gRPC API's raw input).

    Parameters
    ----------
    data : bytes-like
        Interleaved frames, ``channels`` samples per frame.
    encoding : {"s16le", "f32le"}
        Signed 16-bit integers (scaled by 1/32768, as the reference does) or 32-bit floats.
    sample_rate : int
        Validated here (4000..384000 Hz) so a bad rate fails before any work.
    channels : int
        Samples per frame, ≥ 1.

    Returns
    -------
    np.ndarray [shape=(n,) if channels == 1 else (n, channels)], float64

    Raises
    ------
    InvalidOptionError
        Unknown encoding.
    AudioDecodeError
        Empty data, or a byte count that is not a whole number of frames.
    InvalidAudioError
        Bad rate or channel count, or NaN/Inf in f32le data.
    """
    if encoding not in PCM_ENCODINGS:
        raise InvalidOptionError(
            f"unknown PCM encoding {encoding!r}; expected one of {sorted(PCM_ENCODINGS)}"
        )
    check_sample_rate(sample_rate)
    if (
        isinstance(channels, bool)
        or not isinstance(channels, (int, np.integer))
        or not 1 <= channels <= MAX_CHANNELS
    ):
        raise InvalidAudioError(f"channels must be an integer in 1..{MAX_CHANNELS}, got {channels!r}")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AudioDecodeError(f"raw PCM data must be bytes, got {type(data).__name__}")
    raw = memoryview(data).cast("B")
    dtype, scale = PCM_ENCODINGS[encoding]
    frame_bytes = dtype.itemsize * int(channels)
    if len(raw) == 0:
        raise AudioDecodeError(f"raw PCM data is empty (0 bytes of {encoding})")
    if len(raw) % frame_bytes:
        raise AudioDecodeError(
            f"raw {encoding} data of {len(raw)} bytes is not a whole number of {channels}-channel frames "
            f"({frame_bytes} bytes each)"
        )
    values = np.frombuffer(raw, dtype=dtype)
    if encoding == "s16le":
        samples = values.astype(np.float64) * scale
    else:
        samples = check_samples(values.astype(np.float64), allow_empty=False)
    return samples if channels == 1 else samples.reshape(-1, int(channels))  # (n, channels)


def describe(source: Any) -> str:
    """A short name of an audio source for messages: the path, ``<N bytes>`` or ``<type>``."""
    if isinstance(source, (str, os.PathLike)):
        return repr(os.fspath(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(memoryview(source).cast('B'))} bytes>"
    return f"<{type(source).__name__}>"


@contextmanager
def open_audio(
    source: str | os.PathLike | bytes | bytearray | memoryview | IO[bytes],
) -> Iterator[soundfile.SoundFile]:
    """Open encoded audio with libsndfile, turning every failure into :class:`AudioDecodeError`.

    Parameters
    ----------
    source : path, bytes-like, or binary file object
        A file object that cannot seek (a pipe, a socket) is read into memory first, because libsndfile
        seeks while parsing headers.

    Yields
    ------
    soundfile.SoundFile
        Open for reading; closed on exit.

    Raises
    ------
    AudioDecodeError
        Missing file, empty data, unknown / garbled / truncated container.
    """
    name = describe(source)
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.isfile(path):
            raise AudioDecodeError(f"no such audio file: {path!r}")
        target: Any = path
    elif isinstance(source, (bytes, bytearray, memoryview)):
        if len(memoryview(source).cast("B")) == 0:
            raise AudioDecodeError("audio data is empty (0 bytes)")
        target = io.BytesIO(source)
    elif hasattr(source, "read"):
        seekable = getattr(source, "seekable", None)
        target = source if callable(seekable) and seekable() else io.BytesIO(source.read())
        if isinstance(target, io.BytesIO) and not target.getbuffer().nbytes:
            raise AudioDecodeError(f"audio data from {name} is empty (0 bytes)")
    else:
        raise AudioDecodeError(
            f"cannot read audio from a {type(source).__name__}: pass a path, bytes, a binary file object, "
            "or a numpy array with sample_rate"
        )
    try:
        handle = soundfile.SoundFile(target)
    except (soundfile.SoundFileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioDecodeError(f"cannot decode audio {name}: {e}") from e
    with handle:
        if handle.channels < 1:
            raise AudioDecodeError(f"audio {name} declares {handle.channels} channels")
        _check_header_complete(handle, name)
        yield handle


def _check_header_complete(handle: soundfile.SoundFile, name: str) -> None:
    # WAV/AIFF: libsndfile shrinks a data chunk that runs past the end of the file and says so only in
    # its log; a cut-off file must not pass for a shorter recording.
    for declared, present in _SHORT_CHUNK.findall(handle.extra_info):
        if int(present) < int(declared) < _PLACEHOLDER_SIZE:
            raise AudioDecodeError(
                f"audio {name} is truncated: its data chunk declares {declared} bytes "
                f"but only {present} are present"
            )


def check_frames_read(handle: soundfile.SoundFile, frames_read: int, name: str) -> None:
    """Raise :class:`AudioDecodeError` if a container that states its length delivered fewer frames."""
    if handle.format in _ESTIMATED_LENGTH_FORMATS:
        return
    if handle.frames > 0 and frames_read < handle.frames:
        raise AudioDecodeError(
            f"audio {name} is truncated: it declares {handle.frames} frames "
            f"but only {frames_read} could be decoded"
        )


def read_blocks(handle: soundfile.SoundFile, name: str, *, block_frames: int) -> Iterator[np.ndarray]:
    """Decode an open file block by block.

    Parameters
    ----------
    handle : soundfile.SoundFile
        From :func:`open_audio`.
    name : str
        For error messages.
    block_frames : int
        Frames per block (the last block may be shorter).

    Yields
    ------
    np.ndarray [shape=(k,) or (k, channels)], float64
        Non-empty blocks, checked finite.

    Raises
    ------
    AudioDecodeError
        The decoder failed part-way, or the file is truncated.
    InvalidAudioError
        NaN or Inf in the decoded samples (float files).
    """
    total = 0
    while True:
        try:
            block = handle.read(block_frames, dtype="float64")
        except (soundfile.SoundFileError, RuntimeError) as e:
            raise AudioDecodeError(f"cannot decode audio {name} after {total} frames: {e}") from e
        if block.shape[0] == 0:
            break
        total += block.shape[0]
        yield check_samples(block, allow_empty=False)
    check_frames_read(handle, total, name)
    if total == 0:
        raise InvalidAudioError(f"audio {name} contains no samples")


def file_sample_rate(handle: soundfile.SoundFile, name: str, *, sample_rate: Any = None) -> int:
    """The validated rate of an open file; a caller's ``sample_rate``, if given, must agree with it.

    Raises
    ------
    InvalidAudioError
        The file's rate (or the caller's) is outside 4000..384000 Hz.
    InvalidOptionError
        ``sample_rate`` contradicts the file's rate.
    """
    if sample_rate is not None and check_sample_rate(sample_rate) != handle.samplerate:
        raise InvalidOptionError(
            f"sample_rate={sample_rate!r} contradicts the rate of {name} ({handle.samplerate} Hz); "
            "omit it for encoded audio"
        )
    return check_sample_rate(handle.samplerate, source=f"of audio {name}")


def load_audio(source: AudioSource, *, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Load audio from any supported source at its native rate.

    Parameters
    ----------
    source : path, bytes-like, binary file object, or np.ndarray
        Encoded audio in any format the bundled libsndfile reads (WAV/RF64/W64 PCM 8–32 bit and float,
        FLAC, OGG/Vorbis/Opus, MP3, AIFF, CAF, ...), or samples as accepted by :func:`check_samples`.
    sample_rate : int, optional
        Required with an array (its rate). With encoded audio the file states its rate; a value given
        here must agree with it.

    Returns
    -------
    samples : np.ndarray [shape=(n,) or (n, channels)], float64
        1-D for mono sources.
    sample_rate : int

    Raises
    ------
    AudioDecodeError
        The source could not be decoded (see :func:`open_audio`).
    InvalidAudioError
        Bad array, bad rate, no samples, NaN/Inf.
    InvalidOptionError
        ``sample_rate`` missing for an array, or contradicting a file's rate.
    """
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise InvalidOptionError("an array of samples needs its sample_rate=...")
        return check_samples(source), check_sample_rate(sample_rate)
    name = describe(source)
    with open_audio(source) as handle:
        rate = file_sample_rate(handle, name, sample_rate=sample_rate)
        blocks = list(read_blocks(handle, name, block_frames=max(handle.frames, 1 << 20)))
    samples = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=0)
    return samples, rate
