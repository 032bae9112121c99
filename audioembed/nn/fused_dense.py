"""A fused dense stack: fully connected layers split across two Python workers.

VGGish's fc1_1 weight alone is 201 MB, so these layers are bound by memory bandwidth at small batch and by
GEMM speed at large batch; either way both cores should stream their own part of the weight. The weights are
never copied or re-laid out here (they are the largest part of the process's memory): a kernel is used in the
layout it comes in.

Two layouts, both ``weight`` of shape ``[in, out]`` to the caller:

- **input-major** (C-contiguous ``[in, out]``, the TF layout): ``x @ W`` with each worker taking column
  blocks, read with a row stride;
- **output-major** (F-contiguous ``[in, out]``, i.e. a C-contiguous ``[out, in]`` seen transposed, the layout
  native weights files store): ``Wᵀ @ xᵀ`` with each worker taking contiguous slabs of output rows. OpenBLAS
  runs this form much faster at 2-64 rows (measured, VGGish's dense stack, two workers: 0.55-0.76× the time
  of ``x @ W``; one fc1_1 column block, one thread, 64 rows: 163 vs 125 GFLOP/s), and it needs no partial
  sums at one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from audioembed.errors import InvalidOptionError, ShapeError
from audioembed.nn.threads import WorkerPool, blas_threads

# Input-major kernels: up to this many rows, one matrix-vector product per row beats one GEMM: OpenBLAS's
# GEMM repacks the whole weight on every call (fc1_1: 201 MB), which for 2-3 rows costs more than streaming
# the weight once per row. Measured, fc1_1 alone, one thread, quiet: 2 rows 13.9 vs 16.1 ms, 4 rows 37.8 vs
# 14.3 ms; the whole dense stack, two workers, same run under load: 2 rows 34 vs 46 ms, 3 rows 50 vs 53 ms,
# 4 rows 66 vs 44 ms. (Output-major kernels take the GEMM from 2 rows on: 2 rows equal, 3 rows 0.80×.)
GEMV_MAX_ROWS = 3
BLOCKS_PER_WORKER = 4  # column (or output-row) blocks per worker and layer
MIN_BLOCK = 64  # narrowest block (fc2's 128 outputs: two blocks)


@dataclass(frozen=True)
class DenseLayer:
    """One layer of a :class:`DensePlan`.

    Attributes
    ----------
    weight : np.ndarray [shape=(in, out), float32]
        C-contiguous (input-major) or F-contiguous (output-major); a view of the caller's array if possible.
    bias : np.ndarray [shape=(out,), float32]
    relu : bool
    """

    weight: np.ndarray
    bias: np.ndarray
    relu: bool

    @property
    def output_major(self) -> bool:
        """Whether the kernel's memory holds one contiguous row of inputs per output (``weight.T`` is C)."""
        return not self.weight.flags.c_contiguous


def _kernel(weight: np.ndarray) -> np.ndarray:
    """``weight`` itself when float32 and C- or F-contiguous, else a C-contiguous float32 copy."""
    weight = np.asarray(weight)
    if weight.dtype == np.float32 and (weight.flags.c_contiguous or weight.flags.f_contiguous):
        return weight
    return np.ascontiguousarray(weight, dtype=np.float32)


class DensePlan:
    """A stack of dense layers ``y = x @ W + b`` [+ ReLU], each split across the workers.

    The weights are kept as single copies (views of the caller's arrays when those are float32 and C- or
    F-contiguous, see the module docstring for the two layouts).

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
        self.layers: list[DenseLayer] = []
        width = None
        for index, (weight, bias, relu) in enumerate(layers):
            weight = _kernel(weight)
            bias = np.ascontiguousarray(bias, dtype=np.float32)
            if weight.ndim != 2 or (width is not None and weight.shape[0] != width):
                expected = f"[{width}, out]" if width else "[in, out]"
                raise ShapeError(f"layer {index}: expected a {expected} weight, got {weight.shape}")
            if bias.shape != (weight.shape[1],):
                raise ShapeError(f"layer {index}: bias must be ({weight.shape[1]},), got {bias.shape}")
            self.layers.append(DenseLayer(weight, bias, bool(relu)))
            width = weight.shape[1]
        self.pool = WorkerPool(num_workers)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Run the stack: ``x [N, in]`` → ``[N, out]`` float32."""
        x = np.asarray(x)
        width = self.layers[0].weight.shape[0]
        if x.ndim != 2 or x.shape[1] != width:
            raise ShapeError(f"DensePlan expects input [N, {width}], got shape {x.shape}")
        if x.shape[0] == 0:
            return np.empty((0, self.layers[-1].weight.shape[1]), dtype=np.float32)
        # Activations travel in the layout the next kernel wants: rows [N, in] for input-major kernels,
        # columns [in, N] for output-major ones (a transposing copy when they change: a few MB at most).
        columns = self.layers[0].output_major
        h = np.ascontiguousarray(x.T if columns else x, dtype=np.float32)
        with blas_threads(1):
            for layer in self.layers:
                if layer.output_major != columns:
                    h, columns = np.ascontiguousarray(h.T), layer.output_major
                h = self._output_major(h, layer) if columns else self._input_major(h, layer)
        return np.ascontiguousarray(h.T) if columns else h

    def _spans(self, width: int, blocks_per_worker: int = BLOCKS_PER_WORKER) -> list[tuple[int, int]]:
        # Several blocks per worker, handed out dynamically, so a core slowed by another process does fewer
        # of them (the total BLAS time hardly depends on the block count: measured 2-16 blocks of fc1_1,
        # batch 8 and 64, within noise); blocks are multiples of 16 floats (one AVX-512 vector).
        step = max(MIN_BLOCK, -(-width // (self.pool.num_workers * blocks_per_worker * 16)) * 16)
        return [(lo, min(lo + step, width)) for lo in range(0, width, step)]

    def _output_major(self, xt: np.ndarray, layer: DenseLayer) -> np.ndarray:
        """``xt [in, N]`` → ``[out, N]``: each worker multiplies contiguous slabs of ``Wᵀ`` by all columns."""
        kernel = layer.weight.T  # [out, in], C-contiguous
        out = np.empty((kernel.shape[0], xt.shape[1]), dtype=np.float32)
        vector = xt.shape[1] == 1  # a matrix-vector product: the same bytes streamed, no GEMM set-up

        def work(_worker: int, span: tuple[int, int]) -> None:
            lo, hi = span
            if vector:
                np.matmul(kernel[lo:hi], xt[:, 0], out=out[lo:hi, 0])
            else:
                np.matmul(kernel[lo:hi], xt, out=out[lo:hi])

        # One vector: one slab per worker (two halves of fc1_1 stream at 50 GB/s, eight blocks at 47).
        blocks = 1 if vector else BLOCKS_PER_WORKER
        self.pool.run(work, self._spans(kernel.shape[0], blocks_per_worker=blocks))
        np.add(out, layer.bias[:, None], out=out)
        if layer.relu:
            np.maximum(out, 0.0, out=out)
        return out

    def _input_major(self, x: np.ndarray, layer: DenseLayer) -> np.ndarray:
        """``x [N, in]`` → ``[N, out]`` by column blocks (GEMM) or input-row slabs (a few rows: GEMVs)."""
        gemv = x.shape[0] <= GEMV_MAX_ROWS
        out = (self._gemv_layer if gemv else self._gemm_layer)(x, layer.weight)
        np.add(out, layer.bias, out=out)
        if layer.relu:
            np.maximum(out, 0.0, out=out)
        return out

    def _gemm_layer(self, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], weight.shape[1]), dtype=np.float32)

        def work(_worker: int, span: tuple[int, int]) -> None:
            lo, hi = span
            np.matmul(x, weight[:, lo:hi], out=out[:, lo:hi])  # [N, hi - lo]

        self.pool.run(work, self._spans(weight.shape[1]))
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
