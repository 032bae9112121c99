"""Framing into examples: hop option, start times, short-clip policy, the Examples record."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audioembed import audio
from audioembed.audio.examples import hop_to_frames
from audioembed.errors import InvalidAudioError, InvalidOptionError
from tests.audio.conftest import reference_wav


@pytest.mark.parametrize(
    ("samples", "examples"),
    [(15599, 0), (15600, 1), (15601, 1), (30959, 1), (30960, 2), (16000 * 3, 3)],
)
def test_example_counts_around_0975_seconds(rng: np.random.Generator, samples: int, examples: int) -> None:
    log_mel, starts = audio.waveform_to_examples(rng.uniform(-1, 1, samples), 16000, short_clip="drop")
    assert log_mel.shape == (examples, 96, 64) and starts.shape == (examples,)


@pytest.mark.parametrize(
    ("hop_seconds", "count", "step"),
    [
        (0.96, 10, 0.96),
        (0.48, 19, 0.48),
        (0.5, 19, 0.5),
        (0.01, 903, 0.01),
        (0.29, 32, 0.29),
        (2, 5, 2.0),
        (12.0, 1, 12.0),
    ],
)
def test_hops(hop_seconds: float, count: int, step: float) -> None:
    samples, rate = audio.load_audio(reference_wav("speechlike_16k_10s"))
    log_mel, starts = audio.waveform_to_examples(samples, rate, hop_seconds=hop_seconds)
    reference, _ = audio.waveform_to_examples(samples, rate)
    assert log_mel.shape == (count, 96, 64)
    np.testing.assert_allclose(starts, step * np.arange(count), rtol=0, atol=1e-12)
    # Each example is the same 96 frames wherever it starts: check against the non-overlapping ones.
    frames = audio.log_mel_spectrogram(samples)
    hop_frames = round(step * 100)
    for i in (0, count - 1):
        np.testing.assert_array_equal(log_mel[i], frames[i * hop_frames : i * hop_frames + 96])
    if hop_frames == 96:
        np.testing.assert_array_equal(log_mel, reference)


@pytest.mark.parametrize(
    ("hop", "frames"),
    [
        (np.float32(0.96), 96),
        (np.float32(0.48), 48),
        (np.float32(0.33), 33),
        (np.float32(2.56), 256),
        (np.float32(0.01), 1),
        (np.float64(0.29), 29),
        (0.33, 33),
        (2.56, 256),
        (1, 100),
        (np.int32(3), 300),
        (0.96 + 5e-7, 96),  # 5e-5 frames off: float noise, accepted
    ],
)
def test_hop_spellings_are_accepted(hop: object, frames: int) -> None:
    assert hop_to_frames(hop) == frames
    front = audio.StreamingFrontEnd(16000, hop_seconds=hop)  # type: ignore[arg-type]
    assert front.hop_seconds == frames / 100


def test_hop_just_beyond_the_tolerance_is_rejected() -> None:
    # 2e-6 s is 2e-4 frames: twice the tolerance, so it is a different hop, not a spelling of 0.96.
    with pytest.raises(InvalidOptionError, match=r"multiple of 0.01 s, got 0.96000(2|19)"):
        hop_to_frames(0.96 + 2e-6)


@pytest.mark.parametrize(
    "hop", [0, -0.96, 0.005, 0.015, 0.9601, float("nan"), float("inf"), "0.96", True, None]
)
def test_bad_hops_are_rejected(hop: object) -> None:
    with pytest.raises(
        InvalidOptionError, match=r"hop_seconds must be a (positive multiple of 0.01 s|number)"
    ):
        audio.waveform_to_examples(np.zeros(16000), 16000, hop_seconds=hop)  # type: ignore[arg-type]


def test_bad_policies_and_resamplers_are_rejected() -> None:
    with pytest.raises(
        InvalidOptionError, match=r"short_clip must be one of \('pad', 'drop'\), got 'repeat'"
    ):
        audio.waveform_to_examples(np.zeros(16000), 16000, short_clip="repeat")
    with pytest.raises(InvalidOptionError, match=r"resampler must be one of .*got 'sinc'"):
        audio.waveform_to_examples(np.zeros(16000), 16000, resampler="sinc")
    # Options are checked before decoding: garbage bytes report the option, not the bytes.
    with pytest.raises(InvalidOptionError, match="hop_seconds"):
        audio.extract_examples(b"garbage", hop_seconds=0.123)


def test_short_clip_pad_is_the_zero_padded_waveform(rng: np.random.Generator) -> None:
    clip = rng.uniform(-1, 1, 8000)  # 0.5 s
    log_mel, starts = audio.waveform_to_examples(clip, 16000)
    padded = np.zeros(15600)
    padded[:8000] = clip
    expected, _ = audio.waveform_to_examples(padded, 16000, short_clip="drop")
    assert log_mel.shape == (1, 96, 64)
    np.testing.assert_array_equal(log_mel, expected)
    np.testing.assert_array_equal(starts, [0.0])
    # Frames wholly in the padding are silence.
    np.testing.assert_array_equal(log_mel[0, 60:], np.log(0.01))


def test_short_clip_drop_is_the_reference_empty_result() -> None:
    log_mel, starts = audio.waveform_to_examples(np.full(1000, 0.1), 16000, short_clip="drop")
    assert log_mel.shape == (0, 96, 64) and log_mel.dtype == np.float64 and starts.shape == (0,)


def test_one_sample_clip_is_padded_not_crashed() -> None:
    log_mel, _ = audio.waveform_to_examples(np.array([0.5]), 16000)
    assert log_mel.shape == (1, 96, 64)


def test_examples_record(tmp_path: Path, rng: np.random.Generator) -> None:
    path = tmp_path / "x.flac"
    soundfile.write(path, rng.uniform(-0.5, 0.5, (16000 * 2 + 123, 2)), 16000, subtype="PCM_24")
    examples = audio.extract_examples(path, hop_seconds=0.5)
    assert isinstance(examples, audio.Examples)
    assert examples.log_mel.shape == (3, 96, 64) and examples.num_examples == 3
    np.testing.assert_allclose(examples.timestamps, [0.0, 0.5, 1.0])
    assert examples.window_seconds == 0.96 and examples.hop_seconds == 0.5
    assert examples.duration_seconds == pytest.approx((32000 + 123) / 16000)
    assert (examples.sample_rate, examples.num_channels, examples.short_clip) == (16000, 2, "none")
    with pytest.raises(AttributeError):
        examples.short_clip = "pad"  # type: ignore[misc]
    samples, rate = audio.load_audio(path)
    expected, _ = audio.waveform_to_examples(samples, rate, hop_seconds=0.5)
    np.testing.assert_array_equal(examples.log_mel, expected)


@pytest.mark.parametrize(("policy", "count"), [("pad", 1), ("drop", 0)])
def test_examples_record_says_which_short_clip_policy_applied(policy: str, count: int) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(4000, dtype=np.int16), 16000, format="WAV")
    examples = audio.extract_examples(buffer.getvalue(), short_clip=policy)
    assert examples.short_clip == policy and examples.num_examples == count
    assert examples.timestamps.shape == (count,) and examples.duration_seconds == 0.25


def test_array_source_needs_a_rate() -> None:
    with pytest.raises(InvalidOptionError, match="needs its sample_rate"):
        audio.extract_examples(np.zeros(16000))
    examples = audio.extract_examples(np.zeros((16000, 3), dtype=np.float32), sample_rate=16000)
    assert examples.num_channels == 3 and examples.num_examples == 1


def test_empty_array_is_rejected() -> None:
    with pytest.raises(InvalidAudioError, match="empty"):
        audio.waveform_to_examples(np.zeros(0), 16000)
