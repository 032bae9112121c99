"""Band-limited interpolation with the ``kaiser_best`` table: the exact, direct form.

Everything here follows resampy 0.4.3's interpolation step by step (``docs/resampling.md`` §3), vectorised
over taps and output samples at once: the weights and products form a ``[taps, outputs]`` array whose
rows are summed one after another, so every output accumulates its products in the reference's order
(left wing, taps ascending, then right wing) and the result is bit-for-bit the reference's. Two
substitutions make it branch-free without changing a bit: samples outside the signal are zeros (the
reference skips them), and table entries past a wing's last tap are zeros (the reference stops at
``(nwin - offset) // step`` taps); both only ever add ``±0.0``.

Output indices are global (``t`` counts from the start of the whole signal) so that a block of outputs can
be computed from any window of the input that covers it: the one-shot and the streaming resampler share
this code.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from audioembed.audio._kaiser_table import PRECISION, TABLE_LENGTH, scaled_table

# Products held at once by the direct form ([2 * taps, outputs, channels] float64: ~8 MB).
_DIRECT_ELEMENTS = 1 << 20
# From this many outputs on, the direct form loops over taps instead (~2x faster for many outputs).
_TAP_LOOP_MIN_OUTPUTS = 2048


@dataclasses.dataclass(frozen=True)
class KaiserPlan:
    """Everything the interpolation needs for one pair of rates, built once and cached.

    Attributes
    ----------
    rate_in, rate_out : int
        Sample rates in Hz.
    ratio : float
        ``float(rate_out) / rate_in``, as the reference computes it.
    time_step : float
        ``1.0 / ratio``: output ``t`` sits at input time ``t * time_step`` (not accumulated).
    scale : float
        ``min(1, ratio)``: the filter is stretched by ``1 / scale`` when downsampling.
    step : int
        Table entries between consecutive taps, ``int(scale * PRECISION)`` (truncated).
    taps : int
        Upper bound on the taps of one wing, ``nwin // step``.
    win, delta : np.ndarray [shape=(nwin + step + PRECISION,), float64]
        The scaled table and its forward differences, zeroed past index ``nwin - step`` so that a tap
        beyond a wing's last one contributes exactly zero.
    """

    rate_in: int
    rate_out: int
    ratio: float
    time_step: float
    scale: float
    step: int
    taps: int
    win: np.ndarray
    delta: np.ndarray


@functools.lru_cache(maxsize=32)
def kaiser_plan(rate_in: int, rate_out: int) -> KaiserPlan:
    """Return the (cached) interpolation plan for ``rate_in`` → ``rate_out`` Hz (validated by the caller).

    ``rate_out / rate_in`` must be at least ``1 / PRECISION`` (else the reference's tap stride is 0).
    """
    ratio = float(rate_out) / rate_in
    scale = min(1.0, ratio)
    step = int(scale * PRECISION)
    win, delta = _wing_tables(scale)
    return KaiserPlan(
        rate_in=rate_in,
        rate_out=rate_out,
        ratio=ratio,
        time_step=1.0 / ratio,
        scale=scale,
        step=step,
        taps=TABLE_LENGTH // step,
        win=win,
        delta=delta,
    )


@functools.lru_cache(maxsize=8)
def _wing_tables(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Scaled table and differences with the zero tail :class:`KaiserPlan` describes (6.6 MB per scale).

    Cached by scale, not by rate pair: all upsampling pairs share one pair of arrays.
    """
    win, delta = scaled_table(scale)
    step = int(scale * PRECISION)
    # A wing stops before the tap whose index exceeds nwin - step (it takes (nwin - offset) // step taps);
    # beyond that, and beyond the table, the weights are zero. Offsets are < PRECISION, hence the length.
    last = TABLE_LENGTH - step
    win_z = np.zeros(TABLE_LENGTH + step + PRECISION)
    delta_z = np.zeros_like(win_z)
    win_z[: last + 1] = win[: last + 1]
    delta_z[: last + 1] = delta[: last + 1]
    win_z.flags.writeable = False
    delta_z.flags.writeable = False
    return win_z, delta_z


def output_length(n_in: int, rate_in: int, rate_out: int) -> int:
    """Number of output samples for ``n_in`` input samples, computed as the reference does.

    ``int(n * float(rate_out) / float(rate_in))``, evaluated left to right and truncated; for integer rates
    this is ``(n * rate_out) // rate_in``.
    """
    return int(n_in * float(rate_out) / float(rate_in))


def outputs_before(plan: KaiserPlan, n: int) -> int:
    """Number of outputs whose base input index ``trunc(t * time_step)`` is below ``n``.

    The float time register is monotone in ``t``, so this is the first ``t`` whose register reaches ``n``;
    found from the exact-rate estimate and corrected against the register itself.
    """
    if n <= 0:
        return 0
    t = max(0, (n * plan.rate_out) // plan.rate_in)
    while t > 0 and (t - 1) * plan.time_step >= n:
        t -= 1
    while t * plan.time_step < n:
        t += 1
    return t


@dataclasses.dataclass(frozen=True)
class Positions:
    """Where each output sits relative to the input and the filter table (all arrays shape ``[T]``).

    ``n`` is the input sample at or before the output; ``off_l``/``eta_l`` the table offset and
    interpolation factor of the left wing, ``off_r``/``eta_r`` those of the right wing.
    """

    n: np.ndarray
    off_l: np.ndarray
    eta_l: np.ndarray
    off_r: np.ndarray
    eta_r: np.ndarray


def positions(plan: KaiserPlan, t: np.ndarray) -> Positions:
    """Compute the reference's per-output quantities for output indices ``t``.

    Parameters
    ----------
    plan : KaiserPlan
    t : np.ndarray [shape=(T,), int64]
        Global output indices.

    Returns
    -------
    Positions
    """
    # An integer times the float increment, exactly as the reference builds its time register.
    register = t.astype(np.float64) * plan.time_step
    n = register.astype(np.int64)  # truncation; the register is never negative
    frac = plan.scale * (register - n)
    a = frac * PRECISION
    off_l = a.astype(np.int64)
    # The right wing's fraction is ``scale - frac`` in float, not ``scale * (1 - ...)``.
    b = (plan.scale - frac) * PRECISION
    off_r = b.astype(np.int64)
    return Positions(n=n, off_l=off_l, eta_l=a - off_l, off_r=off_r, eta_r=b - off_r)


def padded_window(plan: KaiserPlan, x: np.ndarray, origin: int, n_lo: int, n_hi: int) -> np.ndarray:
    """Input samples ``[n_lo - taps + 1, n_hi + taps]`` (global indices) with zeros where ``x`` has none.

    Parameters
    ----------
    plan : KaiserPlan
    x : np.ndarray [shape=(k, C), float64]
        Input samples ``origin .. origin + k - 1`` of the signal.
    origin : int
        Global index of ``x[0]``.
    n_lo, n_hi : int
        Smallest and largest base index ``n`` of the outputs to compute.

    Returns
    -------
    window : np.ndarray [shape=(n_hi - n_lo + 2 * taps, C), float64]
        ``window[j]`` is global sample ``n_lo - taps + 1 + j``.
    """
    start = n_lo - plan.taps + 1
    stop = n_hi + plan.taps + 1
    window = np.zeros((stop - start, x.shape[1]))
    lo = max(start, origin)
    hi = min(stop, origin + x.shape[0])
    if hi > lo:
        window[lo - start : hi - start] = x[lo - origin : hi - origin]
    return window


def interpolate_direct(plan: KaiserPlan, x: np.ndarray, origin: int, t: np.ndarray) -> np.ndarray:
    """Compute outputs ``t`` exactly as the reference does (bit-for-bit).

    Parameters
    ----------
    plan : KaiserPlan
    x : np.ndarray [shape=(k, C), float64]
        Input samples ``origin .. origin + k - 1``. Every sample the outputs need that lies inside the
        signal must be present; samples outside ``x`` count as zeros.
    origin : int
        Global index of ``x[0]``.
    t : np.ndarray [shape=(T,), int64]
        Global output indices, ascending, ``T >= 1``.

    Returns
    -------
    y : np.ndarray [shape=(T, C), float64]
    """
    pos = positions(plan, t)
    n_lo = int(pos.n[0])
    window = padded_window(plan, x, origin, n_lo, int(pos.n[-1]))
    # Row of window holding sample n of each output (window starts at n_lo - taps + 1).
    centre = pos.n - n_lo + plan.taps - 1
    # Both forms add the same products in the same order; they differ only in speed: one pass per tap
    # wins for many outputs, one [taps, outputs] array (no per-tap Python overhead) for few.
    if t.shape[0] >= _TAP_LOOP_MIN_OUTPUTS:
        return _tap_loop(plan, pos, window, centre)
    return _tap_array(plan, pos, window, centre)


def _tap_loop(plan: KaiserPlan, pos: Positions, window: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The direct form as one vectorised pass per tap: [T, C] from window [rows, C]."""
    win, delta, step = plan.win, plan.delta, plan.step
    acc = np.zeros((centre.shape[0], window.shape[1]))
    for i in range(plan.taps):  # left wing: x[n - i], taps ascending
        idx = pos.off_l + i * step
        acc += (win[idx] + pos.eta_l * delta[idx])[:, None] * window[centre - i]
    for k in range(plan.taps):  # right wing: x[n + 1 + k], taps ascending
        idx = pos.off_r + k * step
        acc += (win[idx] + pos.eta_r * delta[idx])[:, None] * window[centre + 1 + k]
    return acc


def _tap_array(plan: KaiserPlan, pos: Positions, window: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The direct form over [taps, outputs] arrays, in chunks of outputs: [T, C] from window [rows, C]."""
    taps = np.arange(plan.taps)[:, None]  # (taps, 1)
    n_chan = window.shape[1]
    out = np.empty((centre.shape[0], n_chan))
    chunk = max(1, _DIRECT_ELEMENTS // (2 * plan.taps * n_chan))
    for start in range(0, centre.shape[0], chunk):
        part = slice(start, start + chunk)
        left = pos.off_l[part] + taps * plan.step  # (taps, T') table indices of x[n - i]
        right = pos.off_r[part] + taps * plan.step  # (taps, T') table indices of x[n + 1 + k]
        weights = np.concatenate(
            [
                plan.win[left] + pos.eta_l[part] * plan.delta[left],
                plan.win[right] + pos.eta_r[part] * plan.delta[right],
            ]
        )  # (2 * taps, T'): left wing then right wing, taps ascending, the reference's order
        rows = np.concatenate([centre[part] - taps, centre[part] + 1 + taps])  # (2 * taps, T')
        products = weights[:, :, None] * window[rows]  # (2 * taps, T', C)
        # Reducing over the leading axis adds the rows one after another (NumPy's pairwise summation
        # only applies along the contiguous axis), so each output sums its taps in the reference's order.
        out[part] = np.add.reduce(products, axis=0)
    return out
