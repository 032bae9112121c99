"""Golden outputs of Google's original pipeline (tests/fixtures/reference, see the shared README)."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed import audio
from tests.audio.conftest import reference_outputs, reference_wav

SIXTEEN_KHZ = ["sine1k_16k_3s", "speechlike_16k_10s"]


@pytest.mark.parametrize("name", SIXTEEN_KHZ)
def test_16khz_reference_log_mel(name: str) -> None:
    expected = reference_outputs(name)["log_mel"]
    examples = audio.extract_examples(reference_wav(name))
    assert examples.log_mel.shape == expected.shape
    np.testing.assert_allclose(examples.log_mel, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(examples.timestamps, 0.96 * np.arange(expected.shape[0]), atol=1e-12)
    assert examples.short_clip == "none" and examples.sample_rate == 16000 and examples.num_channels == 1


@pytest.mark.parametrize("name", SIXTEEN_KHZ)
def test_16khz_reference_through_the_streaming_path(name: str) -> None:
    expected = reference_outputs(name)["log_mel"]
    blocks = list(audio.iter_file_examples(reference_wav(name), block_seconds=0.7))
    log_mel = np.concatenate([b[0] for b in blocks])
    np.testing.assert_allclose(log_mel, expected, rtol=0, atol=1e-6)


def test_16bit_samples_are_exactly_int16_over_32768() -> None:
    import soundfile

    raw, _ = soundfile.read(reference_wav("speechlike_16k_10s"), dtype="int16")
    samples, rate = audio.load_audio(reference_wav("speechlike_16k_10s"))
    assert rate == 16000 and samples.dtype == np.float64
    np.testing.assert_array_equal(samples, raw / 32768.0)


def test_stereo_downmix_is_the_mean_of_scaled_channels() -> None:
    import soundfile

    raw, _ = soundfile.read(reference_wav("stereo_44k1_5s"), dtype="int16")
    samples, rate = audio.load_audio(reference_wav("stereo_44k1_5s"))
    assert rate == 44100 and samples.shape == (220500, 2)
    np.testing.assert_array_equal(audio.to_mono(samples), np.mean(raw / 32768.0, axis=1))


def test_44k1_stereo_reference_waveform_gives_reference_log_mel() -> None:
    # The reference's own 16 kHz waveform through our log-mel: isolates the front-end from the resampler.
    outputs = reference_outputs("stereo_44k1_5s")
    log_mel, _ = audio.waveform_to_examples(outputs["waveform_16k"].astype(np.float64), 16000)
    # waveform_16k was stored as float32, so allow its rounding (~6e-8 relative) through the log.
    np.testing.assert_allclose(log_mel, outputs["log_mel"], rtol=0, atol=1e-4)


def test_44k1_stereo_reference_log_mel_through_the_default_resampler() -> None:
    expected = reference_outputs("stereo_44k1_5s")["log_mel"]
    examples = audio.extract_examples(reference_wav("stereo_44k1_5s"))
    assert examples.log_mel.shape == expected.shape == (5, 96, 64)
    np.testing.assert_allclose(examples.log_mel, expected, rtol=0, atol=1e-6)
    assert (examples.sample_rate, examples.num_channels, examples.duration_seconds) == (44100, 2, 5.0)


def test_44k1_stereo_reference_log_mel_through_the_streaming_path() -> None:
    expected = reference_outputs("stereo_44k1_5s")["log_mel"]
    blocks = list(audio.iter_file_examples(reference_wav("stereo_44k1_5s"), block_seconds=0.37))
    np.testing.assert_allclose(np.concatenate([b[0] for b in blocks]), expected, rtol=0, atol=1e-6)


def test_fast_resampler_is_close_but_not_the_reference() -> None:
    # resample_poly is a different (good) filter: near the reference, measurably not equal to it.
    expected = reference_outputs("stereo_44k1_5s")["log_mel"]
    examples = audio.extract_examples(reference_wav("stereo_44k1_5s"), resampler="fast")
    difference = np.abs(examples.log_mel - expected)
    assert examples.log_mel.shape == expected.shape
    assert 1e-6 < difference.max() < 1.0 and np.median(difference) < 0.05
