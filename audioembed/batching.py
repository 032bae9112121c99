"""Fill model batches with examples from many inputs, and hand each input back its own rows, in order.

Many short clips would waste the model if each ran alone (a 1-example batch is ~4× slower per example than
64). :class:`ExampleBatcher` queues the examples of consecutive inputs, runs the model only on full
batches, scatters the output rows back to the inputs they came from, and releases inputs in the order
they were started as soon as they are finished and all their rows are computed. An input's rows may
arrive in several blocks (a long file decoded piece by piece), so memory stays bounded by the batch.

One input must not fail the others: when the model refuses a batch holding rows of several inputs (an
:class:`~audioembed.errors.InvalidInputError`, e.g. non-finite values), each input's rows are re-run alone
and only the culprit is marked failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

from audioembed.errors import AudioEmbedError, InvalidInputError
from audioembed.vggish.params import EMBEDDING_SIZE

Tag = TypeVar("Tag")
ModelOutput = tuple[np.ndarray, np.ndarray | None]
RunModel = Callable[[np.ndarray], ModelOutput]


@dataclass(eq=False)
class PendingInput(Generic[Tag]):
    """One input in the batcher: rows queued and computed so far, whether more may come, its failure."""

    tag: Tag
    queued_rows: int = 0
    finished: bool = False
    error: AudioEmbedError | None = None  # the front-end's or the model's refusal of this input
    raw_parts: list[np.ndarray] = field(default_factory=list)
    quantized_parts: list[np.ndarray] = field(default_factory=list)

    @property
    def computed_rows(self) -> int:
        return sum(part.shape[0] for part in self.raw_parts)

    @property
    def done(self) -> bool:
        return self.finished and (self.error is not None or self.computed_rows == self.queued_rows)


@dataclass(frozen=True)
class Completed(Generic[Tag]):
    """An input whose rows are all computed (or that failed in the model).

    Attributes
    ----------
    tag : object
        What the caller attached to the input in :meth:`ExampleBatcher.start`.
    raw : np.ndarray [shape=(N, 128), float32]
    quantized : np.ndarray [shape=(N, 128), uint8] or None
    error : AudioEmbedError or None
        Set when the input could not be read or the model refused its rows; ``raw`` and ``quantized``
        are then empty.
    """

    tag: Tag
    raw: np.ndarray
    quantized: np.ndarray | None
    error: AudioEmbedError | None = None


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
        self._inputs: deque[PendingInput[Tag]] = deque()
        # Rows not yet computed, each segment with the input it belongs to, in arrival order.
        self._segments: deque[tuple[PendingInput[Tag], np.ndarray]] = deque()
        self._queued_rows = 0

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a model call."""
        return self._queued_rows

    def start(self, tag: Tag) -> PendingInput[Tag]:
        """Register the next input; results are released in the order inputs are started."""
        pending = PendingInput(tag=tag)
        self._inputs.append(pending)
        return pending

    def extend(self, pending: PendingInput[Tag], log_mel: np.ndarray) -> Iterator[Completed[Tag]]:
        """Queue rows [k, 96, 64] of ``pending``; run every full batch; yield inputs that completed."""
        if pending.finished:
            raise ValueError("rows added to an input that was already finished")
        if log_mel.shape[0]:
            pending.queued_rows += int(log_mel.shape[0])
            self._segments.append((pending, log_mel))
            self._queued_rows += int(log_mel.shape[0])
        while self._queued_rows >= self._batch_size:
            self._run_one_batch(self._batch_size)
        yield from self._release_finished()

    def finish(self, pending: PendingInput[Tag]) -> Iterator[Completed[Tag]]:
        """Declare that ``pending`` has no more rows; yield inputs that became complete."""
        pending.finished = True
        yield from self._release_finished()

    def add(self, tag: Tag, log_mel: np.ndarray) -> Iterator[Completed[Tag]]:
        """Start, extend and finish one input in a single call (all its rows at once)."""
        pending = self.start(tag)
        yield from self.extend(pending, log_mel)
        yield from self.finish(pending)

    def flush(self) -> Iterator[Completed[Tag]]:
        """Run whatever is queued (batches of at most ``batch_size``) and yield every finished input."""
        while self._queued_rows:
            self._run_one_batch(min(self._batch_size, self._queued_rows))
        yield from self._release_finished()

    def _run_one_batch(self, size: int) -> None:
        owners: list[tuple[PendingInput[Tag], np.ndarray]] = []
        needed = size
        while needed:
            pending, rows = self._segments[0]
            take = min(needed, rows.shape[0])
            owners.append((pending, rows[:take]))
            if take == rows.shape[0]:
                self._segments.popleft()
            else:
                self._segments[0] = (pending, rows[take:])
            needed -= take
        self._queued_rows -= size
        live = [(pending, rows) for pending, rows in owners if pending.error is None]
        if not live:
            return
        try:
            raw, quantized = self._run([rows for _, rows in live])
        except InvalidInputError as error:
            culprits = {id(pending): pending for pending, _ in live}
            if len(culprits) == 1:  # one input's rows only: it is the culprit
                next(iter(culprits.values())).error = error
                return
            for pending, rows in live:  # several inputs: re-run each one's rows alone to find the culprit
                self._run_alone(pending, rows)
            return
        start = 0
        for pending, rows in live:
            self._store(pending, raw[start : start + len(rows)], quantized, start)
            start += len(rows)

    def _run(self, pieces: list[np.ndarray]) -> ModelOutput:
        batch = np.concatenate(pieces, axis=0).astype(np.float32, copy=False)  # [B, 96, 64]
        raw, quantized = self._run_model(batch)
        if (quantized is not None) != self._with_quantized:
            raise RuntimeError(
                f"run_model returned quantized={quantized is not None}, expected {self._with_quantized}"
            )
        return raw, quantized

    def _run_alone(self, pending: PendingInput[Tag], rows: np.ndarray) -> None:
        if pending.error is not None:
            return
        try:
            raw, quantized = self._run([rows])
        except InvalidInputError as error:
            pending.error = error
            return
        self._store(pending, raw, quantized, 0)

    def _store(
        self, pending: PendingInput[Tag], raw: np.ndarray, quantized: np.ndarray | None, start: int
    ) -> None:
        pending.raw_parts.append(raw)
        if quantized is not None:
            pending.quantized_parts.append(quantized[start : start + raw.shape[0]])

    def _release_finished(self) -> Iterator[Completed[Tag]]:
        while self._inputs and self._inputs[0].done:
            pending = self._inputs.popleft()
            if pending.error is not None:
                empty = np.zeros((0, EMBEDDING_SIZE), np.float32)
                quantized = np.zeros((0, EMBEDDING_SIZE), np.uint8) if self._with_quantized else None
                yield Completed(tag=pending.tag, raw=empty, quantized=quantized, error=pending.error)
                continue
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
