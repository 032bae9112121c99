"""The interpolation filter of the reference resampler, regenerated from its recipe.

The reference front-end resamples with resampy 0.4.3's ``kaiser_best`` filter. resampy ships it as a stored
table; rather than vendor 3.3 MB of numbers we rebuild it bit-for-bit from how it was made: a windowed sinc,
sampled ``PRECISION`` times per zero crossing over ``ZERO_CROSSINGS`` crossings, right half only (centre
included). ``TABLE_SHA256`` pins the result; a test recomputes it.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import special

ZERO_CROSSINGS = 50  # zero crossings of the sinc kept on each side of the centre
PRECISION = 8192  # table entries per zero crossing (the interpolation grid of the filter)
TABLE_LENGTH = ZERO_CROSSINGS * PRECISION + 1  # 409_601 values: the right half including the centre
ROLLOFF = 0.9173473712608761  # sinc cut-off as a fraction of Nyquist, full precision
# Kaiser beta at full precision: the rounded 12.9846 of resampy's docstring moves outputs by ~5e-8.
KAISER_BETA = 12.984585247040012
# SHA-256 of the table's little-endian float64 bytes, as shipped in resampy 0.4.3's data/kaiser_best.npz.
TABLE_SHA256 = "f96878552f8402632b382d79b7972dcc1423391957afd4d299fdb3d377b3e938"


def _kaiser_right_half() -> np.ndarray:
    """Right half (centre included) of the symmetric Kaiser window of length ``2 * TABLE_LENGTH - 1``.

    Evaluated with the same float64 operations as ``scipy.signal.windows.kaiser(..., sym=True)`` (which the
    table was made with) so the bits agree, but without importing ``scipy.signal`` (~1.5 s cold).
    """
    length = 2 * TABLE_LENGTH - 1
    centre = (length - 1) / 2.0
    n = np.arange(TABLE_LENGTH - 1, length, dtype=np.float64)
    return special.i0(KAISER_BETA * np.sqrt(1 - ((n - centre) / centre) ** 2.0)) / special.i0(
        np.float64(KAISER_BETA)
    )


@functools.cache
def kaiser_best_table() -> np.ndarray:
    """Return the right half of the ``kaiser_best`` interpolation filter.

    Built once per process on first use (~40 ms) and cached; the array is read-only because every caller
    shares it.

    Returns
    -------
    table : np.ndarray [shape=(409601,), float64]
        ``table[k]`` is the filter at ``k / PRECISION`` zero crossings from the centre.
    """
    grid = np.linspace(0, ZERO_CROSSINGS, TABLE_LENGTH)
    sinc = ROLLOFF * np.sinc(ROLLOFF * grid)
    table = _kaiser_right_half() * sinc
    table.flags.writeable = False
    return table


def scaled_table(scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Return the table scaled for a rate ratio, and its forward differences.

    Downsampling multiplies the table by the ratio (unit gain at DC); the differences are taken *after*
    scaling, as the reference does, so interpolated weights match it bit for bit. Not cached: its one
    caller keeps what it derives from it.

    Parameters
    ----------
    scale : float
        ``min(1, rate_out / rate_in)``; 1.0 leaves the table as it is.

    Returns
    -------
    win : np.ndarray [shape=(409601,), float64]
        The (scaled) table; the shared read-only table itself when ``scale`` is 1.
    delta : np.ndarray [shape=(409601,), float64]
        ``win[k + 1] - win[k]``, with a final 0.
    """
    win = kaiser_best_table()
    if scale < 1.0:
        win = scale * win
    delta = np.zeros_like(win)
    delta[:-1] = win[1:] - win[:-1]
    return win, delta
