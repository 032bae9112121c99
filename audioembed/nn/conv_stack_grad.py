"""A trainable fused stack of 3×3 SAME conv → bias → ReLU → [2×2 max-pool] layers, as one :class:`Function`.

The training counterpart of :class:`~audioembed.nn.fused.ConvStackPlan`: the same arithmetic as the layers
one by one (and the same gradients, to float32 rounding), organised for speed and memory:

- **Work split by images.** Every image's forward and backward chain is independent except for the weight
  gradients, so chunks of images go to two Python workers (:class:`~audioembed.nn.threads.WorkerPool`), each
  running single-threaded BLAS, as the inference engine does; each worker sums its own weight gradients.
- **Winograd three ways.** Layers with enough input channels run forward by Winograd F(4×4, 3×3) as three
  GEMMs; the input gradient is the same kind of convolution (of the output gradient with the kernel flipped
  and its channel axes swapped), so it runs by Winograd too; and the weight gradient is the transpose of
  the same bilinear form: ``dW = Gᵀ [Σ_tiles (Bᵀ d B) ⊙ (A e Aᵀ)] G`` for input tiles ``d`` and output
  gradient tiles ``e``, i.e. 36 GEMMs ``[Cin, T] @ [T, Cout]`` (4× fewer multiplies than im2col). Layers
  with few input channels (conv1) use im2col GEMMs.
- **Little saved.** Each layer's zero-padded input (which is the previous layer's output) is kept for the
  weight gradient; a pooled layer keeps its pooled output plus a uint8 winner per window (where the maximum
  was), from which backward rebuilds the ReLU mask and the un-pooling: about 1.8 MB per VGGish example.

Ties in a pooling window go to the first maximum in row-major order (PyTorch's rule); after a ReLU a tied
window is all zeros and gets no gradient either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from audioembed.errors import ShapeError
from audioembed.nn import functional_backward
from audioembed.nn.autograd.function import Function, FunctionCtx
from audioembed.nn.threads import WorkerPool, blas_threads
from audioembed.nn.winograd import tile_view, winograd_matrices

TILE = 4  # Winograd output tile
IM2COL_MAX_CHANNELS = 4  # input channels up to which a layer uses im2col instead of Winograd
# Rows per GEMM (Winograd tiles, or pixels for im2col layers) a work item aims at: enough that the weight
# gradient's GEMMs (whose inner dimension this is) run near BLAS speed; images per item follow per layer.
TARGET_ROWS = 512
_F32 = np.float32


def _kron_transforms() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    at, g, bt = winograd_matrices(TILE)
    return np.kron(bt, bt).astype(_F32), np.kron(g, g).astype(_F32), np.kron(at, at).astype(_F32)


_BT, _G, _AT = _kron_transforms()  # [36, 36] input, [36, 9] kernel, [16, 36] output transforms
_GT = np.ascontiguousarray(_G.T)  # [9, 36]: back from the Winograd domain to a 3×3 kernel gradient
_A = np.ascontiguousarray(_AT.T)  # [36, 16]: output-gradient tiles into the Winograd domain


def transform_kernel(weight: np.ndarray) -> np.ndarray:
    """Winograd-transform a ``[3, 3, Cin, Cout]`` kernel: ``[36, Cin, Cout]`` float32 (one GEMM)."""
    cin, cout = weight.shape[2:]
    return (_G @ weight.reshape(9, cin * cout)).reshape(36, cin, cout)


def flipped_kernel(weight: np.ndarray) -> np.ndarray:
    """The kernel of the input gradient: flipped in space, channel axes swapped, ``[3, 3, Cout, Cin]``."""
    return np.ascontiguousarray(weight[::-1, ::-1].transpose(0, 1, 3, 2))


def split_view(a: np.ndarray, p: int) -> np.ndarray:
    """View ``a [n, H, W, C]`` as ``[n, H/p, p, W/p, p, C]`` without copying (``a`` may be strided)."""
    n, h, w, c = a.shape
    sn, sh, sw, sc = a.strides
    return np.lib.stride_tricks.as_strided(a, (n, h // p, p, w // p, p, c), (sn, p * sh, sh, p * sw, sw, sc))


def transform_input(padded: np.ndarray) -> np.ndarray:
    """Winograd-domain input tiles of ``padded [n, H+2, W+2, Cin]``: ``[36, T, Cin]`` (T = n·H·W / 16)."""
    n, hp, wp, cin = padded.shape
    th, tw = (hp - 2) // TILE, (wp - 2) // TILE
    tiles = np.empty((6, 6, n, th, tw, cin), _F32)
    np.copyto(tiles, tile_view(padded, TILE))  # overlapping 6×6 input tiles
    return (_BT @ tiles.reshape(36, -1)).reshape(36, n * th * tw, cin)


def winograd_conv(padded: np.ndarray, u: np.ndarray, out: np.ndarray) -> None:
    """3×3 SAME convolution ``padded [n, H+2, W+2, Cin]`` (zero border) → ``out [n, H, W, Cout]`` (a view).

    ``u`` is :func:`transform_kernel` of the kernel; H and W are multiples of 4.
    """
    n, hp, wp, _ = padded.shape
    th, tw = (hp - 2) // TILE, (wp - 2) // TILE
    t, cout = n * th * tw, u.shape[2]
    v = transform_input(padded)
    products = np.matmul(v, u)  # 36 GEMMs [T, Cin] @ [Cin, Cout]
    y = _AT @ products.reshape(36, t * cout)  # output transform [16, T·Cout]
    planes = y.reshape(TILE, TILE, n, th, tw, cout).transpose(2, 3, 0, 4, 1, 5)  # [n, th, r, tw, c, C]
    np.copyto(split_view(out, TILE), planes)


def winograd_weight_grad(padded: np.ndarray, grad_z: np.ndarray) -> np.ndarray:
    """Kernel gradient ``[3, 3, Cin, Cout]`` of a 3×3 SAME convolution, by Winograd.

    Parameters
    ----------
    padded : np.ndarray [shape=(n, H+2, W+2, Cin)]
        The layer's zero-padded input; H and W multiples of 4.
    grad_z : np.ndarray [shape=(n, H, W, Cout)]
        Gradient of the loss with respect to the convolution's output (any strides).
    """
    n, h, w, cout = grad_z.shape
    cin = padded.shape[3]
    t = n * (h // TILE) * (w // TILE)
    v = transform_input(padded)  # [36, T, Cin]
    tiles = np.empty((TILE, TILE, n, h // TILE, w // TILE, cout), _F32)
    np.copyto(tiles, split_view(grad_z, TILE).transpose(2, 4, 0, 1, 3, 5))  # 4×4 output-gradient tiles
    e = (_A @ tiles.reshape(TILE * TILE, t * cout)).reshape(36, t, cout)  # [36, T, Cout]
    m = np.matmul(v.transpose(0, 2, 1), e)  # 36 GEMMs [Cin, T] @ [T, Cout]
    return (_GT @ m.reshape(36, cin * cout)).reshape(3, 3, cin, cout)


def im2col(padded: np.ndarray) -> np.ndarray:
    """3×3 patches of ``padded [n, H+2, W+2, C]``: ``[n·H·W, 9·C]`` rows ordered (i, j, c) like HWIO."""
    n, hp, wp, c = padded.shape
    sn, sh, sw, sc = padded.strides
    view = np.lib.stride_tricks.as_strided(
        padded, (n, hp - 2, wp - 2, 3, 3, c), (sn, sh, sw, sh, sw, sc), writeable=False
    )
    return np.ascontiguousarray(view).reshape(n * (hp - 2) * (wp - 2), 9 * c)


def pool_with_winners(r: np.ndarray, out: np.ndarray, winners: np.ndarray) -> None:
    """2×2 max-pool of ``r [n, H, W, C]`` into ``out``, recording the first maximum's position (0-3)."""
    m0, m1, m2, m3 = (r[:, di::2, dj::2] for di in range(2) for dj in range(2))  # row-major window order
    # Pairwise: the top row's and the bottom row's winners, then which row wins (strictly: ties stay first).
    top_right = np.greater(m1, m0)
    bottom_right = np.greater(m3, m2)
    top = np.maximum(m0, m1)
    bottom = np.maximum(m2, m3, out=out)
    bottom_wins = np.greater(bottom, top)
    np.maximum(top, bottom, out=out)
    np.copyto(winners, top_right)  # 0 or 1
    np.copyto(winners, bottom_right.view(np.uint8) + np.uint8(2), where=bottom_wins)  # 2 or 3


class _Layer:
    """Geometry and per-step operands of one layer of the stack."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, pool: bool, h: int, w: int) -> None:
        self.weight, self.bias, self.pool = weight, bias, pool
        self.h, self.w = h, w
        self.cin, self.cout = weight.shape[2:]
        self.winograd = self.cin > IM2COL_MAX_CHANNELS
        if self.winograd and (h % TILE or w % TILE):
            raise ShapeError(f"a Winograd layer needs height and width divisible by {TILE}, got {(h, w)}")
        if pool and (h % 2 or w % 2):
            raise ShapeError(f"2×2 pooling needs even height and width, got {(h, w)}")
        self.u = transform_kernel(weight) if self.winograd else None
        self.u_flipped: np.ndarray | None = None  # built by backward
        self.out_hw = (h // 2, w // 2) if pool else (h, w)

    def conv(self, padded: np.ndarray) -> np.ndarray:
        """Pre-activation output ``[n, H, W, Cout]`` of a chunk (bias added)."""
        n = padded.shape[0]
        if self.winograd:
            z = np.empty((n, self.h, self.w, self.cout), _F32)
            winograd_conv(padded, self.u, z)
        else:
            z = (im2col(padded) @ self.weight.reshape(9 * self.cin, self.cout)).reshape(
                n, self.h, self.w, self.cout
            )
        z += self.bias
        return z


class ConvStackFunction(Function):
    """``features = stack(x, w1, b1, w2, b2, ...)``; the first argument is a :class:`TrainableConvStack`."""

    fresh_gradients = True

    @staticmethod
    def forward(
        ctx: FunctionCtx, stack: TrainableConvStack, x: np.ndarray, *params: np.ndarray
    ) -> np.ndarray:
        return stack.forward(ctx, x, params)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        return ctx.stack.backward(ctx, grad)


class TrainableConvStack:
    """Runs :class:`ConvStackFunction` for stacks of ``(pool_after,)`` layers on ``[N, H, W, Cin]`` inputs.

    Parameters
    ----------
    pools : sequence of bool
        For each layer, whether a 2×2 max-pool follows it.
    num_workers : int or None
        Python threads (default: available CPUs); BLAS runs single-threaded in each.
    """

    def __init__(self, pools: Sequence[bool], *, num_workers: int | None = None) -> None:
        self.pools = tuple(bool(p) for p in pools)
        self.pool = WorkerPool(num_workers)

    def close(self) -> None:
        """Stop the worker threads."""
        self.pool.close()

    def __call__(self, x: Any, params: Sequence[Any]) -> Any:
        """Apply the stack: ``x`` ``[N, H, W, Cin]`` and ``params`` ``(w1, b1, w2, b2, ...)``, float32."""
        return ConvStackFunction.apply(self, x, *params)

    def _layers(self, x_shape: tuple[int, ...], params: Sequence[np.ndarray]) -> list[_Layer]:
        if len(params) != 2 * len(self.pools):
            raise ShapeError(f"expected {2 * len(self.pools)} weight and bias arrays, got {len(params)}")
        layers, (h, w) = [], x_shape[1:3]
        for index, pool in enumerate(self.pools):
            weight, bias = params[2 * index], params[2 * index + 1]
            if weight.shape[:2] != (3, 3) or weight.shape[2] != (layers[-1].cout if layers else x_shape[3]):
                raise ShapeError(f"layer {index}: kernel shape {weight.shape} does not fit the stack")
            layers.append(_Layer(weight, bias, pool, h, w))
            h, w = layers[-1].out_hw
        return layers

    # --- forward ---------------------------------------------------------------------------------------
    def forward(self, ctx: FunctionCtx, x: np.ndarray, params: Sequence[np.ndarray]) -> np.ndarray:
        layers = self._layers(x.shape, params)
        n = x.shape[0]
        # inputs[i]: layer i's zero-padded input, which is layer i-1's output (kept for backward)
        inputs = [np.zeros((n, layer.h + 2, layer.w + 2, layer.cin), _F32) for layer in layers]
        inputs[0][:, 1:-1, 1:-1] = x
        last = layers[-1]
        out = np.empty((n, *last.out_hw, last.cout), _F32)
        winners = [np.empty((n, *ly.out_hw, ly.cout), np.uint8) if ly.pool else None for ly in layers]
        with blas_threads(1):
            for index, layer in enumerate(layers):  # layer by layer: each with its own chunk size

                def run(
                    worker: int, span: tuple[int, int], index: int = index, layer: _Layer = layer
                ) -> None:
                    lo, hi = span
                    dst = inputs[index + 1][lo:hi, 1:-1, 1:-1] if index + 1 < len(layers) else out[lo:hi]
                    z = layer.conv(inputs[index][lo:hi])
                    np.maximum(z, 0, out=z)  # ReLU
                    if layer.pool:
                        pool_with_winners(z, dst, winners[index][lo:hi])
                    else:
                        np.copyto(dst, z)

                self.pool.run(run, self._spans(n, layer))
        needs = ctx.needs_input_grad
        ctx.stack, ctx.layers, ctx.inputs, ctx.winners, ctx.out = self, layers, inputs, winners, out
        ctx.need_x, ctx.need_params = needs[1], needs[2:]
        return out.copy() if needs[1] or any(needs[2:]) else out  # the saved array stays private

    def _spans(self, n: int, layer: _Layer) -> list[tuple[int, int]]:
        """Chunks of images for one layer: about TARGET_ROWS GEMM rows each, and work for every worker."""
        rows = layer.h * layer.w // (TILE * TILE if layer.winograd else 1)  # tiles or pixels per image
        per_worker = -(-n // self.pool.num_workers)
        size = max(1, min(per_worker, -(-TARGET_ROWS // rows)))
        return [(lo, min(lo + size, n)) for lo in range(0, n, size)]

    # --- backward --------------------------------------------------------------------------------------
    def backward(self, ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        layers, inputs, winners, out = ctx.layers, ctx.inputs, ctx.winners, ctx.out
        need = ctx.need_params
        # The input gradient of layer i is needed when some earlier layer (or x) needs a gradient.
        first_needed = next((i for i in range(len(layers)) if need[2 * i] or need[2 * i + 1]), len(layers))
        lowest = 0 if ctx.need_x else first_needed
        n = grad.shape[0]
        workers = self.pool.num_workers
        grads: list[Any] = [None, None] + [None] * (2 * len(layers))
        dy = np.asarray(grad, dtype=_F32)  # gradient of the current layer's (pooled) output
        with blas_threads(1):
            for index in range(len(layers) - 1, lowest - 1, -1):
                layer = layers[index]
                after = inputs[index + 1][:, 1:-1, 1:-1] if index + 1 < len(layers) else out
                want_dx = index > lowest or ctx.need_x
                dx = np.empty((n, layer.h, layer.w, layer.cin), _F32) if want_dx else None
                u_flipped = (
                    transform_kernel(flipped_kernel(layer.weight)) if want_dx and layer.winograd else None
                )
                gw = [np.zeros(layer.weight.shape, _F32) if need[2 * index] else None for _ in range(workers)]
                gb = [np.zeros(layer.cout, _F32) if need[2 * index + 1] else None for _ in range(workers)]

                def run(
                    worker: int,
                    span: tuple[int, int],
                    index: int = index,
                    layer: _Layer = layer,
                    after: np.ndarray = after,
                    dy: np.ndarray = dy,
                    dx: np.ndarray | None = dx,
                    u_flipped: np.ndarray | None = u_flipped,
                    gw: list = gw,
                    gb: list = gb,
                ) -> None:
                    lo, hi = span
                    # Gradient of the pre-activation output; padded (zero border) when a Winograd input
                    # gradient reads it, else contiguous for the weight gradient's GEMM.
                    border = 1 if u_flipped is not None else 0
                    dz = np.zeros((hi - lo, layer.h + 2 * border, layer.w + 2 * border, layer.cout), _F32)
                    inner = dz[:, 1:-1, 1:-1] if border else dz
                    masked = dy[lo:hi] * (after[lo:hi] > 0)  # ReLU passed where the output is positive
                    if layer.pool:  # un-pool: each window's gradient to its winner
                        win = winners[index][lo:hi]
                        for k in range(4):
                            np.copyto(inner[:, k // 2 :: 2, k % 2 :: 2], masked, where=win == k)
                    else:
                        np.copyto(inner, masked)
                    if gb[worker] is not None:
                        gb[worker] += inner.sum(axis=(0, 1, 2))
                    if gw[worker] is not None and layer.winograd:
                        gw[worker] += winograd_weight_grad(inputs[index][lo:hi], inner)
                    elif gw[worker] is not None:
                        cols = im2col(inputs[index][lo:hi])  # [rows, 9·Cin]
                        dz2d = np.ascontiguousarray(inner).reshape(len(cols), layer.cout)
                        gw[worker] += (cols.T @ dz2d).reshape(layer.weight.shape)
                    if dx is None:
                        return
                    if u_flipped is not None:
                        winograd_conv(dz, u_flipped, dx[lo:hi])
                    else:
                        dx[lo:hi] = functional_backward.conv2d_backward_input(
                            np.ascontiguousarray(inner), layer.weight, (hi - lo, layer.h, layer.w, layer.cin)
                        )

                self.pool.run(run, self._spans(n, layer))
                for slot, partials in ((2 + 2 * index, gw), (3 + 2 * index, gb)):
                    parts = [p for p in partials if p is not None]
                    grads[slot] = np.sum(parts, axis=0) if len(parts) > 1 else (parts[0] if parts else None)
                dy = dx
        grads[1] = dy if ctx.need_x else None
        return tuple(grads)
