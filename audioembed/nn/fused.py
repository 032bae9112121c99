"""Fused execution plans: a conv→bias→ReLU→[max-pool 2×2] stack and a dense stack, built once, run many times.

:class:`ConvStackPlan` precomputes everything that depends only on the weights (Winograd-transformed kernels,
the conv1 patch matrix), splits the network into stages at its pooling layers, and runs each stage over chunks
of images sized to a per-worker scratch budget, on two Python threads with single-threaded BLAS each
(:mod:`audioembed.nn.threads`). Two exact rewrites save passes over memory:

- max-pool is applied before bias and ReLU: a per-channel bias commutes with max, and ReLU is monotone, so
  ``relu(max(y) + b) == max(relu(y + b))`` bit for bit, on a quarter of the data;
- 2×2 pooling windows never straddle a 4×4 Winograd output tile, so pooling is three element-wise maxima over
  contiguous planes of the output transform (see :class:`~audioembed.nn.winograd.TileTransforms`), and the
  result is written straight into the zero-padded input buffer of the next layer.

Chunk size trades GEMM efficiency (more tiles per GEMM) against cache and resident memory (buffers scale with
it); the defaults were measured by ``benchmarks/bench_conv_stack.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn.threads import WorkerPool, blas_threads
from audioembed.nn.winograd import TileTransforms, tile_view, transform_weights

DEFAULT_SCRATCH_BYTES = 16 * 2**20  # per worker: big enough for ≥ 4 conv2 images, small enough for L3 / RSS
_PATCH_MAX_CHANNELS = 4  # layers with at most this many input channels use a patch GEMM, not Winograd


def _split_hw(dst: np.ndarray, p: int, q: int) -> np.ndarray:
    """View ``dst [n, H, W, C]`` as ``[n, H/p, p, W/q, q, C]`` without ever copying (unlike ``reshape``)."""
    n, h, w, c = dst.shape
    sn, sh, sw, sc = dst.strides
    return np.lib.stride_tricks.as_strided(
        dst, shape=(n, h // p, p, w // q, q, c), strides=(sn, p * sh, sh, q * sw, sw, sc)
    )


class _Scratch:
    """One worker's flat float32 arena, carved into three regions (A, B, M) per layer call."""

    def __init__(self) -> None:
        self.data = np.empty(0, dtype=np.float32)

    def regions(self, a: int, b: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.data.size < a + b + m:
            self.data = np.empty(a + b + m, dtype=np.float32)
        return self.data[:a], self.data[a : a + b], self.data[a + b : a + b + m]


class _Layer:
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
        raise NotImplementedError

    def run(self, src: np.ndarray, dst: np.ndarray, scratch: _Scratch) -> None:
        raise NotImplementedError


class _PatchLayer(_Layer):
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

    def run(self, src: np.ndarray, dst: np.ndarray, scratch: _Scratch) -> None:
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
        pooled += self.bias
        np.maximum(pooled.reshape(n, ho, wo, self.cout), 0.0, out=dst)


class _WinogradLayer(_Layer):
    """Many input channels: Winograd F(m×m, 3×3) as three GEMMs (see :mod:`audioembed.nn.winograd`)."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, pool: bool, h: int, w: int, m: int) -> None:
        if h % m or w % m:
            raise ShapeError(f"a Winograd layer needs height and width divisible by {m}, got {(h, w)}")
        self.h, self.w, self.pool, self.m = h, w, pool, m
        self.cin, self.cout = weight.shape[2:]
        self.th, self.tw = h // m, w // m
        self.transforms = TileTransforms(m, pool=pool)
        self.u = transform_weights(weight, m=m)  # [a², Cin, Cout]
        self.bias = bias

    def scratch_sizes(self, n: int) -> tuple[int, int, int]:
        t, a2, m2 = n * self.th * self.tw, self.transforms.a**2, self.m**2
        # Each step's output overwrites a region whose contents are dead by then:
        # A: gathered tiles → GEMM products → pooled planes; B: input transform → output transform
        return a2 * t * max(self.cin, self.cout), max(a2 * self.cin, m2 * self.cout) * t, 0

    def run(self, src: np.ndarray, dst: np.ndarray, scratch: _Scratch) -> None:
        n, m, a = src.shape[0], self.m, self.transforms.a
        th, tw, cin, cout = self.th, self.tw, self.cin, self.cout
        t, a2 = n * th * tw, a * a
        ra, rb, _ = scratch.regions(*self.scratch_sizes(n))
        tiles = ra[: a2 * t * cin].reshape(a, a, n, th, tw, cin)
        np.copyto(tiles, tile_view(src, m))
        v = rb[: a2 * t * cin].reshape(a2, t * cin)
        np.matmul(self.transforms.input_matrix, tiles.reshape(a2, t * cin), out=v)  # [a², T·Cin]
        prod = ra[: a2 * t * cout].reshape(a2, t, cout)
        np.matmul(v.reshape(a2, t, cin), self.u, out=prod)  # a² GEMMs [T, Cin] @ [Cin, Cout]
        y = rb[: m * m * t * cout].reshape(m * m, t * cout)
        np.matmul(self.transforms.output_matrix, prod.reshape(a2, t * cout), out=y)  # [m², T·Cout]
        if self.pool:
            q = (m // 2) ** 2
            members = y.reshape(4, q, t, cout)  # rows ordered (pool member, window): see TileTransforms
            pooled = ra[: q * t * cout].reshape(q, t, cout)
            np.maximum(members[0], members[1], out=pooled)
            np.maximum(pooled, members[2], out=pooled)
            np.maximum(pooled, members[3], out=pooled)
            pooled += self.bias
            half = m // 2
            # [wr, wc, n, th, tw, C] → the output pixel (th·half + wr, tw·half + wc)
            planes = pooled.reshape(half, half, n, th, tw, cout).transpose(2, 3, 0, 4, 1, 5)
            np.maximum(planes, 0.0, out=_split_hw(dst, half, half))
        else:
            y3 = y.reshape(m * m, t, cout)
            y3 += self.bias
            planes = y3.reshape(m, m, n, th, tw, cout).transpose(2, 3, 0, 4, 1, 5)  # [n, th, r, tw, c, C]
            np.maximum(planes, 0.0, out=_split_hw(dst, m, m))


@dataclass
class _Stage:
    layers: list[_Layer]
    chunk: int  # most images per work item, from the scratch budget
    inner: list[list[np.ndarray]]  # per worker: padded buffers between the stage's layers


class ConvStackPlan:
    """A stack of 3×3 SAME conv → bias → ReLU → [2×2 max-pool] layers, compiled for fast batched inference.

    Parameters
    ----------
    layers : sequence of (weight, bias, pool_after)
        ``weight`` np.ndarray [shape=(3, 3, Cin, Cout)] HWIO, ``bias`` [shape=(Cout,)], ``pool_after`` bool.
        Copied and transformed at construction: later changes to the arrays are not seen (rebuild the plan).
    input_shape : (H, W, Cin)
        Shape of one input image. Every Winograd layer's input height and width must be multiples of ``tile``.
    tile : int
        Winograd output tile, 4 (default, fastest) or 2 (more accurate).
    num_workers : int or None
        Python threads (default: available CPUs). BLAS runs single-threaded inside each.
    scratch_bytes : int
        Scratch memory per worker; sets how many images a work item holds.

    Notes
    -----
    Calls are serialised by a lock: the plan reuses its buffers between calls. Input ``[N, H, W, Cin]``
    (or ``[N, H, W]`` when Cin = 1) of any float dtype and strides; output ``[N, Ho, Wo, Cout]`` float32,
    a new array.
    """

    def __init__(
        self,
        layers: Sequence[tuple[np.ndarray, np.ndarray, bool]],
        *,
        input_shape: tuple[int, int, int],
        tile: int = 4,
        num_workers: int | None = None,
        scratch_bytes: int = DEFAULT_SCRATCH_BYTES,
    ) -> None:
        if len(layers) == 0:
            raise InvalidOptionError("ConvStackPlan needs at least one layer, got an empty sequence")
        if not isinstance(scratch_bytes, int) or scratch_bytes <= 0:
            raise InvalidOptionError(f"scratch_bytes must be a positive int, got {scratch_bytes!r}")
        h, w, c = (int(v) for v in input_shape)
        self.input_shape = (h, w, c)
        built: list[_Layer] = []
        for index, (weight, bias, pool) in enumerate(layers):
            weight = np.asarray(weight)
            bias = np.array(bias, dtype=np.float32)  # a copy: the plan is a snapshot of the weights
            if weight.shape[:3] != (3, 3, c) or weight.ndim != 4:
                raise ShapeError(f"layer {index}: expected a [3, 3, {c}, Cout] kernel, got {weight.shape}")
            if bias.shape != (weight.shape[3],):
                raise ShapeError(f"layer {index}: bias must be ({weight.shape[3]},), got {bias.shape}")
            if pool and (h % 2 or w % 2):
                raise ShapeError(f"layer {index}: 2×2 pooling needs even height and width, got {(h, w)}")
            if c <= _PATCH_MAX_CHANNELS:
                layer: _Layer = _PatchLayer(weight, bias, bool(pool), h, w)
            else:
                layer = _WinogradLayer(weight, bias, bool(pool), h, w, tile)
            built.append(layer)
            (h, w), c = layer.out_hw, layer.cout
        self.output_shape = (h, w, c)
        self.pool = WorkerPool(num_workers)
        self._lock = threading.Lock()
        self._stages = self._make_stages(built, scratch_bytes)
        self._scratch = [_Scratch() for _ in range(self.pool.num_workers)]
        self._between: list[np.ndarray] = []  # padded full-batch buffers between stages

    def _make_stages(self, layers: list[_Layer], scratch_bytes: int) -> list[_Stage]:
        # A stage ends at a pooling layer (activations shrink 4×); a patch layer joins the following stage
        # so that its large output never exists for the whole batch.
        groups: list[list[_Layer]] = [[]]
        for layer in layers:
            groups[-1].append(layer)
            if layer.pool and not isinstance(layer, _PatchLayer):
                groups.append([])
        groups = [g for g in groups if g]
        stages = []
        for group in groups:
            per_image = max(4 * sum(layer.scratch_sizes(1)) for layer in group)
            chunk = max(1, scratch_bytes // per_image)
            stages.append(_Stage(group, chunk, [[] for _ in range(self.pool.num_workers)]))
        return stages

    @property
    def layers(self) -> list[_Layer]:
        return [layer for stage in self._stages for layer in stage.layers]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the stack: ``x [N, H, W, Cin]`` → ``[N, Ho, Wo, Cout]`` float32."""
        x = np.asarray(x)
        h, w, c = self.input_shape
        if x.ndim == 3 and c == 1:
            x = x[..., None]  # [N, H, W] → [N, H, W, 1]
        if x.ndim != 4 or x.shape[1:] != (h, w, c):
            raise ShapeError(f"ConvStackPlan expects input [N, {h}, {w}, {c}], got shape {x.shape}")
        n = x.shape[0]
        out = np.empty((n, *self.output_shape), dtype=np.float32)
        if n == 0:
            return out
        # BLAS stays single-threaded even with one worker: OpenBLAS's own threads spin-wait badly on these
        # small GEMMs when the other core is busy (measured 10x slower under load).
        with self._lock, blas_threads(1):
            sources = [x, *self._between_buffers(n)]
            for index, stage in enumerate(self._stages):
                src = sources[index]
                last = index == len(self._stages) - 1
                dst = out if last else sources[index + 1][:, 1:-1, 1:-1]
                self._run_stage(stage, src, dst, n, first=index == 0)
        return out

    def _between_buffers(self, n: int) -> list[np.ndarray]:
        if not self._between or self._between[0].shape[0] < n:
            self._between = []
            for stage in self._stages[:-1]:
                ho, wo = stage.layers[-1].out_hw
                self._between.append(np.zeros((n, ho + 2, wo + 2, stage.layers[-1].cout), dtype=np.float32))
        return [b[:n] for b in self._between]

    def _run_stage(self, stage: _Stage, src: np.ndarray, dst: np.ndarray, n: int, *, first: bool) -> None:
        workers = self.pool.num_workers
        # Even work items, at most `stage.chunk` images each, and at least one item per worker when possible.
        items_per_worker = -(-n // (workers * stage.chunk))
        chunk = -(-n // (workers * items_per_worker))
        spans = [(i, min(i + chunk, n)) for i in range(0, n, chunk)]

        def work(worker: int, span: tuple[int, int]) -> None:
            lo, hi = span
            buffers = self._inner_buffers(stage, worker, first)
            count = hi - lo
            if first:
                padded = buffers[0][:count]
                padded[:, 1:-1, 1:-1] = src[lo:hi]
                current = padded
            else:
                current = src[lo:hi]
            for k, layer in enumerate(stage.layers):
                if k == len(stage.layers) - 1:
                    target = dst[lo:hi]
                    layer.run(current, target, self._scratch[worker])
                else:
                    nxt = buffers[k + 1][:count]
                    layer.run(current, nxt[:, 1:-1, 1:-1], self._scratch[worker])
                    current = nxt

        self.pool.run(work, spans)

    def _inner_buffers(self, stage: _Stage, worker: int, first: bool) -> list[np.ndarray]:
        buffers = stage.inner[worker]
        if not buffers:
            layer0 = stage.layers[0]
            shapes = [(layer0.h, layer0.w, layer0.cin)] if first else [(0, 0, 0)]
            shapes += [(*layer.out_hw, layer.cout) for layer in stage.layers[:-1]]
            for h, w, c in shapes:
                buffers.append(np.zeros((stage.chunk, h + 2, w + 2, c), dtype=np.float32))
        return buffers

    def release_buffers(self) -> None:
        """Free the activation and scratch buffers (they are re-allocated by the next call)."""
        with self._lock:
            self._between = []
            self._scratch = [_Scratch() for _ in range(self.pool.num_workers)]
            for stage in self._stages:
                stage.inner = [[] for _ in range(self.pool.num_workers)]

    def close(self) -> None:
        """Stop the worker threads and free the buffers."""
        self.release_buffers()
        self.pool.close()
