"""The reference resampler as a polyphase filter bank evaluated with matrix products.

With ``L = rate_out / g`` and ``M = rate_in / g`` (``g`` their gcd), output ``t + L`` sits exactly ``M`` input
samples after output ``t``, so the filter taps of an output depend only on its *phase* ``t mod L``. The
reference's float time register is not exactly periodic, which leaves two irregularities
(``docs/resampling.md`` §4), handled here as follows:

- the interpolation factors ``eta`` drift in their last bits from period to period. The weights are
  ``win + eta * delta``; a phase's filter is built with the factors ``eta0`` of one sampled output, and
  each output adds ``(eta_l - eta0_l) * (Y_dl - Y_dr)``, the left- minus right-wing delta filters. (The
  right factor's drift is minus the left's up to one rounding, see ``_tile``.) This reorders the
  reference's sums, moving results by ~2e-15 of full scale.
- where the register of a phase lands on an integer boundary, rounding puts it just above for some outputs
  and just below for others, so their base sample or table offsets differ. Such phases get a column for
  each of their two *variants*; an output takes the column whose (base, offsets) equal its own. Outputs
  matching neither (none seen in 100 hours of outputs at the rates tested) are recomputed by the direct
  form, which is exact.

Outputs are grouped into *super-periods* of ``P_out = R * L`` outputs (``R`` periods, enough for a few dozen
outputs) spanning ``P_in = R * M`` inputs, and a super-period into tiles of consecutive phases. For a tile,
each super-period's input samples form one row of a frame matrix, and one GEMM with the tile's filter
matrix ``[width, 2 * V]`` gives both filters of its ``V`` variant columns for all super-periods at once:
dense BLAS work on a banded matrix wastes some multiplications but runs an order of magnitude faster than
any per-tap loop in NumPy.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from audioembed.audio import _kaiser_interp as kaiser

# Outputs per tile (upper bound): enough that the GEMM is efficient and the frame copy small.
_MAX_TILE = 40
# A tile's input span exceeds the filter length by (B - 1) * M / L samples, multiplied for nothing; keep
# that below this fraction of the filter length (2 * taps) by narrowing tiles for large downsampling.
_SPAN_WASTE = 0.75
# Longest super-period worth a filter bank; beyond it (unusual rate pairs) the direct form is used.
_MAX_PERIOD = 2048
# Largest filter bank built (bytes; up to 2 variant columns per phase). Only extreme downsampling (long
# filters: ~400 kHz to ~1 kHz) exceeds it; the direct form handles that without the big matrices.
_MAX_BANK_BYTES = 32 << 20
# Periods sampled to find each phase's usual variants: many early ones and some far into a long file,
# where the time register has fewer fractional bits.
_SAMPLE_PERIODS = np.unique(np.r_[np.arange(256), np.geomspace(256, 2**24, 64).astype(np.int64)])


@dataclasses.dataclass(frozen=True)
class Tile:
    """Output phases ``q0 .. q1 - 1`` of a super-period and the filter matrix of their variants.

    Attributes
    ----------
    q0, q1 : int
        Output phases of the tile within the super-period.
    row : int
        Offset of the tile's first input sample from the window's first (see ``interpolate_polyphase``).
    columns : np.ndarray [shape=(V,), int64]
        The plan's variant columns in this tile: the ``B = q1 - q0`` primary variants in phase order, then
        the secondary ones.
    phases, keys, eta_l : np.ndarray [shape=(V,)]
        Each column's phase, packed (base, offsets) key and the left factor its weights were built with.
    filters : np.ndarray [shape=(width, 2 * V), float64]
        Columns ``[0, V)``: each variant's weights ``win + eta * delta`` at its usual factors;
        ``[V, 2V)``: its left-wing deltas minus its right-wing deltas, which absorb the factors' drift.
    """

    q0: int
    q1: int
    row: int
    columns: np.ndarray
    phases: np.ndarray
    keys: np.ndarray
    eta_l: np.ndarray
    filters: np.ndarray


@dataclasses.dataclass(frozen=True)
class PolyphasePlan:
    """A filter bank for one rate pair (cached; see :func:`polyphase_plan`).

    A *variant* is one (base sample, left offset, right offset) an output of a phase can have; most phases
    have one, phases whose register lands on an integer boundary two (just above and just below it).

    Attributes
    ----------
    kaiser : KaiserPlan
    out_period, in_period : int
        ``P_out`` outputs span exactly ``P_in`` inputs.
    keys : np.ndarray [shape=(n_variants,), int64]
        Each variant's (base, offsets) packed by :func:`_key`; base relative to its super-period.
    base, eta_l : np.ndarray [shape=(n_variants,)]
        Each variant's base sample and the left factor its filter was built with.
    primary, secondary : np.ndarray [shape=(P_out,), int64]
        Each phase's most frequent variant, and its other one (-1 if none).
    tiles : tuple of Tile
    """

    kaiser: kaiser.KaiserPlan
    out_period: int
    in_period: int
    keys: np.ndarray
    base: np.ndarray
    eta_l: np.ndarray
    primary: np.ndarray
    secondary: np.ndarray
    tiles: tuple[Tile, ...]


def _key(base: np.ndarray, off_l: np.ndarray, off_r: np.ndarray) -> np.ndarray:
    """Pack (base, left offset, right offset) into one int64; offsets are < 2**14."""
    return ((base + 1) << 28) | (off_l << 14) | off_r


@functools.lru_cache(maxsize=16)
def polyphase_plan(rate_in: int, rate_out: int) -> PolyphasePlan | None:
    """Build the filter bank for ``rate_in`` → ``rate_out`` Hz, or ``None`` if its period is too long."""
    plan = kaiser.kaiser_plan(rate_in, rate_out)
    g = math.gcd(rate_in, rate_out)
    up, down = rate_out // g, rate_in // g
    tile = max(1, min(_MAX_TILE, int(_SPAN_WASTE * 2 * plan.taps * up / down) + 1))
    periods = max(1, -(-tile // up))
    out_period, in_period = periods * up, periods * down
    n_tiles = -(-out_period // tile)
    width = (tile - 1) * down // up + 2 * plan.taps + 2  # input span of one tile, +2 for tie variants
    if out_period > _MAX_PERIOD or n_tiles * width * 2 * 2 * tile * 8 > _MAX_BANK_BYTES:
        return None
    variants = _variants(plan, out_period, in_period)
    bounds = [(k * out_period) // n_tiles for k in range(n_tiles + 1)]
    tiles = tuple(_tile(plan, variants, q0, q1) for q0, q1 in itertools.pairwise(bounds))
    return PolyphasePlan(
        kaiser=plan,
        out_period=out_period,
        in_period=in_period,
        keys=variants["key"],
        base=variants["base"],
        eta_l=variants["eta_l"],
        primary=variants["primary"],
        secondary=variants["secondary"],
        tiles=tiles,
    )


def _variants(plan: kaiser.KaiserPlan, out_period: int, in_period: int) -> dict[str, np.ndarray]:
    """Each phase's two most frequent variants over the sampled periods, with their factors.

    Returns per-variant arrays ``key, base, off_l, off_r, eta_l, eta_r`` (primaries first, in phase order,
    then secondaries) and per-phase indices ``primary, secondary``.
    """
    j = _SAMPLE_PERIODS[:, None]
    t = j * out_period + np.arange(out_period)[None, :]  # (S, P_out)
    pos = kaiser.positions(plan, t.ravel())
    fields = {
        "base": pos.n.reshape(t.shape) - j * in_period,
        "off_l": pos.off_l.reshape(t.shape),
        "off_r": pos.off_r.reshape(t.shape),
        "eta_l": pos.eta_l.reshape(t.shape),
        "eta_r": pos.eta_r.reshape(t.shape),
    }  # each (S, P_out)
    key = _key(fields["base"], fields["off_l"], fields["off_r"])  # (S, P_out)
    counts = np.stack([(key == key[s]).sum(axis=0) for s in range(key.shape[0])])  # (S, P_out)
    first = np.argmax(counts, axis=0)  # (P_out,): a sample holding the most frequent key
    others = np.where(key == key[first, np.arange(out_period)], -1, counts)  # counts of other keys
    second = np.argmax(others, axis=0)  # (P_out,)
    has_second = others[second, np.arange(out_period)] > 0
    rows = np.r_[first, second[has_second]]  # sample of each variant
    phases = np.r_[np.arange(out_period), np.flatnonzero(has_second)]  # phase of each variant
    out = {name: values[rows, phases] for name, values in fields.items()}
    out["key"] = key[rows, phases]
    out["phase"] = phases
    out["primary"] = np.arange(out_period)
    secondary = np.full(out_period, -1)
    secondary[has_second] = out_period + np.arange(int(has_second.sum()))
    out["secondary"] = secondary
    return out


def _tile(plan: kaiser.KaiserPlan, variants: dict[str, np.ndarray], q0: int, q1: int) -> Tile:
    """The filter matrix of phases ``q0 .. q1 - 1`` and their secondary variants (see :class:`Tile`)."""
    sec = variants["secondary"][q0:q1]
    columns = np.r_[np.arange(q0, q1), sec[sec >= 0]]  # (V,)
    base = variants["base"][columns]
    lo = int(base.min())
    width = int(base.max()) - lo + 2 * plan.taps
    v = columns.shape[0]
    filters = np.zeros((width, 2 * v))
    taps = np.arange(plan.taps)[None, :]  # (1, taps)
    cols = np.arange(v)[:, None]  # (V, 1)
    centre = (base - lo + plan.taps - 1)[:, None]  # (V, 1): row of each variant's base sample
    left = variants["off_l"][columns, None] + taps * plan.step  # (V, taps) table indices, x[n - i]
    right = variants["off_r"][columns, None] + taps * plan.step  # (V, taps) table indices, x[n + 1 + k]
    eta_l = variants["eta_l"][columns, None]
    eta_r = variants["eta_r"][columns, None]
    # Left rows are <= centre and right rows > centre, so no entry is written twice.
    filters[centre - taps, cols] = plan.win[left] + eta_l * plan.delta[left]
    filters[centre + 1 + taps, cols] = plan.win[right] + eta_r * plan.delta[right]
    # An output's factors differ from the variant's by d_l = eta_l - eta_l0 and d_r = -d_l up to one
    # rounding of (scale - frac) (< 2e-12), so d_l * (left deltas - right deltas) absorbs both; what it
    # leaves out is < 2e-12 * sum|delta| (~3e-4) ~ 6e-16 of full scale.
    filters[centre - taps, v + cols] = plan.delta[left]
    filters[centre + 1 + taps, v + cols] = -plan.delta[right]
    filters.flags.writeable = False
    return Tile(
        q0=q0,
        q1=q1,
        row=lo - int(variants["base"].min()),
        columns=columns,
        phases=variants["phase"][columns],
        keys=variants["key"][columns],
        eta_l=variants["eta_l"][columns],
        filters=filters,
    )


def interpolate_polyphase(pp: PolyphasePlan, x: np.ndarray, origin: int, j0: int, j1: int) -> np.ndarray:
    """Compute the outputs of super-periods ``j0 .. j1 - 1`` (within ~1e-15 of the direct form).

    Parameters
    ----------
    pp : PolyphasePlan
    x : np.ndarray [shape=(k, C), float64]
        Input samples ``origin .. origin + k - 1``; every sample the outputs need that lies inside the
        signal must be present; samples outside ``x`` count as zeros.
    origin : int
        Global index of ``x[0]``.
    j0, j1 : int
        Super-periods to compute, ``j1 > j0 >= 0``: outputs ``j0 * P_out .. j1 * P_out - 1``.

    Returns
    -------
    y : np.ndarray [shape=((j1 - j0) * P_out, C), float64]
    """
    plan = pp.kaiser
    periods = j1 - j0
    n_chan = x.shape[1]
    t = np.arange(j0 * pp.out_period, j1 * pp.out_period, dtype=np.int64)
    pos = kaiser.positions(plan, t)
    j = (t // pp.out_period).reshape(periods, pp.out_period)  # (J, P_out)
    key = _key(
        pos.n.reshape(j.shape) - j * pp.in_period, pos.off_l.reshape(j.shape), pos.off_r.reshape(j.shape)
    )
    eta_l = pos.eta_l.reshape(j.shape)  # (J, P_out)
    lowest = int(pp.base.min())
    first = j0 * pp.in_period + lowest
    window = kaiser.padded_window(plan, x, origin, first, (j1 - 1) * pp.in_period + int(pp.base.max()))
    y = np.empty((periods, pp.out_period, n_chan))
    matched = np.zeros(j.shape, dtype=bool)  # (J, P_out)
    for tile in pp.tiles:
        v = tile.columns.shape[0]
        width = tile.filters.shape[0]
        # Row j of the frame matrix: the tile's inputs in super-period j0 + j.
        span = window[tile.row : tile.row + (periods - 1) * pp.in_period + width]
        frames = sliding_window_view(span, width, axis=0)[:: pp.in_period]  # (J, C, width)
        # The copy matters: rows of the view overlap, and NumPy multiplies such arrays without BLAS.
        frames = np.ascontiguousarray(frames.reshape(periods * n_chan, width))  # (J * C, width)
        prod = frames @ tile.filters  # (J * C, 2V)
        prod = prod.reshape(periods, n_chan, 2, v)  # (J, C, 2, V)
        drift = eta_l[:, tile.phases] - tile.eta_l[None, :]  # (J, V)
        values = prod[:, :, 0] + drift[:, None, :] * prod[:, :, 1]  # (J, C, V)
        hit = key[:, tile.phases] == tile.keys[None, :]  # (J, V): output has this variant
        b = tile.q1 - tile.q0
        y[:, tile.q0 : tile.q1] = values[:, :, :b].transpose(0, 2, 1)
        if v > b:  # outputs with their phase's secondary variant take the secondary column
            sec_phase = tile.phases[b:]
            chosen = np.where(hit[:, None, b:], values[:, :, b:], y[:, sec_phase].transpose(0, 2, 1))
            y[:, sec_phase] = chosen.transpose(0, 2, 1)
            matched[:, sec_phase] |= hit[:, b:]
        matched[:, tile.q0 : tile.q1] |= hit[:, :b]
    y = y.reshape(periods * pp.out_period, n_chan)  # (T, C)
    # Outputs matching no variant (rare; more in very long files): recompute them exactly.
    irregular = ~matched.ravel()
    if irregular.any():
        y[irregular] = kaiser.interpolate_direct(plan, x, origin, t[irregular])
    return y
