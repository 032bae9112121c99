"""Known answers for the log-mel front-end: window, mel matrix, STFT, framing, a 1 kHz sine."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.audio import constants as c
from audioembed.audio.melspec import (
    frame,
    frame_examples,
    hertz_to_mel,
    log_mel_spectrogram,
    mel_matrix,
    num_frames,
    periodic_hann,
    stft_magnitude,
)
from tests.audio.conftest import naive_log_mel, sine


def test_constants_are_the_reference_values() -> None:
    assert (c.STFT_WINDOW_SAMPLES, c.STFT_HOP_SAMPLES, c.FFT_SIZE, c.NUM_FFT_BINS) == (400, 160, 512, 257)
    assert (c.EXAMPLE_WINDOW_FRAMES, c.EXAMPLE_HOP_FRAMES, c.MIN_EXAMPLE_SAMPLES) == (96, 96, 15600)
    assert pytest.approx(0.975) == c.MIN_EXAMPLE_SECONDS


def test_periodic_hann_is_one_period_of_a_raised_cosine() -> None:
    window = periodic_hann(400)
    assert window.shape == (400,)
    assert window[0] == 0.0 and window[200] == pytest.approx(1.0)
    # Periodic, not symmetric: w[n] == w[400 - n], and shifted copies by half a period sum to 1.
    np.testing.assert_allclose(window[1:], window[:0:-1], atol=1e-15)
    np.testing.assert_allclose(window[:200] + window[200:], 1.0, atol=1e-15)
    assert not np.allclose(window, np.hanning(400))


def test_hertz_to_mel_is_htk() -> None:
    assert hertz_to_mel(0.0) == 0.0
    assert hertz_to_mel(700.0) == pytest.approx(1127.0 * np.log(2.0))
    assert hertz_to_mel(1000.0) == pytest.approx(1000.0, abs=0.1)  # the mel scale's anchor point


def test_mel_matrix_triangles_have_the_right_edges() -> None:
    matrix = mel_matrix()
    assert matrix.shape == (257, 64)
    assert not matrix[0].any(), "the DC row is zeroed"
    bin_hz = np.linspace(0.0, 8000.0, 257)
    edges_hz = 700.0 * (np.exp(np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 66) / 1127.0) - 1.0)
    for band in range(64):
        support = bin_hz[matrix[:, band] > 0]
        # Non-zero strictly inside (lower edge, upper edge), peak nearest the centre edge.
        assert support.min() > edges_hz[band] and support.max() < edges_hz[band + 2]
        assert not (
            (bin_hz > edges_hz[band] + 31.25) & (bin_hz < edges_hz[band + 2] - 31.25) & (matrix[:, band] == 0)
        ).any()
        peak_hz = bin_hz[np.argmax(matrix[:, band])]
        assert abs(peak_hz - edges_hz[band + 1]) <= 31.25 / 2 + 1e-9
    assert matrix.max() <= 1.0 and matrix.min() == 0.0
    assert not matrix[bin_hz > 7500.0].any() and not matrix[bin_hz < 125.0].any()


def test_mel_matrix_is_not_normalised() -> None:
    # Unnormalised triangles: column sums grow with band width (in Hz), unlike Slaney-normalised banks.
    matrix = mel_matrix()
    sums = matrix.sum(axis=0)
    assert sums[-1] > 7 * sums[5]
    # Each triangle's peak is the bin-grid sample nearest its centre: close to 1, never above it.
    assert np.all(matrix.max(axis=0) > 0.5) and matrix.max() <= 1.0


def test_stft_matches_a_naive_dft(rng: np.random.Generator) -> None:
    waveform = rng.standard_normal(400 + 160 * 6 + 37)
    got = stft_magnitude(waveform)
    assert got.shape == (7, 257)
    window = periodic_hann(400)
    for f in range(7):
        padded = np.zeros(512)
        padded[:400] = waveform[f * 160 : f * 160 + 400] * window
        expected = np.abs(
            [np.sum(padded * np.exp(-2j * np.pi * k * np.arange(512) / 512)) for k in range(257)]
        )
        np.testing.assert_allclose(got[f], expected, rtol=1e-10, atol=1e-10)


def test_log_mel_matches_its_naive_twin(rng: np.random.Generator) -> None:
    waveform = rng.uniform(-1, 1, 16000 // 4)
    got = log_mel_spectrogram(waveform)
    np.testing.assert_allclose(got, naive_log_mel(waveform), rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("samples", "frames"), [(0, 0), (399, 0), (400, 1), (559, 1), (560, 2), (15600, 96), (16000, 98)]
)
def test_frame_counts(samples: int, frames: int) -> None:
    assert num_frames(samples, window=400, hop=160) == frames
    assert log_mel_spectrogram(np.zeros(samples)).shape == (frames, 64)


def test_log_mel_chunking_does_not_change_values(rng: np.random.Generator) -> None:
    # More frames than one internal chunk (4096): the chunk seams must be invisible.
    waveform = rng.uniform(-1, 1, 160 * 4200 + 400)
    whole = log_mel_spectrogram(waveform)
    assert whole.shape == (4201, 64)
    np.testing.assert_array_equal(
        whole[4090:4100], log_mel_spectrogram(waveform[4090 * 160 : 4100 * 160 + 240])
    )


def test_silence_gives_log_offset() -> None:
    np.testing.assert_array_equal(log_mel_spectrogram(np.zeros(2000)), np.log(0.01))


def test_a_1khz_sine_peaks_in_the_right_band_at_the_right_level() -> None:
    amplitude = 0.5
    waveform = sine(1000.0, 1.0, 16000, amplitude=amplitude)
    log_mel = log_mel_spectrogram(waveform)
    # 1 kHz falls exactly on FFT bin 32 (16000 / 512 = 31.25 Hz per bin); the winning band is the one
    # whose triangle, weighted by the window's main lobe around bin 32, collects most energy.
    matrix = mel_matrix()
    # Independent level: a sine's windowed spectrum is (A / 2) |W(k - 32)| with W the window's DTFT
    # (the mirror image at -1 kHz contributes < 1e-6 through Hann's sidelobes).
    n = np.arange(400)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / 400)
    lobe = np.array([abs(np.sum(window * np.exp(-2j * np.pi * (k - 32) * n / 512))) for k in range(257)])
    expected = np.log(amplitude / 2 * lobe @ matrix + 0.01)  # (64,)
    band = int(np.argmax(expected))
    centre_hz = 700 * (
        np.exp(np.linspace(hertz_to_mel(125.0), hertz_to_mel(7500.0), 66)[band + 1] / 1127) - 1
    )
    assert abs(centre_hz - 1000.0) < 60.0  # the winning band is centred near 1 kHz
    assert np.all(np.argmax(log_mel, axis=1) == band)
    loud = expected > 0  # bands the main lobe reaches; elsewhere leakage details dominate
    assert loud.sum() >= 2
    np.testing.assert_allclose(log_mel[:, loud], np.broadcast_to(expected[loud], (98, loud.sum())), atol=1e-3)
    assert log_mel[:, band].min() > 3.5  # far above silence (log 0.01 = -4.6)


def test_frame_is_a_view_with_the_right_windows() -> None:
    x = np.arange(10.0)
    framed = frame(x, window=4, hop=3)
    np.testing.assert_array_equal(framed, [[0, 1, 2, 3], [3, 4, 5, 6], [6, 7, 8, 9]])
    assert not framed.flags.writeable


@pytest.mark.parametrize(
    ("frames", "hop", "examples"),
    [(95, 96, 0), (96, 96, 1), (191, 96, 1), (192, 96, 2), (200, 48, 3), (200, 1, 105), (300, 200, 2)],
)
def test_example_counts(frames: int, hop: int, examples: int) -> None:
    log_mel = np.arange(frames * 64, dtype=np.float64).reshape(frames, 64)
    out = frame_examples(log_mel, hop_frames=hop)
    assert out.shape == (examples, 96, 64)
    for i in range(examples):
        np.testing.assert_array_equal(out[i], log_mel[i * hop : i * hop + 96])
