"""Decoding: every container and subtype round-trips, every source kind works, bad input fails clearly."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audioembed import audio
from audioembed.errors import AudioDecodeError, InvalidAudioError, InvalidOptionError
from tests.audio.conftest import sine

RATE = 16000


def _int_pcm(rng: np.random.Generator, bits: int, shape: tuple[int, ...]) -> np.ndarray:
    """Random full-scale PCM of ``bits`` bits, left-aligned in int32 (as libsndfile presents it)."""
    values = rng.integers(-(2 ** (bits - 1)), 2 ** (bits - 1), size=shape, dtype=np.int64)
    return (values << (32 - bits)).astype(np.int32)


# (format, subtype, bits of the stored integer PCM or None for float)
LOSSLESS = [
    ("WAV", "PCM_U8", 8),
    ("WAV", "PCM_16", 16),
    ("WAV", "PCM_24", 24),
    ("WAV", "PCM_32", 32),
    ("WAV", "FLOAT", None),
    ("WAV", "DOUBLE", None),
    ("FLAC", "PCM_S8", 8),
    ("FLAC", "PCM_16", 16),
    ("FLAC", "PCM_24", 24),
    ("AIFF", "PCM_16", 16),
    ("AIFF", "PCM_24", 24),
    ("AIFF", "FLOAT", None),
    ("CAF", "PCM_16", 16),
    ("W64", "PCM_24", 24),
    ("RF64", "PCM_32", 32),
]


@pytest.mark.parametrize(("fmt", "subtype", "bits"), LOSSLESS)
@pytest.mark.parametrize("channels", [1, 2])
def test_lossless_round_trip_keeps_full_precision(
    tmp_path: Path, rng: np.random.Generator, fmt: str, subtype: str, bits: int | None, channels: int
) -> None:
    shape = (3000, channels)
    if bits is None:
        data = rng.uniform(-1, 1, shape).astype(np.float32 if subtype == "FLOAT" else np.float64)
        expected = data.astype(np.float64)
    else:
        data = _int_pcm(rng, bits, shape)
        expected = data / 2.0**31  # exact: libsndfile's and our scaling are powers of two
    path = tmp_path / f"x.{fmt.lower()}"
    soundfile.write(path, data, 22050, format=fmt, subtype=subtype)
    samples, rate = audio.load_audio(path)
    assert rate == 22050 and samples.dtype == np.float64
    np.testing.assert_array_equal(samples, expected[:, 0] if channels == 1 else expected)


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate"),
    [("OGG", "VORBIS", 16000), ("OGG", "OPUS", 48000), ("MP3", "MPEG_LAYER_III", 44100)],
)
def test_lossy_round_trip_keeps_the_signal(tmp_path: Path, fmt: str, subtype: str, rate: int) -> None:
    original = sine(440.0, 2.0, rate, amplitude=0.5)
    path = tmp_path / f"x.{fmt.lower()}"
    soundfile.write(path, original, rate, format=fmt, subtype=subtype)
    samples, got_rate = audio.load_audio(path)
    assert got_rate == rate and samples.ndim == 1
    assert abs(samples.shape[0] - original.shape[0]) <= 0.05 * rate
    spectrum = np.abs(np.fft.rfft(samples[: rate // 2 * 2]))
    assert np.argmax(spectrum) * rate / (rate // 2 * 2) == pytest.approx(440.0, abs=2.0)
    assert 0.3 < np.max(np.abs(samples)) < 0.7


def _wav_bytes(data: np.ndarray, rate: int = RATE, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


class _Pipe(io.RawIOBase):
    """A read-only, non-seekable stream, like a socket or stdin."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._inner.readinto(buffer)


@pytest.mark.parametrize(
    "kind", ["path", "str", "bytes", "bytearray", "memoryview", "bytesio", "open", "pipe"]
)
def test_every_source_kind_decodes_the_same(tmp_path: Path, rng: np.random.Generator, kind: str) -> None:
    pcm = rng.integers(-32768, 32768, size=(4000, 2), dtype=np.int16)
    data = _wav_bytes(pcm)
    path = tmp_path / "x.wav"
    path.write_bytes(data)
    sources = {
        "path": lambda: path,
        "str": lambda: str(path),
        "bytes": lambda: data,
        "bytearray": lambda: bytearray(data),
        "memoryview": lambda: memoryview(data),
        "bytesio": lambda: io.BytesIO(data),
        "open": lambda: open(path, "rb"),  # noqa: SIM115 - closed below
        "pipe": lambda: _Pipe(data),
    }
    source = sources[kind]()
    try:
        samples, rate = audio.load_audio(source)
    finally:
        if hasattr(source, "close"):
            source.close()
    assert rate == RATE
    np.testing.assert_array_equal(samples, pcm / 32768.0)


@pytest.mark.parametrize(
    ("dtype", "scale"), [(np.int8, 2.0**-7), (np.int16, 2.0**-15), (np.int32, 2.0**-31), (np.float32, 1.0)]
)
def test_arrays_are_scaled_like_pcm(rng: np.random.Generator, dtype: type, scale: float) -> None:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=500, endpoint=True).astype(dtype)
    else:
        array = rng.uniform(-1, 1, 500).astype(dtype)
    samples, rate = audio.load_audio(array, sample_rate=8000)
    assert rate == 8000 and samples.dtype == np.float64
    np.testing.assert_array_equal(samples, array.astype(np.float64) * scale)


def test_float64_array_is_taken_as_is(rng: np.random.Generator) -> None:
    array = rng.uniform(-1, 1, (100, 3))
    samples, _ = audio.load_audio(array, sample_rate=48000.0)
    np.testing.assert_array_equal(samples, array)


def test_to_mono() -> None:
    stereo = np.array([[0.5, -0.5], [1.0, 0.0], [0.25, 0.75]])
    np.testing.assert_array_equal(audio.to_mono(stereo), [0.0, 0.5, 0.5])
    mono = np.array([0.1, 0.2])
    assert audio.to_mono(mono) is mono
    with pytest.raises(InvalidAudioError, match=r"shape \[n\] or \[n, channels\].*\(2, 2, 2\)"):
        audio.to_mono(np.zeros((2, 2, 2)))
    with pytest.raises(InvalidAudioError, match="zero channels"):
        audio.to_mono(np.zeros((5, 0)))


@pytest.mark.parametrize("channels", [1, 2, 3, 6, 7, 8, 12])
def test_to_mono_is_bit_identical_to_the_reference_mean(rng: np.random.Generator, channels: int) -> None:
    # Values spanning 40 orders of magnitude make any change in the order of additions visible.
    samples = rng.standard_normal((5001, channels)) * np.exp(rng.uniform(-20, 20, (5001, channels)))
    np.testing.assert_array_equal(audio.to_mono(samples), np.mean(samples, axis=1))


def test_decode_pcm_s16le_is_exact(rng: np.random.Generator) -> None:
    pcm = rng.integers(-32768, 32768, size=(1000, 2), dtype=np.int16)
    samples = audio.decode_pcm(pcm.astype("<i2").tobytes(), encoding="s16le", sample_rate=16000, channels=2)
    assert samples.shape == (1000, 2) and samples.dtype == np.float64
    np.testing.assert_array_equal(samples, pcm / 32768.0)
    mono = audio.decode_pcm(pcm[:, 0].astype("<i2").tobytes(), sample_rate=16000)
    np.testing.assert_array_equal(mono, pcm[:, 0] / 32768.0)


def test_decode_pcm_f32le(rng: np.random.Generator) -> None:
    values = rng.uniform(-1, 1, 600).astype("<f4")
    samples = audio.decode_pcm(bytearray(values.tobytes()), encoding="f32le", sample_rate=44100, channels=3)
    assert samples.shape == (200, 3)
    np.testing.assert_array_equal(samples.ravel(), values.astype(np.float64))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"data": b""}, AudioDecodeError, r"empty \(0 bytes"),
        ({"data": b"\x00\x01\x02"}, AudioDecodeError, "3 bytes is not a whole number of 1-channel frames"),
        (
            {"data": b"\x00" * 6, "channels": 2},
            AudioDecodeError,
            "6 bytes is not a whole number of 2-channel",
        ),
        ({"data": b"\x00" * 6, "encoding": "f32le"}, AudioDecodeError, "6 bytes"),
        ({"data": b"\x00" * 4, "encoding": "s24le"}, InvalidOptionError, "unknown PCM encoding 's24le'"),
        ({"data": b"\x00" * 4, "channels": 0}, InvalidAudioError, "channels must be an integer.*got 0"),
        ({"data": b"\x00" * 4, "channels": 1.5}, InvalidAudioError, "got 1.5"),
        ({"data": b"\x00" * 4, "sample_rate": 0}, InvalidAudioError, "got 0"),
        ({"data": b"\x00" * 4, "sample_rate": 3999}, InvalidAudioError, "4000..384000 Hz, got 3999"),
        ({"data": b"\x00" * 4, "sample_rate": 500000}, InvalidAudioError, "4000..384000 Hz, got 500000"),
        (
            {"data": np.zeros(4, "<f4").tobytes()[:0] + b"\x00\x00\xc0\x7f", "encoding": "f32le"},
            InvalidAudioError,
            "NaN or Inf",
        ),
        ({"data": "text"}, AudioDecodeError, "must be bytes, got str"),
    ],
)
def test_decode_pcm_rejects_bad_input(kwargs: dict, error: type, match: str) -> None:
    arguments = {"encoding": "s16le", "sample_rate": 16000, "channels": 1, **kwargs}
    data = arguments.pop("data")
    with pytest.raises(error, match=match):
        audio.decode_pcm(data, **arguments)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros(0), r"empty: samples of shape \(0,\)"),
        (np.zeros((0, 2)), "empty"),
        (np.zeros((10, 0)), "zero channels"),
        (np.zeros((2, 48000)), r"48000 channels.*transpose"),
        (np.zeros((2, 2, 2)), r"shape \[n\] or \[n, channels\].*\(2, 2, 2\)"),
        (np.array(0.5), r"shape \(\)"),
        (np.zeros(10, dtype=np.int64), "unsupported sample dtype int64"),
        (np.zeros(10, dtype=np.complex128), "unsupported sample dtype complex128"),
        (np.zeros(10, dtype=bool), "unsupported sample dtype bool"),
        (np.array([0.0, np.nan, 0.0]), r"NaN or Inf \(first at index \(1,\): nan\)"),
        (np.array([[0.0, 0.0], [0.0, -np.inf]], dtype=np.float32), r"first at index \(1, 1\): -inf"),
    ],
)
def test_bad_arrays_are_rejected(array: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidAudioError, match=match):
        audio.load_audio(array, sample_rate=16000)


@pytest.mark.parametrize(
    ("rate", "match"),
    [
        (0, "got 0"),
        (1, r"4000\.\.384000 Hz, got 1$"),
        (3999.0, r"4000\.\.384000 Hz, got 3999.0"),
        (-16000, "got -16000"),
        (384001, "got 384001"),
        (44100.5, "whole number of Hz, got 44100.5"),
        ("16000", "got '16000'"),
        (True, "got True"),
        (float("nan"), "got nan"),
        (None, "needs its sample_rate"),
    ],
)
def test_bad_sample_rates_are_rejected(rate: object, match: str) -> None:
    error = InvalidOptionError if rate is None else InvalidAudioError
    with pytest.raises(error, match=match):
        audio.load_audio(np.zeros(100), sample_rate=rate)  # type: ignore[arg-type]


def test_list_is_not_a_source() -> None:
    with pytest.raises(AudioDecodeError, match="cannot read audio from a list"):
        audio.load_audio([0.0, 0.1])  # type: ignore[arg-type]


def test_file_rate_contradiction_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(_wav_bytes(np.zeros(100, dtype=np.int16)))
    with pytest.raises(
        InvalidOptionError, match=r"sample_rate=44100 contradicts the rate of .*x\.wav.*16000 Hz"
    ):
        audio.load_audio(path, sample_rate=44100)
    assert audio.load_audio(path, sample_rate=16000)[1] == 16000


@pytest.mark.parametrize("rate", [1, 3999])
def test_files_below_the_minimum_rate_are_rejected_everywhere(tmp_path: Path, rate: int) -> None:
    # A 1 Hz WAV of 200 samples would otherwise be upsampled to 200 s at 16 kHz: seconds of CPU for nothing.
    path = tmp_path / "slow.wav"
    soundfile.write(path, np.zeros(200), rate, subtype="PCM_16")
    match = rf"sample rate of audio (\S*slow\.wav'|<[\w ]+>) must be in 4000\.\.384000 Hz, got {rate}$"
    for make_source in (lambda: path, path.read_bytes, lambda: io.BytesIO(path.read_bytes())):
        with pytest.raises(InvalidAudioError, match=match):
            audio.load_audio(make_source())
        with pytest.raises(InvalidAudioError, match=match):
            audio.extract_examples(make_source())
        with pytest.raises(InvalidAudioError, match=match):
            list(audio.iter_file_examples(make_source()))
    with pytest.raises(InvalidAudioError, match=f"4000..384000 Hz, got {rate}"):
        audio.StreamingFrontEnd(rate)
    with pytest.raises(InvalidAudioError, match=f"4000..384000 Hz, got {rate}"):
        audio.waveform_to_examples(np.zeros(200), rate)


def test_the_minimum_rate_itself_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "low.wav"
    soundfile.write(path, np.zeros(4000), 4000, subtype="PCM_16")
    examples = audio.extract_examples(path)
    assert (examples.sample_rate, examples.duration_seconds, examples.num_examples) == (4000, 1.0, 1)
    assert audio.decode_pcm(b"\x00\x00", sample_rate=4000).shape == (1,)
    front = audio.StreamingFrontEnd(4000)
    pushed, _ = front.push(np.zeros(4000))
    assert pushed.shape[0] + front.finish()[0].shape[0] == 1


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match=r"no such audio file: .*nope\.wav"):
        audio.load_audio(tmp_path / "nope.wav")
    with pytest.raises(AudioDecodeError, match="no such audio file"):
        audio.load_audio(tmp_path)  # a directory is not an audio file


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", r"empty \(0 bytes\)"),
        (
            b"this is not audio at all, just some text" * 5,
            "cannot decode audio <200 bytes>: .*Format not recognised",
        ),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot decode audio <16 bytes>"),
    ],
)
def test_garbage_and_empty_bytes(data: bytes, match: str) -> None:
    with pytest.raises(AudioDecodeError, match=match):
        audio.load_audio(data)


def test_empty_pipe() -> None:
    with pytest.raises(AudioDecodeError, match="empty"):
        audio.load_audio(_Pipe(b""))


def test_truncated_wav_is_reported(rng: np.random.Generator) -> None:
    data = _wav_bytes(rng.integers(-100, 100, size=(16000, 2), dtype=np.int16))
    with pytest.raises(
        AudioDecodeError, match=r"truncated: its data chunk declares 64000 bytes but only 31978"
    ):
        audio.load_audio(data[: len(data) // 2])


def test_truncated_aiff_is_reported(rng: np.random.Generator) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, rng.uniform(-0.5, 0.5, 8000), 8000, format="AIFF", subtype="PCM_16")
    with pytest.raises(AudioDecodeError, match="truncated"):
        audio.load_audio(buffer.getvalue()[:9000])


def test_truncated_flac_is_reported(rng: np.random.Generator) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, rng.uniform(-0.5, 0.5, 32000), 16000, format="FLAC", subtype="PCM_16")
    data = buffer.getvalue()
    with pytest.raises(AudioDecodeError, match=r"cannot decode audio|truncated"):
        audio.load_audio(data[: len(data) // 2])


def test_wav_with_no_frames_is_empty_audio() -> None:
    with pytest.raises(InvalidAudioError, match="contains no samples"):
        audio.load_audio(_wav_bytes(np.zeros((0, 1), dtype=np.int16)))


def test_float_wav_with_nan_is_rejected() -> None:
    data = np.zeros(100, dtype=np.float32)
    data[42] = np.nan
    with pytest.raises(InvalidAudioError, match=r"NaN or Inf \(first at index \(42,\)"):
        audio.load_audio(_wav_bytes(data, subtype="FLOAT"))


def test_streamed_wav_with_placeholder_length_is_not_truncated(rng: np.random.Generator) -> None:
    # Writers on pipes cannot seek back to fill in sizes, and leave 0xFFFFFFFF; that is not truncation.
    pcm = rng.integers(-1000, 1000, size=800, dtype=np.int16)
    data = bytearray(_wav_bytes(pcm))
    data[4:8] = b"\xff\xff\xff\xff"
    data[40:44] = b"\xff\xff\xff\xff"  # the data chunk's size field (44-byte canonical header)
    samples, _ = audio.load_audio(bytes(data))
    np.testing.assert_array_equal(samples, pcm / 32768.0)
