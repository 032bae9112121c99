"""StreamingResampler: block-by-block output equals the one-shot resampler, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.audio.resample import StreamingResampler, resample
from audioembed.errors import InvalidAudioError, InvalidOptionError

PAIRS = [(44100, 16000), (8000, 16000), (96000, 16000), (7200, 16000), (16000, 44100), (22050, 22050)]


def _stream(resampler: StreamingResampler, x: np.ndarray, sizes: list[int]) -> list[np.ndarray]:
    """Feed ``x`` in blocks of ``sizes`` (cycled) and return every output, the flush's last."""
    parts, i, k = [], 0, 0
    while i < x.shape[0]:
        size = sizes[k % len(sizes)]
        parts.append(resampler.process(x[i : i + size]))
        i, k = i + size, k + 1
    parts.append(resampler.flush())
    return parts


@pytest.mark.parametrize("method", ["reference", "fast"])
@pytest.mark.parametrize(("rate_in", "rate_out"), PAIRS)
def test_random_blocks_equal_one_shot(method: str, rate_in: int, rate_out: int) -> None:
    rng = np.random.default_rng(rate_in + rate_out)
    x = rng.uniform(-1, 1, rate_in // 2 + 123)
    sizes = [int(s) for s in rng.integers(0, 4000, 40)]
    parts = _stream(StreamingResampler(rate_in, rate_out, method=method), x, sizes)
    y = np.concatenate(parts)
    expected = resample(x, rate_in, rate_out, method=method)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=0, atol=1e-12)
    assert all(p.ndim == 1 for p in parts)


@pytest.mark.parametrize("method", ["reference", "fast"])
def test_one_sample_blocks_equal_one_shot(method: str) -> None:
    x = np.random.default_rng(1).uniform(-1, 1, 1500)
    y = np.concatenate(_stream(StreamingResampler(48000, 16000, method=method), x, [1]))
    np.testing.assert_allclose(y, resample(x, 48000, 16000, method=method), rtol=0, atol=1e-12)


@pytest.mark.parametrize("method", ["reference", "fast"])
def test_multichannel_blocks_equal_one_shot(method: str) -> None:
    x = np.random.default_rng(2).uniform(-1, 1, (9000, 3))
    parts = _stream(StreamingResampler(44100, 16000, method=method), x, [1, 700, 0, 2048, 13])
    assert all(p.ndim == 2 and p.shape[1] == 3 for p in parts)
    y = np.concatenate(parts)
    np.testing.assert_allclose(y, resample(x, 44100, 16000, method=method), rtol=0, atol=1e-12)


def test_outputs_are_emitted_as_soon_as_they_are_final() -> None:
    r = StreamingResampler(44100, 16000)
    first = r.process(np.random.default_rng(3).uniform(-1, 1, 44100))
    # Everything except the outputs whose filter reaches past the last input (~138 inputs ≈ 50 outputs).
    assert 16000 - 60 <= first.shape[0] < 16000
    assert r.samples_in == 44100 and r.samples_out == first.shape[0]
    assert r.flush().shape[0] == 16000 - first.shape[0]


def test_memory_is_bounded_by_block_and_history() -> None:
    r = StreamingResampler(96000, 16000)
    block = np.random.default_rng(4).uniform(-1, 1, 2000)
    taps = 409_601 // int(8192 / 6)  # input samples the filter reaches on each side at 96 kHz -> 16 kHz
    for _ in range(40):
        r.process(block)
        # The buffer holds the newest block plus the history of the outputs not yet emitted.
        assert r._buffer.shape[0] <= block.shape[0] + 2 * taps + 6
    assert r.samples_in == 80_000


def test_flush_resets_for_a_new_signal() -> None:
    r = StreamingResampler(44100, 16000)
    x = np.random.default_rng(5).uniform(-1, 1, 5000)
    a = np.concatenate([r.process(x), r.flush()])
    b = np.concatenate([r.process(x), r.flush()])
    np.testing.assert_array_equal(a, b)
    assert r.samples_in == 0 and r.samples_out == 0


def test_too_short_stream_flushes_nothing() -> None:
    r = StreamingResampler(44100, 16000)
    assert r.process(np.ones(2)).shape == (0,)
    assert r.flush().shape == (0,)
    assert StreamingResampler(44100, 16000).flush().shape == (0,)


def test_equal_rates_pass_blocks_through() -> None:
    r = StreamingResampler(16000, 16000)
    block = np.arange(10.0)
    out = r.process(block)
    np.testing.assert_array_equal(out, block)
    assert not np.shares_memory(out, block)
    assert r.flush().shape == (0,)


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(InvalidAudioError, match=r"input sample rate .*got 0"):
        StreamingResampler(0, 16000)
    with pytest.raises(InvalidAudioError, match=r"output sample rate .*got 400000"):
        StreamingResampler(16000, 400000)
    with pytest.raises(InvalidOptionError, match=r"method .*got 'sinc'"):
        StreamingResampler(16000, 8000, method="sinc")
    with pytest.raises(InvalidAudioError, match=r"more than 8192x, got 384000 -> 40 Hz"):
        StreamingResampler(384000, 40)


def test_bad_blocks_are_rejected() -> None:
    r = StreamingResampler(44100, 16000)
    r.process(np.zeros((10, 2)))
    with pytest.raises(InvalidAudioError, match=r"block shape \(10, 3\) does not match .*\(2,\)"):
        r.process(np.zeros((10, 3)))
    with pytest.raises(InvalidAudioError, match=r"block shape \(10,\) does not match"):
        r.process(np.zeros(10))
    with pytest.raises(InvalidAudioError, match=r"\[n\] or \[n, channels\], got shape \(2, 2, 2\)"):
        StreamingResampler(44100, 16000).process(np.zeros((2, 2, 2)))
    with pytest.raises(InvalidAudioError, match="finite"):
        r.process(np.full((4, 2), np.nan))
