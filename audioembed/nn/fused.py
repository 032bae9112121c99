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
from dataclasses import dataclass, field

import numpy as np

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn.fused_layers import Layer, PatchLayer, Scratch, WinogradLayer
from audioembed.nn.pages import release_pages
from audioembed.nn.threads import WorkerPool, blas_threads

# Per worker: big enough for ≥ 4 conv2 images, small enough for L3 / RSS. It sizes the work items; the
# separable transforms' intermediate (up to 2.4 MB, independent of the item) comes on top.
DEFAULT_SCRATCH_BYTES = 16 * 2**20
_PATCH_MAX_CHANNELS = 4  # layers with at most this many input channels use a patch GEMM, not Winograd
# A stage whose batch has at most this many tiles per worker splits its layers by output channels instead of
# by images (GEMMs with fewer rows than this run well below BLAS's speed on these shapes).
SPLIT_TILES = 96
CHANNEL_BLOCK = 64  # output channels per work item when a layer is split by channels
MIN_ITEMS_PER_WORKER = 2  # image chunks per worker and stage, when the batch has enough images


@dataclass
class _Stage:
    layers: list[Layer]
    chunk: int  # most images per work item, from the scratch budget
    inner: list[tuple[int, int, int]]  # (H, W, C) of a work item's padded buffers (_inner_buffers)
    split_max: int  # most images the channel-split mode takes, from the scratch budget
    tiles_per_image: int  # of the stage's first Winograd layer (0 without one)
    shapes: list[tuple[int, int, int]]  # (H, W, C) of the stage's input and of each inner activation
    split: list[np.ndarray] = field(default_factory=list)  # padded buffers of the channel-split mode


class ConvStackPlan:
    """A stack of 3×3 SAME conv → bias → ReLU → [2×2 max-pool] layers, compiled for fast batched inference.

    Parameters
    ----------
    layers : sequence of (weight, bias, pool_after)
        ``weight`` np.ndarray [shape=(3, 3, Cin, Cout)] HWIO, ``bias`` [shape=(Cout,)], ``pool_after`` bool.
        Transformed at construction; tiny batches (a few tiles) read ``weight`` itself (a view when it is
        contiguous float32). Do not write into these arrays while the plan is used: rebuild it instead.
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
        built: list[Layer] = []
        # The weight transforms are small float64 GEMMs: with OpenBLAS's own threads they spin-wait on a busy
        # machine (measured 10x slower), and start-up time is part of every `audioembed embed` run.
        with blas_threads(1):
            for index, (weight, bias, pool) in enumerate(layers):
                built.append(self._build_layer(index, weight, bias, pool, h, w, c, tile))
                (h, w), c = built[-1].out_hw, built[-1].cout
        self.output_shape = (h, w, c)
        self.pool = WorkerPool(num_workers)
        self._lock = threading.Lock()
        self._stages = self._make_stages(built, scratch_bytes)
        self._scratch = [Scratch() for _ in range(self.pool.num_workers)]
        # One arena per worker for the padded buffers inside a stage, shared by all stages (they run one
        # after the other): sized for the largest stage instead of the sum of them.
        self._inner_size = max(
            stage.chunk * sum((h + 2) * (w + 2) * c for h, w, c in stage.inner) for stage in self._stages
        )
        self._inner = [np.empty(0, np.float32) for _ in range(self.pool.num_workers)]
        # What each worker's arena was last carved into, (stage, images): while it stays the same (a worker's
        # consecutive items of one stage), the zero borders written then are still in place.
        self._carved: list[tuple[_Stage, int] | None] = [None] * self.pool.num_workers
        self._between: list[np.ndarray] = []  # padded full-batch buffers between stages
        self._shared = np.empty(0, np.float32)  # a channel-split layer's input transform, read by all workers

    @staticmethod
    def _build_layer(
        index: int, weight: np.ndarray, bias: np.ndarray, pool: bool, h: int, w: int, c: int, tile: int
    ) -> Layer:
        weight = np.asarray(weight)
        bias = np.array(bias, dtype=np.float32)  # a copy: the plan is a snapshot of the weights
        if weight.shape[:3] != (3, 3, c) or weight.ndim != 4:
            raise ShapeError(f"layer {index}: expected a [3, 3, {c}, Cout] kernel, got {weight.shape}")
        if bias.shape != (weight.shape[3],):
            raise ShapeError(f"layer {index}: bias must be ({weight.shape[3]},), got {bias.shape}")
        if pool and (h % 2 or w % 2):
            raise ShapeError(f"layer {index}: 2×2 pooling needs even height and width, got {(h, w)}")
        if c <= _PATCH_MAX_CHANNELS:
            layer: Layer = PatchLayer(weight, bias, bool(pool), h, w)
        else:
            layer = WinogradLayer(weight, bias, bool(pool), h, w, tile)
        # Kernels mapped from a weights file: the plan has transformed them, so their pages leave the
        # resident set (only tiny batches read them again; they fault back in from the page cache).
        release_pages(weight)
        return layer

    def _make_stages(self, layers: list[Layer], scratch_bytes: int) -> list[_Stage]:
        # A stage ends at a pooling layer (activations shrink 4×); a patch layer joins the following stage
        # so that its large output never exists for the whole batch.
        groups: list[list[Layer]] = [[]]
        for layer in layers:
            groups[-1].append(layer)
            if layer.pool and not isinstance(layer, PatchLayer):
                groups.append([])
        groups = [g for g in groups if g]
        stages = []
        workers = self.pool.num_workers
        for group in groups:
            per_image = max(4 * layer.elements_per_image() for layer in group)
            winograd = [layer for layer in group if isinstance(layer, WinogradLayer)]
            # Smaller items for conv2's stage ((3, 8, 16) images per item at batch 64, not (6, 8, 16)) took
            # 0.95x the conv stack's time, (3, 4, 16) 0.93x, but made the workers hold the GIL for 11-17 % of
            # the forward instead of 8 % (benchmarks/bench_gil.py: more items, each with its Python glue and
            # short calls), which bounds scaling to many cores: the whole budget stays.
            chunk = max(1, scratch_bytes // per_image)
            split_per_image = max(
                [4 * layer.elements_per_image(-(-layer.cout // workers)) for layer in winograd]
                + [4 * layer.elements_per_image() for layer in group if layer not in winograd]
            )
            shapes = [(group[0].h, group[0].w, group[0].cin)]
            shapes += [(*layer.out_hw, layer.cout) for layer in group[:-1]]
            tiles = winograd[0].th * winograd[0].tw if winograd else 0
            split_max = max(workers - 1, scratch_bytes // split_per_image)
            # A work item's padded buffers: its input when the stage reads the caller's (unpadded) array,
            # then the output of every layer but the last (which writes into the next stage's buffer).
            inner = ([shapes[0]] if not stages else []) + shapes[1:]
            stages.append(_Stage(group, chunk, inner, split_max, tiles, shapes))
        return stages

    @property
    def layers(self) -> list[Layer]:
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
                if self._splits_by_channels(stage, n):
                    self._run_stage_split(stage, src, dst, n, first=index == 0)
                else:
                    self._run_stage(stage, src, dst, n, first=index == 0)
        return out

    def _splits_by_channels(self, stage: _Stage, n: int) -> bool:
        """Whether a stage runs layer by layer with each Winograd layer split by output channels.

        With few tiles per worker, splitting the images starves the GEMMs (conv4 has 6 tiles per image) and
        makes every worker stream all of the layer's transformed weights; splitting the output channels gives
        each worker all the tiles and half the weights, at the price of redoing the (cheap) input transform.
        """
        workers = self.pool.num_workers
        if workers == 1 or n > stage.split_max:
            return False
        return n < workers or n * stage.tiles_per_image <= workers * SPLIT_TILES

    def _run_stage_split(
        self, stage: _Stage, src: np.ndarray, dst: np.ndarray, n: int, *, first: bool
    ) -> None:
        if not stage.split or stage.split[-1].shape[0] < n:
            # the stage's own input buffer is needed only when the input is the caller's (unpadded) array
            sizes = [n if first or k else 0 for k in range(len(stage.shapes))]
            stage.split = [
                np.zeros((size, h + 2, w + 2, c), np.float32)
                for size, (h, w, c) in zip(sizes, stage.shapes, strict=True)
            ]
        if first:
            np.copyto(stage.split[0][:n, 1:-1, 1:-1], src)
            src = stage.split[0][:n]
        for k, layer in enumerate(stage.layers):
            last = k == len(stage.layers) - 1
            target = dst if last else stage.split[k + 1][:n, 1:-1, 1:-1]
            if isinstance(layer, WinogradLayer):
                self._winograd_split(layer, src, target, n)
            else:
                layer.run(src, target, self._scratch[0])
            if not last:
                src = stage.split[k + 1][:n]

    def _winograd_split(self, layer: WinogradLayer, src: np.ndarray, dst: np.ndarray, n: int) -> None:
        """Input transform split by images, then output channels in blocks handed out dynamically."""
        workers, a2, tiles = self.pool.num_workers, layer.transforms.a**2, layer.th * layer.tw
        need = layer.input_size(n)
        if self._shared.size < need:
            self._shared = np.empty(need, np.float32)
        v = self._shared[:need]
        if layer.direct(n):  # a few patches: one worker gathers them
            layer.transform_input(src, v, v, v)
        else:
            v2 = v.reshape(a2, n * tiles * layer.cin)  # [a², T·Cin] for the whole batch
            # Images per worker; a single image is split into bands of tile rows (its tiles are row-major).
            count, unit, row = (layer.th, layer.tw, layer.m) if n == 1 else (n, tiles, None)
            per = -(-count // workers)
            spans = [(lo, min(lo + per, count)) for lo in range(0, count, per)]

            def transform(worker: int, span: tuple[int, int]) -> None:
                lo, hi = span
                part_src = src[lo:hi] if row is None else src[:, row * lo : row * hi + 2]
                ra, _, rm = self._scratch[worker].regions(*layer.scratch_sizes(n if row else hi - lo))
                part = v2[:, lo * unit * layer.cin : hi * unit * layer.cin]
                layer.transform_input(part_src, part, ra, rm, direct=False)

            self.pool.run(transform, spans)
        # Blocks of 64 channels (whole AVX-512 vectors, GEMMs still wide): a busier core just takes fewer.
        # The direct path takes one block per worker: every block repacks the whole patch matrix, and with
        # halves the conv4 layers of one image take 4.6 instead of 4.8 ms of the conv stack (alternating
        # A/B, 40 rounds; with the Winograd path, halves cost batch 4 0.9 ms, so it keeps 64).
        per_worker = -(-layer.cout // workers)
        step = per_worker if layer.direct(n) else min(CHANNEL_BLOCK, per_worker)
        blocks = [(lo, min(lo + step, layer.cout)) for lo in range(0, layer.cout, step)]

        def finish(worker: int, span: tuple[int, int]) -> None:
            ra, rb, rm = self._scratch[worker].regions(*layer.scratch_sizes(n, span[1] - span[0]))
            layer.finish(v, dst, ra, rb, rm, channels=span)

        self.pool.run(finish, blocks)

    def _between_buffers(self, n: int) -> list[np.ndarray]:
        if not self._between or self._between[0].shape[0] < n:
            self._between = []
            for stage in self._stages[:-1]:
                ho, wo = stage.layers[-1].out_hw
                self._between.append(np.zeros((n, ho + 2, wo + 2, stage.layers[-1].cout), dtype=np.float32))
        return [b[:n] for b in self._between]

    def _run_stage(self, stage: _Stage, src: np.ndarray, dst: np.ndarray, n: int, *, first: bool) -> None:
        workers = self.pool.num_workers
        # Even work items of at most `stage.chunk` images, two or more per worker: the counter then hands a
        # core that another process slows down fewer items instead of making the other core wait for it.
        items_per_worker = max(MIN_ITEMS_PER_WORKER, -(-n // (workers * stage.chunk)))
        chunk = -(-n // (workers * items_per_worker))
        spans = [(i, min(i + chunk, n)) for i in range(0, n, chunk)]

        def work(worker: int, span: tuple[int, int]) -> None:
            lo, hi = span
            count = hi - lo
            buffers = self._inner_buffers(stage, worker, count)
            if first:
                padded = buffers[0]
                np.copyto(padded[:, 1:-1, 1:-1], src[lo:hi])
                current = padded
            else:
                current = src[lo:hi]
            for k, layer in enumerate(stage.layers):
                if k == len(stage.layers) - 1:
                    target = dst[lo:hi]
                    layer.run(current, target, self._scratch[worker])
                else:
                    nxt = buffers[k + 1 if first else k]
                    layer.run(current, nxt[:, 1:-1, 1:-1], self._scratch[worker])
                    current = nxt

        self.pool.run(work, spans)

    def _inner_buffers(self, stage: _Stage, worker: int, count: int) -> list[np.ndarray]:
        """The padded buffers of one work item of ``count`` images, carved from the worker's arena.

        The arena is shared by the stages, so the zero borders (the padding the next layer reads) are
        zeroed again whenever the carving changes; the interiors are overwritten by the layers.
        """
        if self._inner[worker].size < self._inner_size:
            self._inner[worker] = np.empty(self._inner_size, dtype=np.float32)
            self._carved[worker] = None
        arena, offset, buffers = self._inner[worker], 0, []
        carved = self._carved[worker]
        fresh = carved is None or carved[0] is not stage or carved[1] != count
        for h, w, c in stage.inner:
            size = count * (h + 2) * (w + 2) * c
            buffer = arena[offset : offset + size].reshape(count, h + 2, w + 2, c)
            offset += size
            if fresh:
                for border in (buffer[:, 0], buffer[:, -1], buffer[:, 1:-1, 0], buffer[:, 1:-1, -1]):
                    border.fill(0.0)
            buffers.append(buffer)
        self._carved[worker] = (stage, count)
        return buffers

    def release_buffers(self) -> None:
        """Free the activation and scratch buffers (they are re-allocated by the next call)."""
        with self._lock:
            self._between, self._shared = [], np.empty(0, np.float32)
            self._scratch = [Scratch() for _ in range(self.pool.num_workers)]
            self._inner = [np.empty(0, np.float32) for _ in range(self.pool.num_workers)]
            self._carved = [None] * self.pool.num_workers
            for stage in self._stages:
                stage.split = []

    def close(self) -> None:
        """Stop the worker threads and free the buffers."""
        self.release_buffers()
        self.pool.close()
