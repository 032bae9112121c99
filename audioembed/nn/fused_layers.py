"""The layers of a :class:`~audioembed.nn.fused.ConvStackPlan`: conv → bias → ReLU → [2×2 max-pool] in place.

Each layer holds its precomputed weights (a Winograd transform or a patch matrix) and computes one chunk of
images from a zero-padded NHWC input buffer into a (strided) output view, using a worker's scratch arena.
"""

from __future__ import annotations

import numpy as np

from audioembed.errors import ShapeError
from audioembed.nn.winograd import TileTransforms, tile_view, transform_weights

# Batches of at most this many Winograd tiles take the direct path (VGGish: conv4 layers at batch 1).
DIRECT_MAX_TILES = 8


def split_hw(dst: np.ndarray, p: int, q: int) -> np.ndarray:
    """View ``dst [n, H, W, C]`` (any strides) as ``[n, H/p, p, W/q, q, C]``, for writing through.

    Splitting an axis in two is always possible without a copy (strides ``p·s`` and ``s``), and numpy's
    ``reshape`` returns a view then, at a tenth of ``as_strided``'s Python cost (it ran once per layer call
    with the GIL held); the check makes sure that writes can never land in a copy.
    """
    n, h, w, c = dst.shape
    view = dst.reshape(n, h // p, p, w // q, q, c)
    if not np.may_share_memory(view, dst):  # bounds only: cheap
        raise AssertionError("split_hw: reshape copied the destination")
    return view


class Scratch:
    """One worker's flat float32 arena, carved into three regions (A, B, M) per layer call."""

    def __init__(self) -> None:
        self.data = np.empty(0, dtype=np.float32)

    def regions(self, a: int, b: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.data.size < a + b + m:
            self.data = np.empty(a + b + m, dtype=np.float32)
        return self.data[:a], self.data[a : a + b], self.data[a + b : a + b + m]


class Layer:
    """A conv layer of the plan: input ``[n, H+2, W+2, Cin]`` padded → output ``[n, Ho, Wo, Cout]`` (view)."""

    h: int
    w: int
    cin: int
    cout: int
    pool: bool
    bias: np.ndarray

    @property
    def out_hw(self) -> tuple[int, int]:
        return (self.h // 2, self.w // 2) if self.pool else (self.h, self.w)

    def scratch_sizes(self, n: int) -> tuple[int, int, int]:
        """Float32 elements of scratch regions (A, B, M) that :meth:`run` needs for ``n`` images."""
        raise NotImplementedError

    def elements_per_image(self) -> int:
        """Scratch elements one more image needs (what sizes a work item against a memory budget)."""
        return sum(self.scratch_sizes(1))

    def run(self, src: np.ndarray, dst: np.ndarray, scratch: Scratch) -> None:
        """``src [n, H+2, W+2, Cin]`` (zero border) → ``dst [n, Ho, Wo, Cout]`` (any strides), in place."""
        raise NotImplementedError


class PatchLayer(Layer):
    """Few input channels (conv1): one GEMM of ``(s+2)²·Cin``-pixel patches against all ``s²`` pool phases.

    With s = 2 (pooling) each row of the GEMM covers one pooling window: the 4×4 input patch it reads and the
    four conv outputs it pools (weights ``[16·Cin, 4·Cout]``), so pooling is a max over four column blocks.
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, pool: bool, h: int, w: int) -> None:
        self.h, self.w, self.pool = h, w, pool
        self.cin, self.cout = weight.shape[2:]
        self.s = 2 if pool else 1
        p = self.s + 2
        matrix = np.zeros((p, p, self.cin, self.s * self.s, self.cout), dtype=np.float64)
        for a in range(self.s):
            for b in range(self.s):
                matrix[a : a + 3, b : b + 3, :, a * self.s + b] = weight
        self.matrix = matrix.reshape(p * p * self.cin, -1).astype(np.float32)  # [(p, p, Cin), (phase, Cout)]
        self.bias = bias

    def scratch_sizes(self, n: int) -> tuple[int, int, int]:
        t = n * (self.h // self.s) * (self.w // self.s)
        return t * self.matrix.shape[0], t * self.matrix.shape[1], t * self.cout

    def run(self, src: np.ndarray, dst: np.ndarray, scratch: Scratch) -> None:
        n, s, p = src.shape[0], self.s, self.s + 2
        ho, wo = self.h // s, self.w // s
        t = n * ho * wo
        ra, rb, rm = scratch.regions(*self.scratch_sizes(n))
        sn, sh, sw, sc = src.strides
        patches_view = np.lib.stride_tricks.as_strided(
            src, shape=(n, ho, wo, p, p, self.cin), strides=(sn, s * sh, s * sw, sh, sw, sc), writeable=False
        )
        patches = ra.reshape(n, ho, wo, p, p, self.cin)
        np.copyto(patches, patches_view)
        phases = rb.reshape(t, s * s, self.cout)
        np.matmul(patches.reshape(t, -1), self.matrix, out=phases.reshape(t, -1))  # [T, s²·Cout]
        pooled = rm.reshape(t, self.cout)
        np.copyto(pooled, phases[:, 0])
        for k in range(1, s * s):
            np.maximum(pooled, phases[:, k], out=pooled)
        np.add(pooled, self.bias, out=pooled)
        np.maximum(pooled.reshape(n, ho, wo, self.cout), 0.0, out=dst)


class WinogradLayer(Layer):
    """Many input channels: Winograd F(m×m, 3×3) as GEMMs (see :mod:`audioembed.nn.winograd`): the a² products
    ``[T, Cin] @ [Cin, Cout]`` between separable input and output transforms."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, pool: bool, h: int, w: int, m: int) -> None:
        if h % m or w % m:
            raise ShapeError(f"a Winograd layer needs height and width divisible by {m}, got {(h, w)}")
        self.h, self.w, self.pool, self.m = h, w, pool, m
        self.cin, self.cout = weight.shape[2:]
        self.th, self.tw = h // m, w // m
        self.transforms = TileTransforms(m, pool=pool)
        self.u = transform_weights(weight, m=m)  # [a², Cin, Cout]
        self.bias = bias
        # For tiny batches, a direct (im2col) GEMM: a view of the caller's kernel when it is contiguous
        # float32, so it costs no memory (a Winograd GEMM with a handful of rows is bound by streaming the 4×
        # larger transformed kernel: conv4_2, one image, one thread: 15 ms vs 8 ms direct).
        self.matrix = np.ascontiguousarray(weight, dtype=np.float32).reshape(9 * self.cin, self.cout)

    def scratch_sizes(self, n: int, cout: int | None = None) -> tuple[int, int, int]:
        t, a2, m2, cout = n * self.th * self.tw, self.transforms.a**2, self.m**2, cout or self.cout
        # Each step's output overwrites a region whose contents are dead by then:
        # A: gathered tiles → GEMM products → pooled planes; B: input transform → output transform;
        # M: the separable transforms' intermediate (one block of columns)
        a_size, b_size = a2 * t * max(self.cin, cout), max(a2 * self.cin, m2 * cout) * t
        return a_size, b_size, TileTransforms.buffer_size(t * max(self.cin, cout), self.transforms.a)

    def elements_per_image(self, cout: int | None = None) -> int:
        """Regions A and B of one image: M, one block of columns, does not grow with the batch."""
        a_size, b_size, _ = self.scratch_sizes(1, cout)
        return a_size + b_size

    def direct(self, n: int) -> bool:
        """Whether ``n`` images are few enough tiles for the direct path (see ``DIRECT_MAX_TILES``)."""
        return n * self.th * self.tw <= DIRECT_MAX_TILES

    def input_size(self, n: int) -> int:
        """Elements of the transformed input (or, on the direct path, of the patch matrix) of n images."""
        pixels = n * self.h * self.w
        return (
            pixels * 9 * self.cin
            if self.direct(n)
            else self.transforms.a**2 * (pixels // self.m**2) * self.cin
        )

    def run(self, src: np.ndarray, dst: np.ndarray, scratch: Scratch) -> None:
        n, size = src.shape[0], self.input_size(n=src.shape[0])
        a_size, b_size, m_size = self.scratch_sizes(n)
        if self.direct(n):  # B holds the patches, then the GEMM's output behind them
            b_size, m_size = size + n * self.h * self.w * self.cout, 0
        ra, rb, rm = scratch.regions(a_size, b_size, m_size)
        v = rb[:size]
        self.transform_input(src, v, ra, rm)
        self.finish(v, dst, ra, rb[size:] if self.direct(n) else rb, rm)

    def transform_input(
        self,
        src: np.ndarray,
        v: np.ndarray,
        work: np.ndarray,
        rows: np.ndarray,
        *,
        direct: bool | None = None,
    ) -> None:
        """Gather the tiles of ``src [n, H+2, W+2, Cin]`` into ``work`` and transform them into ``v``
        (``rows``: the M region of :meth:`scratch_sizes`, for the separable transform).

        ``v`` : [shape=(a², n·th·tw·Cin)], may be a row-strided view of a bigger batch's transform; ``src``
        may also be a band of tile rows of one image (``m·k + 2`` padded rows, ``v`` its k·tw tiles). On the
        direct path, ``v`` (flat, :meth:`input_size` elements) receives the 3×3 patches instead. ``direct``
        defaults to :meth:`direct` of these images; a slice of a bigger batch passes the batch's choice.
        """
        n, m, a = src.shape[0], self.m, self.transforms.a
        if self.direct(n) if direct is None else direct:
            sn, sh, sw, sc = src.strides
            patches = np.lib.stride_tricks.as_strided(
                src, (n, self.h, self.w, 3, 3, self.cin), (sn, sh, sw, sh, sw, sc), writeable=False
            )
            np.copyto(v.reshape(patches.shape), patches)  # [n, H, W, 3, 3, Cin]
            return
        th = (src.shape[1] - 2) // m  # tile rows: all of them, or a band of rows of one image
        t = n * th * self.tw
        out = v.reshape(a * a, t * self.cin) if v.ndim == 1 else v
        tiles = work[: a * a * t * self.cin].reshape(a, a, n, th, self.tw, self.cin)
        np.copyto(tiles, tile_view(src, m))
        self.transforms.input_transform(tiles.reshape(a * a, t * self.cin), out, rows)  # [a², T·Cin]

    def finish(
        self,
        v: np.ndarray,
        dst: np.ndarray,
        ra: np.ndarray,
        rb: np.ndarray,
        rows: np.ndarray,
        channels: tuple[int, int] | None = None,
    ) -> None:
        """From transformed tiles ``v [a², T, Cin]`` to ``dst [n, Ho, Wo, Cout]``: GEMMs, output transform,
        [pool,] bias, ReLU; ``channels=(lo, hi)`` computes only those output channels. ``ra``/``rb``/``rows``
        are scratch regions (A, B, M) of at least :meth:`scratch_sizes` ``(n, hi - lo)`` elements.
        """
        m, th, tw, a2 = self.m, self.th, self.tw, self.transforms.a**2
        n = dst.shape[0]
        t = n * th * tw
        u, bias, matrix = self.u, self.bias, self.matrix
        if channels is not None:  # only these output channels: views of the weights, bias and output
            lo, hi = channels
            u, bias, matrix, dst = u[:, :, lo:hi], bias[lo:hi], matrix[:, lo:hi], dst[..., lo:hi]
        cout = u.shape[2]
        if self.direct(n):
            pixels = n * self.h * self.w
            out = rb[: pixels * cout].reshape(n, self.h, self.w, cout)
            np.matmul(v.reshape(pixels, 9 * self.cin), matrix, out=out.reshape(pixels, cout))
            if self.pool:
                out = np.maximum(
                    np.maximum(out[:, 0::2, 0::2], out[:, 0::2, 1::2]),
                    np.maximum(out[:, 1::2, 0::2], out[:, 1::2, 1::2]),
                )
            np.add(out, bias, out=out)
            np.maximum(out, 0.0, out=dst)
            return
        v = v.reshape(a2, t, self.cin)
        prod = ra[: a2 * t * cout].reshape(a2, t, cout)
        np.matmul(v, u, out=prod)  # a² GEMMs [T, Cin] @ [Cin, Cout]
        y = rb[: m * m * t * cout].reshape(m * m, t * cout)
        self.transforms.output_transform(prod.reshape(a2, t * cout), y, rows)  # [m², T·Cout]
        if self.pool:
            half = m // 2
            # rows and columns ordered (pool member, window): see TileTransforms
            members = y.reshape(2, half, 2, half, t, cout)  # [dr, wr, dc, wc, T, Cout]
            pooled = ra[: half * half * t * cout].reshape(half, half, t, cout)
            np.max(members, axis=(0, 2), out=pooled)  # one call: as fast as three maxima, less GIL
            np.add(pooled, bias, out=pooled)
            # [wr, wc, n, th, tw, C] → the output pixel (th·half + wr, tw·half + wc)
            planes = pooled.reshape(half, half, n, th, tw, cout).transpose(2, 3, 0, 4, 1, 5)
            np.maximum(planes, 0.0, out=split_hw(dst, half, half))
        else:
            y3 = y.reshape(m * m, t, cout)
            np.add(y3, bias, out=y3)
            planes = y3.reshape(m, m, n, th, tw, cout).transpose(2, 3, 0, 4, 1, 5)  # [n, th, r, tw, c, C]
            np.maximum(planes, 0.0, out=split_hw(dst, m, m))
