"""The reference resampler against a literal transcription of resampy's algorithm, and the golden file."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioembed.audio import _kaiser_interp as kaiser
from audioembed.audio import _polyphase as polyphase
from audioembed.audio._kaiser_table import PRECISION, TABLE_SHA256, kaiser_best_table
from audioembed.audio.resample import MAX_RATE, resample
from audioembed.errors import InvalidAudioError, InvalidOptionError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference"

# Common rates, the doc's awkward ones (time register just below an integer), upsampling and odd pairs.
RATE_PAIRS = [
    (44100, 16000),
    (48000, 16000),
    (8000, 16000),
    (11025, 16000),
    (22050, 16000),
    (32000, 16000),
    (88200, 16000),
    (96000, 16000),
    (192000, 16000),
    (7200, 16000),
    (10050, 16000),
    (19200, 16000),
    (28800, 16000),
    (16000, 8000),
    (16000, 44100),
    (44100, 48000),
    (3, 7),
    (1000, 999),
    (44100, 44101),  # a period too long for a filter bank: the direct form alone
]


@functools.cache
def _naive_tables(ratio: float) -> tuple[list[float], list[float]]:
    """The table scaled as the doc's setup steps 2–3 say, as Python lists."""
    win = [float(v) for v in kaiser_best_table()]
    if ratio < 1:
        win = [ratio * v for v in win]
    delta = [win[j + 1] - win[j] for j in range(len(win) - 1)] + [0.0]
    return win, delta


def naive_resample(
    x: np.ndarray, rate_in: int, rate_out: int, *, only: list[int] | None = None
) -> np.ndarray:
    """Loop twin: ``docs/resampling.md`` §3 transcribed one output sample and one tap at a time.

    Parameters
    ----------
    x : np.ndarray [shape=(n,), float64]
    only : list of int, optional
        Compute just these output indices (for filters too long to compute every output in a test).

    Returns
    -------
    np.ndarray [shape=(int(n * rate_out / rate_in),) or (len(only),), float64]
    """
    ratio = float(rate_out) / rate_in
    win, delta = _naive_tables(ratio)
    nwin = len(win)
    scale = min(1.0, ratio)
    step = int(scale * PRECISION)
    samples = [float(v) for v in x]
    n_in = len(samples)
    n_out = int(n_in * float(rate_out) / float(rate_in))
    increment = 1.0 / ratio
    out = []
    for t in range(n_out) if only is None else only:
        register = t * increment
        n = int(register)
        frac = scale * (register - n)
        a = frac * PRECISION
        offset = int(a)
        eta = a - offset
        acc = 0.0
        for i in range(min(n + 1, (nwin - offset) // step)):
            weight = win[offset + i * step] + eta * delta[offset + i * step]
            acc += weight * samples[n - i]
        b = (scale - frac) * PRECISION
        offset = int(b)
        eta = b - offset
        for k in range(min(n_in - n - 1, (nwin - offset) // step)):
            weight = win[offset + k * step] + eta * delta[offset + k * step]
            acc += weight * samples[n + 1 + k]
        out.append(acc)
    return np.array(out)


def _short_signal(rate_in: int, rate_out: int, seed: int) -> np.ndarray:
    """Random samples long enough for ~120 outputs and for some outputs with a full filter on each side."""
    taps = kaiser.kaiser_plan(rate_in, rate_out).taps
    n = max(2 * taps + 40, -(-120 * rate_in // rate_out))
    return np.random.default_rng(seed).uniform(-1, 1, n)


def test_table_regenerates_bit_for_bit() -> None:
    table = kaiser_best_table()
    assert table.shape == (409_601,)
    assert hashlib.sha256(table.astype("<f8").tobytes()).hexdigest() == TABLE_SHA256
    assert not table.flags.writeable


@pytest.mark.parametrize(("rate_in", "rate_out"), RATE_PAIRS)
def test_direct_form_is_bit_identical_to_naive_twin(rate_in: int, rate_out: int) -> None:
    x = _short_signal(rate_in, rate_out, seed=rate_in + rate_out)
    expected = naive_resample(x, rate_in, rate_out)
    plan = kaiser.kaiser_plan(rate_in, rate_out)
    t = np.arange(expected.shape[0], dtype=np.int64)
    got = kaiser.interpolate_direct(plan, x[:, None], 0, t)[:, 0]
    assert np.array_equal(got, expected)


@pytest.mark.parametrize(
    ("rate_in", "rate_out"), [(44100, 16000), (192000, 16000), (7200, 16000), (16000, 44100)]
)
def test_direct_form_for_many_outputs_is_bit_identical_to_naive_twin(rate_in: int, rate_out: int) -> None:
    # From _TAP_LOOP_MIN_OUTPUTS outputs on, the direct form takes its other (tap-loop) implementation.
    n_out = kaiser._TAP_LOOP_MIN_OUTPUTS + 300
    x = np.random.default_rng(rate_in).uniform(-1, 1, -(-n_out * rate_in // rate_out))
    plan = kaiser.kaiser_plan(rate_in, rate_out)
    got = kaiser.interpolate_direct(plan, x[:, None], 0, np.arange(n_out, dtype=np.int64))[:, 0]
    picks = [*range(0, 40), *range(40, n_out - 40, 97), *range(n_out - 40, n_out)]
    np.testing.assert_array_equal(got[picks], naive_resample(x, rate_in, rate_out, only=picks))


@pytest.mark.parametrize(("rate_in", "rate_out"), RATE_PAIRS)
def test_resample_matches_naive_twin(rate_in: int, rate_out: int) -> None:
    x = _short_signal(rate_in, rate_out, seed=3 * rate_in + rate_out)
    expected = naive_resample(x, rate_in, rate_out)
    got = resample(x, rate_in, rate_out)
    assert got.dtype == np.float64
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_extreme_downsampling_uses_the_direct_form_exactly() -> None:
    # 384 kHz -> 1 kHz: a 19,504-tap wing, too long for a filter bank; every output takes the direct form.
    assert polyphase.polyphase_plan(384000, 1000) is None
    x = np.random.default_rng(11).uniform(-1, 1, 40000)
    got = resample(x, 384000, 1000)
    assert got.shape == (104,)
    picks = [0, 1, 50, 103]
    np.testing.assert_array_equal(got[picks], naive_resample(x, 384000, 1000, only=picks))


def test_downsampling_beyond_the_reference_limit_is_rejected() -> None:
    # The reference's tap stride int(8192 * ratio) would be 0 (resampy divides by zero there).
    with pytest.raises(InvalidAudioError, match=r"more than 8192x, got 384000 -> 46 Hz"):
        resample(np.ones(400_000), 384000, 46)


def test_golden_waveform_of_reference_pipeline() -> None:
    # The reference front-end: int16 / 32768, mean over channels, resampy kaiser_best to 16 kHz.
    pcm, rate = sf.read(FIXTURES / "stereo_44k1_5s.wav", dtype="int16")
    mono = (pcm / 32768.0).mean(axis=1)
    with np.load(FIXTURES / "stereo_44k1_5s.reference.npz") as ref:
        expected = ref["waveform_16k"]
    got = resample(mono, rate, 16000)
    assert rate == 44100
    assert got.shape == expected.shape == (80000,)
    # The stored waveform is float32: the comparison can only be as fine as its rounding ...
    assert np.max(np.abs(got - expected)) <= 1e-6
    # ... and rounded the same way, ours is the stored one exactly.
    np.testing.assert_array_equal(got.astype(np.float32), expected)


@pytest.mark.parametrize(
    ("n", "rate_in", "rate_out", "expected"),
    [
        (44100, 44100, 16000, 16000),
        (1000, 44100, 16000, 362),  # 362.8... truncated
        (3, 3, 7, 7),
        (10, 16000, 8000, 5),
        (11, 16000, 8000, 5),
        (5, 8000, 16000, 10),
    ],
)
def test_output_length_truncates(n: int, rate_in: int, rate_out: int, expected: int) -> None:
    assert resample(np.ones(n), rate_in, rate_out).shape == (expected,)
    assert resample(np.ones(n), rate_in, rate_out, method="fast").shape == (expected,)


def test_equal_rates_return_a_copy() -> None:
    x = np.random.default_rng(0).standard_normal(100)
    for method in ("reference", "fast"):
        y = resample(x, 22050, 22050, method=method)
        assert np.array_equal(y, x)
        assert not np.shares_memory(x, y)


def test_integer_input_is_resampled_as_float64() -> None:
    x = np.arange(-500, 500, dtype=np.int16)
    np.testing.assert_array_equal(resample(x, 16000, 8000), resample(x.astype(np.float64), 16000, 8000))
    assert resample(x, 16000, 8000).dtype == np.float64


def test_channels_are_independent_along_any_axis() -> None:
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 2000, 2))  # (a, time, b)
    y = resample(x, 44100, 16000, axis=1)
    assert y.shape == (3, 725, 2)
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(y[i, :, j], resample(x[i, :, j], 44100, 16000), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(resample(x, 44100, 16000, axis=-2), y)
    stereo = x[0]  # (time, channels)
    np.testing.assert_allclose(
        resample(stereo.T, 44100, 16000, axis=1), resample(stereo, 44100, 16000).T, rtol=0, atol=1e-13
    )


def test_downsampling_keeps_dc_and_in_band_tones() -> None:
    # Unit DC gain (the table is scaled by the ratio) and a 1 kHz tone through unchanged in the middle.
    rate = 44100
    t = np.arange(2 * rate) / rate
    y_dc = resample(np.full(2 * rate, 0.5), rate, 16000)
    np.testing.assert_allclose(y_dc[2000:-2000], 0.5, atol=1e-4)
    y = resample(np.sin(2 * np.pi * 1000 * t), rate, 16000)
    expected = np.sin(2 * np.pi * 1000 * np.arange(y.shape[0]) / 16000)
    np.testing.assert_allclose(y[2000:-2000], expected[2000:-2000], atol=2e-3)


def test_downsampling_removes_tones_above_the_new_nyquist() -> None:
    rate = 48000
    t = np.arange(rate) / rate
    y = resample(np.sin(2 * np.pi * 12000 * t), rate, 16000)  # 12 kHz would alias to 4 kHz
    assert np.max(np.abs(y[1000:-1000])) < 1e-3


@pytest.mark.parametrize("rate_in", [44100, 8000, 96000, 10050])
def test_fast_method_is_close_to_reference_for_in_band_audio(rate_in: int) -> None:
    # A realistic signal: tones well inside the band both resamplers pass.
    t = np.arange(rate_in) / rate_in
    x = 0.4 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 3100 * t)
    ref = resample(x, rate_in, 16000)
    fast = resample(x, rate_in, 16000, method="fast")
    assert fast.shape == ref.shape
    assert np.max(np.abs(fast - ref)[200:-200]) < 1e-2
    assert not np.array_equal(fast, ref)  # really a different filter


@pytest.mark.parametrize("rate", [0, -16000, MAX_RATE + 1, 44100.5, float("nan"), "44100", None, True])
def test_bad_rates_are_rejected(rate: object) -> None:
    with pytest.raises(InvalidAudioError, match="input sample rate .*got " + _quoted(rate)):
        resample(np.ones(100), rate, 16000)  # type: ignore[arg-type]
    with pytest.raises(InvalidAudioError, match="output sample rate .*got " + _quoted(rate)):
        resample(np.ones(100), 16000, rate)  # type: ignore[arg-type]


def _quoted(value: object) -> str:
    import re

    return re.escape(repr(value))


def test_integral_float_rates_are_accepted() -> None:
    np.testing.assert_array_equal(resample(np.ones(100), 16000.0, 8000), resample(np.ones(100), 16000, 8000))


def test_unknown_method_is_rejected() -> None:
    with pytest.raises(InvalidOptionError, match=r"method .*got 'kaiser_best'"):
        resample(np.ones(100), 16000, 8000, method="kaiser_best")


@pytest.mark.parametrize("axis", [2, -3, 1.0])
def test_bad_axis_is_rejected(axis: object) -> None:
    with pytest.raises(InvalidOptionError, match="axis .*got " + _quoted(axis)):
        resample(np.ones((100, 2)), 16000, 8000, axis=axis)  # type: ignore[arg-type]


def test_empty_signal_is_rejected() -> None:
    with pytest.raises(InvalidAudioError, match=r"empty signal \(shape \(0, 2\)"):
        resample(np.ones((0, 2)), 44100, 16000)


def test_too_short_signal_is_rejected() -> None:
    with pytest.raises(InvalidAudioError, match="2 samples is too short to resample from 44100 to 16000"):
        resample(np.ones(2), 44100, 16000)


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (np.array([1.0, np.nan, 0.0]), "finite"),
        (np.array([1.0, np.inf, 0.0]), "finite"),
        (np.ones(10, dtype=complex), "real numbers, got an array of dtype complex128"),
        (np.array(["a", "b"]), "real numbers"),
        (np.float64(1.0), "at least one dimension"),
        (object(), "real numbers"),
    ],
)
def test_unusable_samples_are_rejected(x: object, message: str) -> None:
    with pytest.raises(InvalidAudioError, match=message):
        resample(x, 16000, 8000)
