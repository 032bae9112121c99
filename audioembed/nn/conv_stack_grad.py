"""A trainable fused stack of 3×3 SAME conv → bias → ReLU → [2×2 max-pool] layers, as one :class:`Function`.

The training counterpart of :class:`~audioembed.nn.fused.ConvStackPlan`: the same arithmetic as the layers
one by one (and the same gradients, to float32 rounding), organised for speed and memory:

- **Work split by images.** Every image's forward and backward chain is independent except for the weight
  gradients, so chunks of images go to two Python workers (:class:`~audioembed.nn.threads.WorkerPool`), each
  running single-threaded BLAS, as the inference engine does; each worker sums its own weight gradients.
- **Winograd both ways.** Layers with enough input channels run forward by Winograd F(4×4, 3×3) as three
  GEMMs; the input gradient is the same kind of convolution (of the output gradient with the kernel flipped
  and its channel axes swapped), so it runs by Winograd too. The weight gradient is one GEMM per chunk over
  im2col patches of the saved input. Layers with few input channels (conv1) use im2col GEMMs.
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
CHUNK_IMAGES = 4  # images per work item: ~10-20 MB of scratch per worker for VGGish's layers
_F32 = np.float32


def _kron_transforms() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    at, g, bt = winograd_matrices(TILE)
    return np.kron(bt, bt).astype(_F32), np.kron(g, g).astype(_F32), np.kron(at, at).astype(_F32)


_BT, _G, _AT = _kron_transforms()  # [36, 36] input, [36, 9] kernel, [16, 36] output transforms


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


def winograd_conv(padded: np.ndarray, u: np.ndarray, out: np.ndarray) -> None:
    """3×3 SAME convolution ``padded [n, H+2, W+2, Cin]`` (zero border) → ``out [n, H, W, Cout]`` (a view).

    ``u`` is :func:`transform_kernel` of the kernel; H and W are multiples of 4.
    """
    n, hp, wp, cin = padded.shape
    th, tw = (hp - 2) // TILE, (wp - 2) // TILE
    t, cout = n * th * tw, u.shape[2]
    tiles = np.empty((6, 6, n, th, tw, cin), _F32)
    np.copyto(tiles, tile_view(padded, TILE))  # overlapping 6×6 input tiles
    v = (_BT @ tiles.reshape(36, t * cin)).reshape(36, t, cin)  # input transform
    products = np.matmul(v, u)  # 36 GEMMs [T, Cin] @ [Cin, Cout]
    y = _AT @ products.reshape(36, t * cout)  # output transform [16, T·Cout]
    planes = y.reshape(TILE, TILE, n, th, tw, cout).transpose(2, 3, 0, 4, 1, 5)  # [n, th, r, tw, c, C]
    np.copyto(split_view(out, TILE), planes)


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
    members = [r[:, di::2, dj::2] for di in range(2) for dj in range(2)]  # row-major window order
    np.copyto(out, members[0])
    winners.fill(0)
    better = np.empty(out.shape, dtype=bool)
    for k in range(1, 4):
        np.greater(members[k], out, out=better)
        np.copyto(out, members[k], where=better)
        np.copyto(winners, k, where=better)


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

        def run(worker: int, span: tuple[int, int]) -> None:
            lo, hi = span
            for index, layer in enumerate(layers):
                dst = inputs[index + 1][lo:hi, 1:-1, 1:-1] if index + 1 < len(layers) else out[lo:hi]
                z = layer.conv(inputs[index][lo:hi])
                np.maximum(z, 0, out=z)  # ReLU
                if layer.pool:
                    pool_with_winners(z, dst, winners[index][lo:hi])
                else:
                    np.copyto(dst, z)

        with blas_threads(1):
            self.pool.run(run, _spans(n))
        needs = ctx.needs_input_grad
        ctx.stack, ctx.layers, ctx.inputs, ctx.winners, ctx.out = self, layers, inputs, winners, out
        ctx.need_x, ctx.need_params = needs[1], needs[2:]
        return out.copy() if needs[1] or any(needs[2:]) else out  # the saved array stays private

    # --- backward --------------------------------------------------------------------------------------
    def backward(self, ctx: FunctionCtx, grad: np.ndarray) -> tuple[Any, ...]:
        layers, inputs, winners, out = ctx.layers, ctx.inputs, ctx.winners, ctx.out
        need = ctx.need_params
        # The input gradient of layer i is needed when some earlier layer (or x) needs a gradient.
        first_needed = next((i for i in range(len(layers)) if need[2 * i] or need[2 * i + 1]), len(layers))
        lowest = 0 if ctx.need_x else first_needed
        for index, layer in enumerate(layers):
            if layer.winograd and index > lowest:
                layer.u_flipped = transform_kernel(flipped_kernel(layer.weight))
        n = grad.shape[0]
        workers = self.pool.num_workers
        grad_w = [
            [np.zeros(ly.weight.shape, _F32) if need[2 * i] else None for i, ly in enumerate(layers)]
            for _ in range(workers)
        ]
        grad_b = [
            [np.zeros(ly.cout, _F32) if need[2 * i + 1] else None for i, ly in enumerate(layers)]
            for _ in range(workers)
        ]
        grad_x = np.empty((n, layers[0].h, layers[0].w, layers[0].cin), _F32) if ctx.need_x else None

        def run(worker: int, span: tuple[int, int]) -> None:
            lo, hi = span
            dy = np.asarray(grad[lo:hi], dtype=_F32)
            for index in range(len(layers) - 1, lowest - 1, -1):
                layer = layers[index]
                after = inputs[index + 1][lo:hi, 1:-1, 1:-1] if index + 1 < len(layers) else out[lo:hi]
                dz = np.zeros((hi - lo, layer.h + 2, layer.w + 2, layer.cout), _F32)  # zero border: padding
                inner = dz[:, 1:-1, 1:-1]
                masked = dy * (after > 0)  # ReLU: the output (pooled or not) is positive where it passed
                if layer.pool:
                    win = winners[index][lo:hi]
                    for k in range(4):
                        np.copyto(inner[:, k // 2 :: 2, k % 2 :: 2], masked, where=win == k)
                else:
                    np.copyto(inner, masked)
                rows = (hi - lo) * layer.h * layer.w
                dz2d = np.ascontiguousarray(inner).reshape(rows, layer.cout)
                if grad_b[worker][index] is not None:
                    grad_b[worker][index] += dz2d.sum(axis=0)
                if grad_w[worker][index] is not None:
                    cols = im2col(inputs[index][lo:hi])  # [rows, 9·Cin]
                    grad_w[worker][index] += (cols.T @ dz2d).reshape(layer.weight.shape)
                if index == lowest and not ctx.need_x:
                    break
                if layer.winograd and layer.u_flipped is not None:
                    dy = np.empty((hi - lo, layer.h, layer.w, layer.cin), _F32)
                    winograd_conv(dz, layer.u_flipped, dy)
                else:
                    dy = functional_backward.conv2d_backward_input(
                        np.ascontiguousarray(inner), layer.weight, (hi - lo, layer.h, layer.w, layer.cin)
                    )
            if grad_x is not None:
                grad_x[lo:hi] = dy

        with blas_threads(1):
            self.pool.run(run, _spans(n))
        grads: list[Any] = [None, grad_x]
        for index in range(len(layers)):
            for partials in (grad_w, grad_b):
                parts = [p[index] for p in partials if p[index] is not None]
                grads.append(np.sum(parts, axis=0) if len(parts) > 1 else (parts[0] if parts else None))
        return tuple(grads)


def _spans(n: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + CHUNK_IMAGES, n)) for lo in range(0, n, CHUNK_IMAGES)]
