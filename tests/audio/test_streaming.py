"""Streaming front-end and block-wise file reading: equal to the one-shot path, bounded state, errors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audioembed import audio
from audioembed.errors import AudioDecodeError, InvalidAudioError, InvalidInputError, InvalidOptionError


def stream(
    samples: np.ndarray,
    rate: int,
    rng: np.random.Generator,
    *,
    max_block: int,
    short_clip: str = "pad",
    **options,
) -> tuple[np.ndarray, np.ndarray, audio.StreamingFrontEnd]:
    """Push ``samples`` in random block sizes (including empty blocks); return everything emitted."""
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    front = audio.StreamingFrontEnd(rate, num_channels=channels, **options)
    outputs = []
    position = 0
    while position < samples.shape[0]:
        size = int(rng.integers(0, max_block + 1))
        outputs.append(front.push(samples[position : position + size]))
        position += size
    outputs.append(front.finish(short_clip=short_clip))
    log_mel = np.concatenate([o[0] for o in outputs])
    starts = np.concatenate([o[1] for o in outputs])
    return log_mel, starts, front


@pytest.mark.parametrize(
    ("max_block", "hop_seconds"),
    [
        (2, 0.96),
        (37, 0.48),
        (160, 1.23),
        (1000, 0.96),
        (1000, 0.01),
        (20000, 0.48),
        (20000, 1.23),
        (10**5, 0.96),
    ],
)
def test_streaming_equals_one_shot_16k(rng: np.random.Generator, max_block: int, hop_seconds: float) -> None:
    samples = rng.uniform(-1, 1, 16000 * 4 + 777) if max_block > 2 else rng.uniform(-1, 1, 16000 + 321)
    expected, expected_starts = audio.waveform_to_examples(samples, 16000, hop_seconds=hop_seconds)
    log_mel, starts, front = stream(samples, 16000, rng, max_block=max_block, hop_seconds=hop_seconds)
    assert log_mel.shape == expected.shape
    np.testing.assert_allclose(log_mel, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(starts, expected_starts)
    assert front.short_clip == "none" and front.num_examples == expected.shape[0]
    assert front.duration_seconds == samples.shape[0] / 16000 and front.samples_pushed == samples.shape[0]
    assert (front.sample_rate, front.num_channels, front.hop_seconds) == (16000, 1, hop_seconds)


def test_streaming_stereo_int16_equals_one_shot(rng: np.random.Generator) -> None:
    pcm = rng.integers(-32768, 32768, size=(16000 * 3, 2), dtype=np.int16)
    expected, _ = audio.waveform_to_examples(pcm, 16000)
    log_mel, _, _ = stream(pcm, 16000, rng, max_block=5000)
    np.testing.assert_allclose(log_mel, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("policy", "count"), [("pad", 1), ("drop", 0)])
def test_streaming_short_clip(rng: np.random.Generator, policy: str, count: int) -> None:
    samples = rng.uniform(-1, 1, 9000)
    expected, _ = audio.waveform_to_examples(samples, 16000, short_clip=policy)
    log_mel, starts, front = stream(samples, 16000, rng, max_block=2000, short_clip=policy)
    assert log_mel.shape == (count, 96, 64) and starts.shape == (count,)
    np.testing.assert_allclose(log_mel, expected, rtol=0, atol=1e-12)
    assert front.short_clip == policy


def test_state_stays_bounded(rng: np.random.Generator) -> None:
    front = audio.StreamingFrontEnd(16000, hop_seconds=5.0)  # a hop longer than the example: frames skipped
    for _ in range(50):
        front.push(rng.uniform(-1, 1, 16000))
    assert front._frames.shape[0] <= 96 + 100 and front._pending.shape[0] < 400
    assert front._head_samples == 15600 and front.num_examples == 10


def test_streaming_usage_errors() -> None:
    front = audio.StreamingFrontEnd(16000, num_channels=2)
    with pytest.raises(InvalidAudioError, match=r"expected 2 channel\(s\), got samples of shape \(10,\)"):
        front.push(np.zeros(10))
    with pytest.raises(InvalidAudioError, match="no samples were pushed"):
        front.finish()
    front.push(np.zeros((100, 2)))
    with pytest.raises(InvalidOptionError, match="short_clip must be one of"):
        front.finish(short_clip="loop")
    front.finish()
    with pytest.raises(
        InvalidInputError, match=r"push\(\) called on a StreamingFrontEnd that has already finished"
    ):
        front.push(np.zeros((10, 2)))
    with pytest.raises(InvalidInputError, match=r"finish\(\) called"):
        front.finish()


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sample_rate": 0}, InvalidAudioError, "got 0"),
        ({"sample_rate": 16000, "num_channels": 0}, InvalidAudioError, "num_channels must be .*got 0"),
        ({"sample_rate": 16000, "hop_seconds": 0.0123}, InvalidOptionError, "hop_seconds"),
        ({"sample_rate": 16000, "resampler": "linear"}, InvalidOptionError, "resampler must be one of"),
    ],
)
def test_streaming_constructor_rejects_bad_options(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        audio.StreamingFrontEnd(**kwargs)


@pytest.mark.parametrize("block_seconds", [0.013, 0.5, 3.0, 100.0])
def test_iter_file_examples_equals_one_shot(
    tmp_path: Path, rng: np.random.Generator, block_seconds: float
) -> None:
    path = tmp_path / "x.flac"
    soundfile.write(path, rng.integers(-20000, 20000, size=(16000 * 5 + 99, 2), dtype=np.int16), 16000)
    expected = audio.extract_examples(path, hop_seconds=0.48)
    blocks = list(audio.iter_file_examples(path, block_seconds=block_seconds, hop_seconds=0.48))
    assert all(b[0].shape[0] >= 1 for b in blocks)
    np.testing.assert_allclose(np.concatenate([b[0] for b in blocks]), expected.log_mel, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in blocks]), expected.timestamps)


def test_iter_file_examples_sources_and_short_clips(rng: np.random.Generator) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, rng.uniform(-0.5, 0.5, 3000), 16000, format="WAV", subtype="FLOAT")
    data = buffer.getvalue()
    padded = list(audio.iter_file_examples(io.BytesIO(data)))
    assert len(padded) == 1 and padded[0][0].shape == (1, 96, 64)
    assert list(audio.iter_file_examples(data, short_clip="drop")) == []


def test_iter_file_examples_errors(tmp_path: Path, rng: np.random.Generator) -> None:
    with pytest.raises(InvalidOptionError, match="block_seconds must be a positive number of seconds, got 0"):
        next(audio.iter_file_examples(b"x", block_seconds=0))
    with pytest.raises(InvalidOptionError, match="use StreamingFrontEnd for arrays"):
        next(audio.iter_file_examples(np.zeros(10)))  # type: ignore[arg-type]
    with pytest.raises(AudioDecodeError, match="no such audio file"):
        next(audio.iter_file_examples(tmp_path / "missing.wav"))
    buffer = io.BytesIO()
    soundfile.write(buffer, rng.uniform(-0.5, 0.5, 48000), 16000, format="FLAC")
    data = buffer.getvalue()
    with pytest.raises(AudioDecodeError, match=r"cannot decode audio|truncated"):
        list(audio.iter_file_examples(data[: len(data) * 2 // 3], block_seconds=0.25))


@pytest.mark.parametrize(("rate", "max_block"), [(44100, 3000), (44100, 50000), (48000, 777), (8000, 4000)])
def test_streaming_equals_one_shot_through_the_resampler(
    rng: np.random.Generator, rate: int, max_block: int
) -> None:
    samples = rng.uniform(-0.5, 0.5, (rate * 3 + 123, 2))
    expected, expected_starts = audio.waveform_to_examples(samples, rate)
    log_mel, starts, _ = stream(samples, rate, rng, max_block=max_block)
    assert log_mel.shape == expected.shape == (3, 96, 64)
    np.testing.assert_allclose(log_mel, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(starts, expected_starts)


def test_streaming_fast_resampler_matches_its_one_shot(rng: np.random.Generator) -> None:
    samples = rng.uniform(-0.5, 0.5, 44100 * 2 + 5)
    expected, _ = audio.waveform_to_examples(samples, 44100, resampler="fast", hop_seconds=0.5)
    log_mel, _, _ = stream(samples, 44100, rng, max_block=10000, resampler="fast", hop_seconds=0.5)
    np.testing.assert_allclose(log_mel, expected, rtol=0, atol=1e-9)


@pytest.mark.parametrize("length", [1, 2, 3, 100])
def test_tiny_clips_at_44k1_are_padded(length: int) -> None:
    samples = np.full(length, 0.25)
    log_mel, starts = audio.waveform_to_examples(samples, 44100)
    assert log_mel.shape == (1, 96, 64) and starts.tolist() == [0.0]
    front = audio.StreamingFrontEnd(44100)
    front.push(samples)
    streamed, _ = front.finish()
    np.testing.assert_allclose(streamed, log_mel, rtol=0, atol=1e-12)
    assert front.short_clip == "pad"
