"""A fused dense stack: fully connected layers split by output columns across two Python workers.

VGGish's fc1_1 weight alone is 201 MB, so these layers are bound by memory bandwidth at small batch and by
GEMM speed at large batch; either way both cores should stream their own half of the columns. The weights are
never copied or re-laid out (they are the largest part of the process's memory).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn.threads import WorkerPool, blas_threads

# Up to this many rows, one matrix-vector product per row beats one GEMM: OpenBLAS's GEMM repacks the whole
# weight on every call (fc1_1: 201 MB), which for 2-3 rows costs more than streaming the weight once per row.
# Measured, fc1_1 alone, one thread, quiet: 2 rows 13.9 vs 16.1 ms, 4 rows 37.8 vs 14.3 ms; the whole dense
# stack, two workers, same run under load: 2 rows 34 vs 46 ms, 3 rows 50 vs 53 ms, 4 rows 66 vs 44 ms.
GEMV_MAX_ROWS = 3
BLOCKS_PER_WORKER = 4  # column blocks per worker and layer
MIN_BLOCK = 64  # narrowest column block (fc2's 128 columns: two blocks)


class DensePlan:
    """A stack of dense layers ``y = x @ W + b`` [+ ReLU], each split by output columns across the workers.

    The weights are kept as single copies (views of the caller's arrays when those are float32 and
    C-contiguous): each worker multiplies by a column slice in place, which BLAS reads with a row stride.

    Parameters
    ----------
    layers : sequence of (weight, bias, relu)
        ``weight`` np.ndarray [shape=(in, out)], ``bias`` [shape=(out,)], ``relu`` bool.
    num_workers : int or None
        Python threads (default: available CPUs). BLAS runs single-threaded inside each.
    """

    def __init__(
        self, layers: Sequence[tuple[np.ndarray, np.ndarray, bool]], *, num_workers: int | None = None
    ) -> None:
        if len(layers) == 0:
            raise InvalidOptionError("DensePlan needs at least one layer, got an empty sequence")
        self.layers: list[tuple[np.ndarray, np.ndarray, bool]] = []
        width = None
        for index, (weight, bias, relu) in enumerate(layers):
            weight = np.ascontiguousarray(weight, dtype=np.float32)
            bias = np.ascontiguousarray(bias, dtype=np.float32)
            if weight.ndim != 2 or (width is not None and weight.shape[0] != width):
                expected = f"[{width}, out]" if width else "[in, out]"
                raise ShapeError(f"layer {index}: expected a {expected} weight, got {weight.shape}")
            if bias.shape != (weight.shape[1],):
                raise ShapeError(f"layer {index}: bias must be ({weight.shape[1]},), got {bias.shape}")
            self.layers.append((weight, bias, bool(relu)))
            width = weight.shape[1]
        self.pool = WorkerPool(num_workers)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the stack: ``x [N, in]`` → ``[N, out]`` float32."""
        x = np.asarray(x)
        width = self.layers[0][0].shape[0]
        if x.ndim != 2 or x.shape[1] != width:
            raise ShapeError(f"DensePlan expects input [N, {width}], got shape {x.shape}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        with blas_threads(1):
            for weight, bias, relu in self.layers:
                x = self._layer(x, weight, bias, relu)
        return x

    def _layer(self, x: np.ndarray, weight: np.ndarray, bias: np.ndarray, relu: bool) -> np.ndarray:
        gemv = 0 < x.shape[0] <= GEMV_MAX_ROWS
        out = (self._gemv_layer if gemv else self._gemm_layer)(x, weight)
        np.add(out, bias, out=out)
        if relu:
            np.maximum(out, 0.0, out=out)
        return out

    def _gemm_layer(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], weight.shape[1]), dtype=np.float32)
        workers, width = self.pool.num_workers, weight.shape[1]
        # Several column blocks per worker, handed out dynamically, so a core slowed by another process does
        # fewer of them (the total BLAS time hardly depends on the block count: measured 2-16 blocks of
        # fc1_1, batch 8 and 64, within noise); blocks are multiples of 16 floats (one AVX-512 vector).
        step = max(MIN_BLOCK, -(-width // (workers * BLOCKS_PER_WORKER * 16)) * 16)
        spans = [(lo, min(lo + step, width)) for lo in range(0, width, step)]

        def work(_worker: int, span: tuple[int, int]) -> None:
            lo, hi = span
            np.matmul(x, weight[:, lo:hi], out=out[:, lo:hi])  # [N, hi - lo]

        self.pool.run(work, spans)
        return out

    def _gemv_layer(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        # Split by input rows, not output columns: each worker then streams one contiguous slab of the
        # weight (fc1_1, one thread: 13.0 ms for two row halves vs 18.0 ms for eight column blocks, whose
        # 2 KB row pieces defeat the prefetcher), and the partial sums are added at the end.
        depth, workers = weight.shape[0], self.pool.num_workers
        step = -(-depth // workers)
        spans = [(lo, min(lo + step, depth)) for lo in range(0, depth, step)]
        partial = np.empty((len(spans), x.shape[0], weight.shape[1]), dtype=np.float32)

        def work(_worker: int, index: int) -> None:
            lo, hi = spans[index]
            for i, row in enumerate(x):
                np.matmul(row[lo:hi], weight[lo:hi], out=partial[index, i])  # GEMV on a contiguous slab

        self.pool.run(work, range(len(spans)))
        return partial.sum(axis=0)  # [N, out]

    def close(self) -> None:
        """Stop the worker threads."""
        self.pool.close()
