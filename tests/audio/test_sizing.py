"""Size before decoding: probe() reads headers only, expected_examples() predicts the framing exactly."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audioembed import audio
from audioembed.errors import AudioDecodeError, InvalidAudioError, InvalidOptionError


def _encoded(data: np.ndarray, rate: int, fmt: str = "WAV", subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


class _Pipe(io.RawIOBase):
    """A readable stream that cannot seek, like a socket or stdin."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        return self._data.readinto(buffer)


@pytest.mark.parametrize(
    ("fmt", "subtype", "rate", "channels"),
    [
        ("WAV", "PCM_16", 16000, 1),
        ("WAV", "FLOAT", 44100, 2),
        ("WAV", "DOUBLE", 8000, 3),
        ("FLAC", "PCM_24", 48000, 2),
        ("OGG", "VORBIS", 22050, 1),
    ],
)
def test_probe_reports_what_load_audio_decodes(
    tmp_path: Path, fmt: str, subtype: str, rate: int, channels: int
) -> None:
    frames = rate + 1234
    data = _encoded(np.zeros((frames, channels)), rate, fmt, subtype)
    path = tmp_path / f"x.{fmt.lower()}"
    path.write_bytes(data)
    samples, _ = audio.load_audio(data)
    expected = audio.AudioInfo(samples.shape[0], rate, channels, samples.shape[0] / rate)
    assert samples.shape[0] == frames
    with path.open("rb") as handle:
        for source in (path, str(path), data, bytearray(data), memoryview(data), handle):
            assert audio.probe(source) == expected
    assert audio.probe(data, sample_rate=rate) == expected


def test_probe_of_mp3_is_close_to_the_decoded_length() -> None:
    data = _encoded(np.zeros(3 * 44100), 44100, "MP3", "MPEG_LAYER_III")
    info = audio.probe(data)
    decoded, _ = audio.load_audio(data)
    assert (info.sample_rate, info.channels) == (44100, 1)
    assert abs(info.frames - decoded.shape[0]) <= 1152  # the estimate is within one MP3 frame


def test_probe_reads_only_the_header(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _encoded(np.zeros(160000, dtype=np.int16), 16000)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("probe decoded samples")

    for method in ("read", "blocks", "buffer_read"):
        monkeypatch.setattr(soundfile.SoundFile, method, no_decoding)
    assert audio.probe(data).duration_seconds == 10.0
    with pytest.raises(AssertionError, match="probe decoded samples"):
        audio.load_audio(data)  # the patch is live: decoding would have been caught


def test_probe_restores_the_file_position(tmp_path: Path) -> None:
    data = _encoded(np.full(20000, 1000, dtype=np.int16), 16000)
    buffer = io.BytesIO(data)
    assert audio.probe(buffer).frames == 20000
    assert buffer.tell() == 0
    samples, _ = audio.load_audio(buffer)  # the same object still decodes in full
    assert samples.shape == (20000,)
    path = tmp_path / "x.wav"
    path.write_bytes(data)
    with path.open("rb") as handle:
        audio.probe(handle)
        assert handle.tell() == 0


@pytest.mark.parametrize(
    ("array", "rate", "info"),
    [
        (np.zeros(16000, dtype=np.float32), 16000, (16000, 16000, 1, 1.0)),
        (np.zeros((8000, 2), dtype=np.int16), 8000.0, (8000, 8000, 2, 1.0)),
        (np.full((44100, 1), np.nan), 44100, (44100, 44100, 1, 1.0)),  # values are not read
    ],
)
def test_probe_of_an_array_uses_its_shape(array: np.ndarray, rate: float, info: tuple) -> None:
    assert audio.probe(array, sample_rate=rate) == audio.AudioInfo(*info)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("source", "kwargs", "error", "match"),
    [
        (np.zeros(10), {}, InvalidOptionError, "needs its sample_rate"),
        (np.zeros(10), {"sample_rate": 1000}, InvalidAudioError, "4000..384000 Hz, got 1000"),
        (np.zeros(0), {"sample_rate": 16000}, InvalidAudioError, r"empty: samples of shape \(0,\)"),
        (np.zeros((2, 2, 2)), {"sample_rate": 16000}, InvalidAudioError, r"\(2, 2, 2\)"),
        (np.zeros(4, dtype=np.int64), {"sample_rate": 16000}, InvalidAudioError, "unsupported sample dtype"),
        (np.zeros((2, 48000)), {"sample_rate": 16000}, InvalidAudioError, "48000 channels"),
        (b"", {}, AudioDecodeError, r"empty \(0 bytes\)"),
        (b"not audio at all" * 10, {}, AudioDecodeError, r"cannot decode audio <160 bytes>"),
        ([0.0, 1.0], {}, AudioDecodeError, "cannot read audio from a list"),
        (_encoded(np.zeros(100), 16000), {"sample_rate": 44100}, InvalidOptionError, "contradicts"),
        (_encoded(np.zeros(100), 2000), {}, InvalidAudioError, r"4000\.\.384000 Hz, got 2000$"),
        (_encoded(np.zeros((0, 1)), 16000), {}, InvalidAudioError, "contains no samples"),
        (_encoded(np.zeros(5000), 16000)[:3000], {}, AudioDecodeError, "truncated"),
        (_Pipe(_encoded(np.zeros(100), 16000)), {}, AudioDecodeError, "non-seekable _Pipe"),
    ],
)
def test_probe_rejects_what_load_audio_rejects(source: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        audio.probe(source, **kwargs)  # type: ignore[arg-type]


def test_probe_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match=r"no such audio file: .*nope\.wav"):
        audio.probe(tmp_path / "nope.wav")


HOPS = [0.96, 0.48, 0.33, 0.01, 0.5, 2.56, 5.0]


@pytest.mark.parametrize("hop", HOPS)
def test_expected_examples_matches_the_framing_at_16k(rng: np.random.Generator, hop: float) -> None:
    # Every boundary: the short-clip limit, the first frames and examples past it, and random lengths.
    edges = [1, 399, 400, 15599, 15600, 15601, 15759, 15760, 30959, 30960, 31119, 31120]
    lengths = edges + [int(n) for n in rng.integers(1, 70000, 12)]
    for n in lengths:
        for policy in ("pad", "drop"):
            log_mel, _ = audio.waveform_to_examples(np.zeros(n), 16000, hop_seconds=hop, short_clip=policy)
            got = audio.expected_examples(n / 16000, hop_seconds=hop, short_clip=policy)
            assert got == log_mel.shape[0], (n, hop, policy)


@pytest.mark.parametrize("rate", [4000, 8000, 11025, 22050, 44100, 48000, 96000])
def test_expected_examples_matches_the_framing_after_resampling(rng: np.random.Generator, rate: int) -> None:
    # Source lengths whose 16 kHz length lands on, just below and just above each boundary.
    lengths = set()
    for target in (15599, 15600, 15760, 30960, 31120):
        exact = target * rate / 16000
        lengths |= {math.floor(exact) - 1, math.floor(exact), math.ceil(exact), math.ceil(exact) + 1}
    lengths |= {int(n) for n in rng.integers(rate // 2, rate * 3, 4)}
    for n in sorted(lengths):
        hop = float(rng.choice(HOPS[:5]))
        log_mel, _ = audio.waveform_to_examples(np.zeros(n), rate, hop_seconds=hop, resampler="fast")
        assert audio.expected_examples(n / rate, hop_seconds=hop) == log_mel.shape[0], (n, rate, hop)


def test_expected_examples_of_probed_files(tmp_path: Path) -> None:
    for rate, frames, hop in [(44100, 100_000, 0.48), (16000, 15_000, 0.96), (22050, 66_150, 0.25)]:
        path = tmp_path / f"{rate}.wav"
        soundfile.write(path, np.zeros(frames), rate, subtype="PCM_16")
        info = audio.probe(path)
        examples = audio.extract_examples(path, hop_seconds=hop)
        assert audio.expected_examples(info.duration_seconds, hop_seconds=hop) == examples.num_examples


def test_expected_examples_of_long_audio_without_audio() -> None:
    # 10 hours at 44.1 kHz, far too long to frame in a test: the count from the framing formulas.
    n16 = 36000 * 16000
    frames = 1 + (n16 - 400) // 160
    assert audio.expected_examples(36000 * 44100 / 44100) == 1 + (frames - 96) // 96
    assert audio.expected_examples(36000.0, hop_seconds=0.01) == frames - 95
    assert audio.expected_examples(np.float32(2.0), hop_seconds=np.float32(0.96)) == 2
    assert audio.expected_examples(3) == 3


@pytest.mark.parametrize(
    ("duration", "kwargs", "error", "match"),
    [
        (0, {}, InvalidAudioError, "positive number, got 0"),
        (-1.0, {}, InvalidAudioError, r"got -1\.0"),
        (float("nan"), {}, InvalidAudioError, "got nan"),
        (float("inf"), {}, InvalidAudioError, "got inf"),
        ("3", {}, InvalidAudioError, "got '3'"),
        (True, {}, InvalidAudioError, "got True"),
        (1.0, {"hop_seconds": 0.123}, InvalidOptionError, "hop_seconds must be a positive multiple"),
        (1.0, {"short_clip": "none"}, InvalidOptionError, "short_clip must be one of"),
    ],
)
def test_expected_examples_rejects_bad_input(duration: object, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        audio.expected_examples(duration, **kwargs)
