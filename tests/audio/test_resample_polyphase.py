"""The polyphase filter bank against the direct form: common and awkward rates, long files, irregulars."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed.audio import _kaiser_interp as kaiser
from audioembed.audio import _polyphase as polyphase
from audioembed.audio.resample import resample

RATES_IN = [8000, 11025, 22050, 32000, 44100, 48000, 88200, 96000, 192000, 7200, 10050, 19200, 28800]
# Differences between the bank and the direct form are reorderings of float sums: ~1e-15 for |x| <= 1.
TOLERANCE = 1e-13


def _direct(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """All outputs of the direct (bit-exact) form, for x [n, C]."""
    plan = kaiser.kaiser_plan(rate_in, rate_out)
    t = np.arange(kaiser.output_length(x.shape[0], rate_in, rate_out), dtype=np.int64)
    return kaiser.interpolate_direct(plan, x, 0, t)


@pytest.mark.parametrize("rate_in", RATES_IN)
def test_bank_matches_direct_form_downsampling(rate_in: int) -> None:
    x = np.random.default_rng(rate_in).uniform(-1, 1, (rate_in // 4, 1))
    assert polyphase.polyphase_plan(rate_in, 16000) is not None
    got = resample(x, rate_in, 16000)
    np.testing.assert_allclose(got, _direct(x, rate_in, 16000), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("rate_out", [22050, 44100, 48000, 96000])
def test_bank_matches_direct_form_upsampling(rate_out: int) -> None:
    x = np.random.default_rng(rate_out).uniform(-1, 1, (4000, 1))
    got = resample(x, 16000, rate_out)
    np.testing.assert_allclose(got, _direct(x, 16000, rate_out), rtol=0, atol=TOLERANCE)


def test_bank_handles_channels_together() -> None:
    x = np.random.default_rng(0).uniform(-1, 1, (6000, 3))
    got = resample(x, 44100, 16000)
    for c in range(3):
        np.testing.assert_allclose(got[:, c], resample(x[:, c], 44100, 16000), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(got, _direct(x, 44100, 16000), rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("rate_in", [44100, 19200, 96000, 10050])
def test_bank_is_exact_far_into_a_long_file(rate_in: int) -> None:
    # ~1e9 outputs in (a day of audio): the time register has few fractional bits left, the factors eta
    # drift the most and outputs leave their phase's usual variants.
    bank = polyphase.polyphase_plan(rate_in, 16000)
    assert bank is not None
    j0 = 10**9 // bank.out_period
    j1 = j0 + 64
    plan = bank.kaiser
    t = np.arange(j0 * bank.out_period, j1 * bank.out_period, dtype=np.int64)
    origin = int(t[0] * plan.time_step) - 2 * plan.taps
    x = np.random.default_rng(1).uniform(-1, 1, (int(t[-1] * plan.time_step) - origin + 2 * plan.taps, 2))
    got = polyphase.interpolate_polyphase(bank, x, origin, j0, j1)
    np.testing.assert_allclose(got, kaiser.interpolate_direct(plan, x, origin, t), rtol=0, atol=TOLERANCE)


def test_outputs_off_their_phase_pattern_are_recomputed_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # Built from one sampled period, the bank misses the second variant of 19.2 kHz's tie phases, so ~10 %
    # of outputs match no column and must take the exact path.
    monkeypatch.setattr(polyphase, "_SAMPLE_PERIODS", np.array([0]))
    bank = polyphase.polyphase_plan.__wrapped__(19200, 16000)
    assert bank is not None and (bank.secondary < 0).all()
    j0, j1 = 5, 400
    t = np.arange(j0 * bank.out_period, j1 * bank.out_period, dtype=np.int64)
    pos = kaiser.positions(bank.kaiser, t)
    period = (t // bank.out_period) * bank.in_period
    phase = t % bank.out_period
    keys = polyphase._key(pos.n - period, pos.off_l, pos.off_r)
    assert 0.02 < np.mean(keys != bank.keys[bank.primary[phase]]) < 0.5
    x = np.random.default_rng(2).uniform(-1, 1, (int(t[-1] * bank.kaiser.time_step) + 400, 1))
    got = polyphase.interpolate_polyphase(bank, x, 0, j0, j1)
    np.testing.assert_allclose(got, kaiser.interpolate_direct(bank.kaiser, x, 0, t), rtol=0, atol=TOLERANCE)


def test_tie_phases_get_two_variants() -> None:
    bank = polyphase.polyphase_plan(19200, 16000)
    assert bank is not None
    assert 0 < (bank.secondary >= 0).sum() < bank.out_period
    assert len(np.unique(bank.keys)) == bank.keys.shape[0]


def test_rate_pairs_with_a_long_period_use_the_direct_form() -> None:
    assert polyphase.polyphase_plan(44100, 44101) is None
    x = np.random.default_rng(3).uniform(-1, 1, (3000, 1))
    np.testing.assert_array_equal(resample(x, 44100, 44101), _direct(x, 44100, 44101))
