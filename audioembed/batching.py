"""Fill model batches with examples from many inputs, and hand each input back its own rows, in order.

Many short clips would waste the model if each ran alone (a 1-example batch is ~4× slower per example than
64). :class:`ExampleBatcher` queues the examples of consecutive inputs, runs the model only on full
batches, scatters the output rows back to the inputs they came from, and releases inputs in the order
they were added as soon as all their rows are computed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from audioembed.vggish.params import EMBEDDING_SIZE

Tag = TypeVar("Tag")
ModelOutput = tuple[np.ndarray, np.ndarray | None]
RunModel = Callable[[np.ndarray], ModelOutput]


@dataclass
class _Pending(Generic[Tag]):
    """One input waiting for its rows: the rows computed so far, and how many are still queued."""

    tag: Tag
    num_rows: int
    raw_parts: list[np.ndarray] = field(default_factory=list)
    quantized_parts: list[np.ndarray] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return sum(part.shape[0] for part in self.raw_parts) == self.num_rows


@dataclass(frozen=True)
class Completed(Generic[Tag]):
    """An input whose rows are all computed.

    Attributes
    ----------
    tag : object
        What the caller attached to the input in :meth:`ExampleBatcher.add`.
    raw : np.ndarray [shape=(N, 128), float32]
    quantized : np.ndarray [shape=(N, 128), uint8] or None
    """

    tag: Tag
    raw: np.ndarray
    quantized: np.ndarray | None


class ExampleBatcher(Generic[Tag]):
    """Queue inputs' examples, run ``run_model`` on full batches, release finished inputs in order.

    Parameters
    ----------
    run_model : callable
        ``run_model(log_mel [B, 96, 64] float32) -> (raw [B, 128] float32, quantized [B, 128] uint8 | None)``.
    batch_size : int
        Rows per model call; only :meth:`flush` runs a smaller batch.
    with_quantized : bool
        Whether ``run_model`` returns quantized rows, so an input with no rows still gets a [0, 128] matrix.
    """

    def __init__(self, run_model: RunModel, *, batch_size: int, with_quantized: bool) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._run_model = run_model
        self._batch_size = batch_size
        self._with_quantized = with_quantized
        self._inputs: deque[_Pending[Tag]] = deque()
        # Rows not yet computed, each segment with the input it belongs to, in input order.
        self._segments: deque[tuple[_Pending[Tag], np.ndarray]] = deque()
        self._queued_rows = 0

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a model call."""
        return self._queued_rows

    def add(self, tag: Tag, log_mel: np.ndarray) -> Iterator[Completed[Tag]]:
        """Queue one input's examples; run every full batch now possible; yield inputs that completed.

        Parameters
        ----------
        tag : object
            Returned with the input's rows in :class:`Completed`.
        log_mel : np.ndarray [shape=(N, 96, 64)]
            The input's examples; N may be 0.
        """
        pending = _Pending(tag=tag, num_rows=int(log_mel.shape[0]))
        self._inputs.append(pending)
        if pending.num_rows:
            self._segments.append((pending, log_mel))
            self._queued_rows += pending.num_rows
        while self._queued_rows >= self._batch_size:
            self._run_one_batch(self._batch_size)
        yield from self._release_finished()

    def flush(self) -> Iterator[Completed[Tag]]:
        """Run whatever is queued (batches of at most ``batch_size``) and yield every remaining input."""
        while self._queued_rows:
            self._run_one_batch(min(self._batch_size, self._queued_rows))
        yield from self._release_finished()

    def _run_one_batch(self, size: int) -> None:
        owners: list[tuple[_Pending[Tag], int]] = []
        pieces: list[np.ndarray] = []
        needed = size
        while needed:
            pending, rows = self._segments[0]
            take = min(needed, rows.shape[0])
            pieces.append(rows[:take])
            owners.append((pending, take))
            if take == rows.shape[0]:
                self._segments.popleft()
            else:
                self._segments[0] = (pending, rows[take:])
            needed -= take
        batch = np.concatenate(pieces, axis=0).astype(np.float32, copy=False)  # [size, 96, 64]
        self._queued_rows -= size
        raw, quantized = self._run_model(batch)
        if (quantized is not None) != self._with_quantized:
            raise RuntimeError(
                f"run_model returned quantized={quantized is not None}, expected {self._with_quantized}"
            )
        start = 0
        for pending, count in owners:
            pending.raw_parts.append(raw[start : start + count])
            if quantized is not None:  # same for every batch: checked above
                pending.quantized_parts.append(quantized[start : start + count])
            start += count

    def _release_finished(self) -> Iterator[Completed[Tag]]:
        while self._inputs and self._inputs[0].done:
            pending = self._inputs.popleft()
            yield Completed(
                tag=pending.tag,
                raw=_stack(pending.raw_parts, np.float32),
                quantized=_stack(pending.quantized_parts, np.uint8) if self._with_quantized else None,
            )


def _stack(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    """Concatenate row blocks; an input with no rows gets a [0, 128] array, never a different rank."""
    if not parts:
        return np.zeros((0, EMBEDDING_SIZE), dtype=dtype)
    return parts[0].copy() if len(parts) == 1 else np.concatenate(parts, axis=0)
