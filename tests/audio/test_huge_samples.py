"""Finite but absurd samples (1e300, 1e308) must fail their own request, never yield inf/NaN log-mel."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile

from audioembed import audio
from audioembed.audio.constants import MAX_ABS_SAMPLE
from audioembed.audio.examples import LOG_MEL_CEILING, check_log_mel
from audioembed.errors import InvalidAudioError, InvalidInputError

TOO_LARGE = r"peak \|sample\| is {peak}.*audio should be scaled to about \[-1, 1\]"


def huge(seconds: float, rate: int, value: float = 1e300, channels: int = 1) -> np.ndarray:
    """An alternating ±value signal (a full-scale Nyquist tone), float64 [n] or [n, channels]."""
    n = round(seconds * rate)
    x = np.where(np.arange(n) % 2 == 0, value, -value)
    return x if channels == 1 else np.repeat(x[:, None], channels, axis=1)  # (n, channels)


def stream(front: audio.StreamingFrontEnd, samples: np.ndarray, block: int) -> None:
    for start in range(0, samples.shape[0], block):
        front.push(samples[start : start + block])
    front.finish()


@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("seconds", [2.5, 0.3])  # whole examples, and a short clip that is padded
def test_float64_wav_of_1e300_is_refused_by_both_paths(tmp_path: Path, rate: int, seconds: float) -> None:
    path = tmp_path / "loud.wav"
    soundfile.write(path, huge(seconds, rate, channels=2), rate, subtype="DOUBLE")
    match = TOO_LARGE.format(peak=r"1e\+300")
    with pytest.raises(InvalidAudioError, match=match):
        audio.extract_examples(path)
    with pytest.raises(InvalidAudioError, match=match):
        list(audio.iter_file_examples(path, block_seconds=0.25))


@pytest.mark.parametrize("rate", [16000, 22050])
@pytest.mark.parametrize("seconds", [2.5, 0.3])
def test_array_of_1e300_is_refused_by_both_paths(rate: int, seconds: float) -> None:
    samples = huge(seconds, rate)
    samples[7] = -3e300  # the message names the peak of the source, not of the resampled waveform
    match = TOO_LARGE.format(peak=r"3e\+300")
    with pytest.raises(InvalidAudioError, match=match):
        audio.waveform_to_examples(samples, rate)
    with pytest.raises(InvalidAudioError, match=match):
        audio.extract_examples(samples, sample_rate=rate)
    with pytest.raises(InvalidAudioError, match=match):
        stream(audio.StreamingFrontEnd(rate), samples, block=rate // 10)


@pytest.mark.parametrize("value", [1e307, np.finfo(np.float64).max])
def test_samples_that_overflow_the_fft_fail_cleanly_without_warnings(value: float) -> None:
    samples = huge(1.5, 16000, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy overflow warnings may escape before the error
        with pytest.raises(InvalidAudioError, match=TOO_LARGE.format(peak=r"1(\.\d+)?e\+30[78]")):
            audio.waveform_to_examples(samples, 16000)
        with pytest.raises(InvalidAudioError, match=TOO_LARGE.format(peak=r"1(\.\d+)?e\+30[78]")):
            stream(audio.StreamingFrontEnd(16000), samples, block=5000)


def test_a_huge_sample_in_an_earlier_block_is_named() -> None:
    # The huge sample sits in the STFT overlap and surfaces in the next block's frames.
    front = audio.StreamingFrontEnd(16000)
    first = np.zeros(16050)
    first[-5:] = 5e300
    front.push(first)
    with pytest.raises(InvalidAudioError, match=TOO_LARGE.format(peak=r"5e\+300")):
        front.push(np.zeros(1000))


def test_front_end_is_unusable_after_the_error_but_not_after_a_bad_block() -> None:
    front = audio.StreamingFrontEnd(16000)
    with pytest.raises(InvalidAudioError, match="NaN or Inf"):
        front.push(np.array([0.0, np.nan]))
    front.push(np.zeros(100))  # a refused block changes nothing
    with pytest.raises(InvalidAudioError, match="far too large"):
        front.push(huge(1.0, 16000))
    with pytest.raises(InvalidInputError, match=r"push\(\) called on a StreamingFrontEnd after an error"):
        front.push(np.zeros(100))
    with pytest.raises(InvalidInputError, match=r"finish\(\) called on a StreamingFrontEnd after an error"):
        front.finish()


def test_ceiling_is_the_bound_for_max_abs_sample() -> None:
    # log(2**31 · Σ hann(400) · largest mel column sum + 0.01): Σ hann = 200, the column sum is ~8.944.
    column_sum = float(audio.mel_matrix().sum(axis=0).max())
    assert column_sum == pytest.approx(8.9442, abs=1e-4)
    assert math.log(2.0**31 * 200.0 * column_sum + 0.01) == pytest.approx(LOG_MEL_CEILING, rel=1e-12)


def test_loudest_signals_within_the_limit_are_accepted(rng: np.random.Generator) -> None:
    # Signals that push energy into one band as hard as possible, at exactly the largest accepted peak.
    rate, n = 16000, 16000
    t = np.arange(n) / rate
    centres = audio.melspec.hertz_to_mel(np.array([125.0, 7500.0]))
    band_hz = 700.0 * (np.exp(np.linspace(centres[0], centres[1], 66)[1:-1] / 1127.0) - 1.0)
    signals = [np.sign(np.sin(2 * np.pi * 1000.0 * t)), rng.choice([-1.0, 1.0], n), huge(1.0, rate, 1.0)]
    signals += [np.sin(2 * np.pi * f * t) for f in band_hz[::7]]
    for signal in signals:
        log_mel, _ = audio.waveform_to_examples(MAX_ABS_SAMPLE * signal, rate)
        assert np.all(np.isfinite(log_mel)) and log_mel.max() <= LOG_MEL_CEILING
    # Unscaled int16 values passed as floats are wrong, but harmless: still analysed.
    assert audio.waveform_to_examples(32767.0 * signals[0], rate)[0].shape == (1, 96, 64)


def test_beyond_the_limit_is_refused() -> None:
    # The ceiling bounds every signal, so real ones reach it only ~9-15x above MAX_ABS_SAMPLE (a 1 kHz sine:
    # ~14.6x); 100x is refused, naming the always-accepted peak.
    sine = np.sin(2 * np.pi * 1000.0 * np.arange(16000) / 16000)
    match = TOO_LARGE.format(peak=r"2\.14748e\+11 \(any peak up to 2\.14748e\+09 is always accepted\)")
    with pytest.raises(InvalidAudioError, match=match):
        audio.waveform_to_examples(100 * MAX_ABS_SAMPLE * sine, 16000)


@pytest.mark.parametrize("bad", [np.nan, np.inf, LOG_MEL_CEILING + 1e-9])
def test_check_log_mel_refuses_nan_inf_and_out_of_range(bad: float) -> None:
    log_mel = np.zeros((3, 64))
    check_log_mel(log_mel, peak=lambda: 1.0)  # in range: no error, and the peak is not computed
    log_mel[2, 5] = bad
    with pytest.raises(InvalidAudioError, match=TOO_LARGE.format(peak="12.5")):
        check_log_mel(log_mel, peak=lambda: 12.5)
