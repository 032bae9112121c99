"""Winograd minimal-filtering convolution for 3×3 stride-1 SAME layers, written as GEMMs.

A 3×3 convolution producing an ``m × m`` output tile reads an ``a × a`` input tile (``a = m + 2``). Winograd's
F(m×m, 3×3) computes that tile as ``Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A``: the element-wise product over the ``a²``
positions becomes, summed over input channels, ``a²`` independent matrix products
``[T, Cin] @ [Cin, Cout]`` (T = number of tiles). Every step here is a GEMM so that NumPy's BLAS does the
work: the input transform is ``kron(Bᵀ, Bᵀ) @ d`` over tiles laid out ``[a², T·Cin]``, the output transform
``kron(Aᵀ, Aᵀ) @ M`` over ``[a², T·Cout]``. With m = 4 a 3×3 layer needs 4× fewer multiply-adds than a direct
convolution (36 products per 16 outputs instead of 144); the price is a larger rounding error (a few 1e-6
relative in float32), which is why the transforms are built in float64 and the weight transform is done once,
in float64, before casting.

Layouts: activations NHWC, weights HWIO ``[3, 3, Cin, Cout]``, everything float32 at run time.
"""

from __future__ import annotations

import functools

import numpy as np

from audioembed.errors import InvalidOptionError, ShapeError

# The interpolation points of the transforms (plus the point at infinity). For m = 4 the points 0, ±1, 2, -1/2
# measured 2-3x less float32 error than the textbook 0, ±1, ±2 (3e-6 vs 9e-6 relative on 512-channel layers):
# mixing 2 and its reciprocal balances the magnitudes of the input and output transform entries.
_POINTS = {2: (0.0, 1.0, -1.0), 4: (0.0, 1.0, -1.0, 2.0, -0.5)}
KERNEL_SIZE = 3  # the only filter size these transforms are built for
_TRANSFORM_BLOCK_ELEMENTS = 1 << 13  # (Cin, Cout) pairs per float64 block of the weight transform
CHUNK_BYTES = 16 << 20  # working memory of one chunk of images in conv3x3_winograd
MIN_CHANNELS = 16  # fewer input channels: the generic im2col convolution is as fast (see pays_off)
# Fewer output pixels (N·H·W) than this: the per-call weight transform costs more than Winograd saves
# (measured, one thread: 512→512 channels at 768 pixels 89 vs 55 ms im2col; 128→256 at 3072 pixels 28 vs 36).
MIN_PIXELS = 2048


def _check_tile(m: int) -> int:
    if m not in _POINTS:
        raise InvalidOptionError(f"Winograd output tile must be one of {sorted(_POINTS)}, got {m!r}")
    return m


def winograd_matrices(m: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transform matrices of F(m×m, 3×3) (fresh copies: the caller may modify them); see ``_matrices``."""
    return tuple(matrix.copy() for matrix in _matrices(_check_tile(m)))  # type: ignore[return-value]


@functools.cache
def _matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The transform matrices of F(m×m, 3×3), built from the interpolation points, in float64 (read-only).

    Parameters
    ----------
    m : int
        Output tile size, 2 or 4.

    Returns
    -------
    AT : np.ndarray [shape=(m, m + 2), float64]
        Output transform ``Aᵀ``.
    G : np.ndarray [shape=(m + 2, 3), float64]
        Weight transform.
    BT : np.ndarray [shape=(m + 2, m + 2), float64]
        Input transform ``Bᵀ``.
    """
    points = np.array(_POINTS[_check_tile(m)], dtype=np.float64)
    a = m + KERNEL_SIZE - 1
    n = len(points)  # finite points; the last row/column of each matrix handles the point at infinity
    # Aᵀ = Vhᵀ, Vh evaluating a degree-(m-1) polynomial at the points: Aᵀ[i, j] = p_j ** i; infinity picks
    # its leading coefficient.
    AT = np.zeros((m, a))
    AT[:, :n] = points[None, :] ** np.arange(m)[:, None]
    AT[m - 1, a - 1] = 1.0
    # G evaluates the filter polynomial at the points, scaled by 1 / prod_{k≠j}(p_j - p_k) (Lagrange weights).
    lagrange = np.array([np.prod([pj - pk for pk in points if pk != pj]) for pj in points])
    G = np.zeros((a, KERNEL_SIZE))
    G[:n] = points[:, None] ** np.arange(KERNEL_SIZE)[None, :] / lagrange[:, None]
    G[a - 1, KERNEL_SIZE - 1] = 1.0
    # Bᵀ = Cᵀ, C being the interpolation that recovers a polynomial's coefficients from its values at the
    # points and its leading coefficient: column j of C holds the coefficients of prod_{k≠j}(x - p_k) (the
    # Lagrange numerator; its denominator went into G), the last column those of prod_k(x - p_k).
    BT = np.zeros((a, a))
    for j in range(n):
        BT[j, :n] = np.poly(np.delete(points, j))[::-1]  # ascending powers
    BT[a - 1, :] = np.poly(points)[::-1]
    # The correlation y = Tᵀ d is the transpose of the polynomial product s = T h = C[(G g)⊙(Vh h)], hence
    # Aᵀ = Vhᵀ, Bᵀ = Cᵀ.
    for matrix in (AT, G, BT):
        matrix.setflags(write=False)  # cached and shared: see winograd_matrices for copies
    return AT, G, BT


@functools.cache
def _tile_transforms(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    # Cached (every layer of a plan needs them); read-only so that no caller can change them for the others.
    AT, G, BT = _matrices(m)
    result = np.kron(AT, AT), np.kron(G, G), np.kron(BT, BT)
    for matrix in result:
        matrix.setflags(write=False)
    return result


def transform_weights(weight: np.ndarray, *, m: int = 4) -> np.ndarray:
    """Winograd-transform an HWIO 3×3 kernel once: ``U[ξ] = (G g Gᵀ)[ξ]`` for every tile position ξ.

    Parameters
    ----------
    weight : np.ndarray [shape=(3, 3, Cin, Cout)]
        Conv kernel, HWIO (any float dtype; computed in float64).
    m : int
        Output tile size, 2 or 4.

    Returns
    -------
    U : np.ndarray [shape=((m + 2)², Cin, Cout), float32], C-contiguous
    """
    weight = np.asarray(weight)
    if weight.ndim != 4 or weight.shape[:2] != (KERNEL_SIZE, KERNEL_SIZE):
        raise ShapeError(f"Winograd needs a [3, 3, Cin, Cout] kernel, got shape {weight.shape}")
    _, G, _ = _matrices(_check_tile(m))
    a = G.shape[0]
    cin, cout = weight.shape[2:]
    pairs = cin * cout
    g = weight.reshape(KERNEL_SIZE, KERNEL_SIZE, pairs)  # a view for contiguous kernels
    u = np.empty((a, a, pairs), dtype=np.float32)
    # Separably, G g then (G g) Gᵀ: 3·(3 + a)·a multiply-adds per (Cin, Cout) pair instead of 9·a² with
    # kron(G, G) (measured, 512×512 kernel, one thread: 12 vs 22 ms); in blocks of pairs so the float64
    # temporaries stay in cache.
    for lo in range(0, pairs, _TRANSFORM_BLOCK_ELEMENTS):
        hi = min(lo + _TRANSFORM_BLOCK_ELEMENTS, pairs)
        block = g[:, :, lo:hi].astype(np.float64)  # [3 (row), 3 (column), b]
        rows = np.matmul(G, block.reshape(KERNEL_SIZE, -1)).reshape(a, KERNEL_SIZE, hi - lo)  # [a, 3, b]
        u[:, :, lo:hi] = np.matmul(G, rows)  # [a, a, b]: G @ rows[i] for every transformed row i
    return u.reshape(a * a, cin, cout)


class TileTransforms:
    """The float32 GEMM operands of F(m×m, 3×3) for one layer shape.

    Attributes
    ----------
    m, a : int
        Output and input tile sizes (``a = m + 2``).
    input_matrix : np.ndarray [shape=(a², a²), float32]
        ``kron(Bᵀ, Bᵀ)``: tile positions in row-major (row, column) order.
    output_matrix : np.ndarray [shape=(m², a²), float32]
        ``kron(Aᵀ, Aᵀ)``; with ``pool=True`` its rows are permuted so that the four members of every 2×2
        pooling window come in four contiguous blocks of ``(m/2)²`` rows (``row = member·(m/2)² + window``,
        windows row-major), which turns max-pooling into three element-wise maxima over contiguous planes.
    """

    def __init__(self, m: int = 4, *, pool: bool = False) -> None:
        self.m = _check_tile(m)
        self.a = m + KERNEL_SIZE - 1
        kron_a, _, kron_b = _tile_transforms(m)
        if pool:
            half = m // 2
            # output pixel (r, c) of the tile = (2·wr + dr, 2·wc + dc): member (dr, dc), window (wr, wc)
            order = [
                (2 * wr + dr) * m + (2 * wc + dc)
                for dr in range(2)
                for dc in range(2)
                for wr in range(half)
                for wc in range(half)
            ]
            kron_a = kron_a[order]
        self.pool = pool
        self.input_matrix = kron_b.astype(np.float32)
        self.output_matrix = np.ascontiguousarray(kron_a, dtype=np.float32)


def tile_view(padded: np.ndarray, m: int) -> np.ndarray:
    """Overlapping ``a × a`` input tiles of a padded NHWC batch, as a strided view (no copy).

    Parameters
    ----------
    padded : np.ndarray [shape=(N, m·th + 2, m·tw + 2, C)]
        Input with one pixel of zero padding on every side, its interior a multiple of m in both dims.
    m : int
        Output tile size.

    Returns
    -------
    tiles : np.ndarray [shape=(a, a, N, th, tw, C)], a read-only view of ``padded``
    """
    n, hp, wp, c = padded.shape
    th, tw = (hp - 2) // m, (wp - 2) // m
    a = m + 2
    sn, sh, sw, sc = padded.strides
    return np.lib.stride_tricks.as_strided(
        padded, shape=(a, a, n, th, tw, c), strides=(sh, sw, sn, m * sh, m * sw, sc), writeable=False
    )


def conv3x3_winograd(
    x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, *, m: int = 4
) -> np.ndarray:
    """3×3 stride-1 SAME convolution of an NHWC batch by Winograd F(m×m, 3×3).

    Any height and width work (the tile grid is padded up with zeros and cropped); the input may be any
    float dtype and non-contiguous. This is the stateless kernel; :mod:`audioembed.nn.fused` runs whole
    conv stacks with precomputed weights and reusable buffers.

    Parameters
    ----------
    x : np.ndarray [shape=(N, H, W, Cin)]
        Input batch, NHWC.
    weight : np.ndarray [shape=(3, 3, Cin, Cout)]
        Kernel, HWIO.
    bias : np.ndarray [shape=(Cout,)] or None
        Added to every output pixel.
    m : int
        Output tile size, 2 (more accurate) or 4 (fewer multiplications).

    Returns
    -------
    y : np.ndarray [shape=(N, H, W, Cout), float32]
    """
    x = np.asarray(x)
    weight = np.asarray(weight)
    if x.ndim != 4:
        raise ShapeError(f"conv3x3_winograd needs an NHWC input [N, H, W, Cin], got shape {x.shape}")
    if weight.ndim != 4 or weight.shape[:2] != (3, 3) or weight.shape[2] != x.shape[3]:
        raise ShapeError(
            f"conv3x3_winograd needs a [3, 3, {x.shape[3]}, Cout] kernel for input {x.shape}, "
            f"got shape {weight.shape}"
        )
    if bias is not None and np.shape(bias) != (weight.shape[3],):
        raise ShapeError(f"bias must have shape ({weight.shape[3]},), got {np.shape(bias)}")
    _check_tile(m)
    n, h, w, cin = x.shape
    cout = weight.shape[3]
    th, tw = -(-h // m), -(-w // m)  # tiles per column / row, rounding up
    plan = TileTransforms(m)
    u = transform_weights(weight, m=m)  # [a², Cin, Cout]
    out = np.empty((n, h, w, cout), dtype=np.float32)
    per_image = 4 * plan.a**2 * th * tw * (2 * cin + cout)  # bytes of tiles, transform and products
    chunk = max(1, CHUNK_BYTES // per_image)
    padded = np.zeros((min(chunk, n), th * m + 2, tw * m + 2, cin), dtype=np.float32)  # zero border kept
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        k, t, a2 = hi - lo, (hi - lo) * th * tw, plan.a**2
        padded[:k, 1 : h + 1, 1 : w + 1] = x[lo:hi]
        tiles = np.empty((plan.a, plan.a, k, th, tw, cin), dtype=np.float32)
        np.copyto(tiles, tile_view(padded[:k], m))
        v = plan.input_matrix @ tiles.reshape(a2, t * cin)  # [a², T·Cin]
        prod = np.matmul(v.reshape(a2, t, cin), u)  # [a², T, Cout]
        y = plan.output_matrix @ prod.reshape(a2, t * cout)  # [m², T·Cout]
        y = y.reshape(m, m, k, th, tw, cout).transpose(2, 3, 0, 4, 1, 5)  # [k, th, m, tw, m, Cout]
        out[lo:hi] = y.reshape(k, th * m, tw * m, cout)[:, :h, :w]
    if bias is not None:
        out += np.asarray(bias, dtype=np.float32)
    return out


def pays_off(
    x: np.ndarray, weight: np.ndarray, stride: tuple[int, int], pads: tuple[tuple[int, int], tuple[int, int]]
) -> bool:
    """Whether :func:`conv3x3_winograd` should replace a generic convolution call.

    True for float32 3×3 stride-1 convolutions padded by one pixel on every side (SAME) with at least
    ``MIN_CHANNELS`` input channels and ``MIN_PIXELS`` output pixels: below that, an im2col GEMM is as fast
    and more accurate.
    """
    return (
        x.dtype == np.float32
        and weight.dtype == np.float32
        and weight.shape[:2] == (KERNEL_SIZE, KERNEL_SIZE)
        and x.shape[3] >= MIN_CHANNELS
        and x.shape[0] * x.shape[1] * x.shape[2] >= MIN_PIXELS
        and tuple(stride) == (1, 1)
        and tuple(map(tuple, pads)) == ((1, 1), (1, 1))
    )
