"""Turn the Embedder's inputs into log-mel pieces, decoding ahead of the model on a worker thread.

An encoded input (a path, bytes, a file object) is decoded and framed block by block
(:class:`~audioembed.audio.StreamingFrontEnd`), so a three-hour recording never sits in memory whole: it
arrives as blocks of examples, then a summary. An array is already in memory and goes through the
one-shot front-end. Each input yields its log-mel blocks ``[k, 96, 64]`` and finally an
:class:`~audioembed.audio.Examples` whose ``log_mel`` is empty but whose timing fields describe the
whole input — or, if it cannot be read, the error, in its place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioembed import audio
from audioembed.audio.constants import EXAMPLE_WINDOW_FRAMES, EXAMPLE_WINDOW_SECONDS, NUM_MEL_BANDS
from audioembed.audio.decode import open_audio, read_blocks
from audioembed.errors import AudioEmbedError, InvalidOptionError
from audioembed.nn.threads import blas_threads
from audioembed.options import EmbedOptions

# Audio decoded per step for encoded inputs: memory is bounded by this, not by the file's length
# (10 s at 48 kHz stereo float64 is 7.7 MB; its 10 examples of log-mel are 0.5 MB).
BLOCK_SECONDS = 10.0
_EMPTY_LOG_MEL = np.zeros((0, EXAMPLE_WINDOW_FRAMES, NUM_MEL_BANDS))
Piece = np.ndarray | audio.Examples | AudioEmbedError


@dataclass
class InputState:
    """What the Embedder remembers about one input until its rows come back from the model."""

    index: int
    source: Any
    summary: audio.Examples | None = None


def with_rate(source: Any, sample_rate: int) -> tuple[Any, int]:
    """An array and its rate as the ``(array, rate)`` input form; anything else with a rate is refused."""
    if isinstance(source, tuple):
        raise _tuple_error(source, sample_rate)
    return (source, sample_rate)


def _tuple_error(source: tuple, sample_rate: int | None) -> InvalidOptionError:
    return InvalidOptionError(
        f"a tuple input must be (samples, sample_rate) with no separate sample_rate, got a "
        f"{len(source)}-tuple and sample_rate={sample_rate!r}"
    )


def is_encoded(source: Any) -> bool:
    """Whether ``source`` is encoded audio (path, bytes, file object) rather than samples."""
    return not isinstance(source, (np.ndarray, tuple, list))


def input_pieces(source: Any, options: EmbedOptions) -> Iterator[np.ndarray | audio.Examples]:
    """Yield an input's log-mel blocks, then its summary (see the module docstring).

    Raises
    ------
    AudioEmbedError
        The input cannot be decoded or is invalid (after the blocks read so far).
    """
    # One BLAS thread: the front-end's matrix products are small, so OpenBLAS's extra threads only spin
    # and steal the core the model's workers need (100 mixed clips: front-end busy 6.2 s -> 2.8 s). The
    # count is pinned, not restored: see audioembed.blas.
    with blas_threads(1):
        if not is_encoded(source):
            examples = extract(source, None, options)
            yield examples.log_mel
            yield dataclasses.replace(examples, log_mel=_EMPTY_LOG_MEL)
            return
        yield from _stream(source, options)


def extract(source: Any, sample_rate: int | None, options: EmbedOptions) -> audio.Examples:
    """The whole input's examples at once (the one-shot front-end)."""
    if isinstance(source, tuple):
        if len(source) != 2 or sample_rate is not None:
            raise _tuple_error(source, sample_rate)
        source, sample_rate = source
    with blas_threads(1):  # see input_pieces
        return audio.extract_examples(
            source,
            sample_rate=sample_rate,
            hop_seconds=options.hop_seconds,
            short_clip=options.short_clip,
            resampler=options.resampler,
        )


def _stream(source: Any, options: EmbedOptions) -> Iterator[np.ndarray | audio.Examples]:
    name = repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else f"<{type(source).__name__}>"
    starts: list[np.ndarray] = []
    with open_audio(source) as handle:
        front = audio.StreamingFrontEnd(
            handle.samplerate,
            num_channels=handle.channels,
            hop_seconds=options.hop_seconds,
            resampler=options.resampler,
        )
        block_frames = max(1, round(BLOCK_SECONDS * handle.samplerate))
        for block in read_blocks(handle, name, block_frames=block_frames):
            log_mel, block_starts = front.push(block)
            if log_mel.shape[0]:
                starts.append(block_starts)
                yield log_mel
        log_mel, block_starts = front.finish(short_clip=options.short_clip)
        if log_mel.shape[0]:
            starts.append(block_starts)
            yield log_mel
    yield audio.Examples(
        log_mel=_EMPTY_LOG_MEL,
        timestamps=np.concatenate(starts) if starts else np.zeros(0),
        window_seconds=EXAMPLE_WINDOW_SECONDS,
        hop_seconds=front.hop_seconds,
        duration_seconds=front.duration_seconds,
        sample_rate=front.sample_rate,
        num_channels=front.num_channels,
        short_clip=front.short_clip,
    )


class PieceProducer:
    """Decode inputs on a worker thread into a bounded queue; iterate ``(index, source, piece)`` in order.

    A piece is a log-mel block, the input's summary, or the :class:`AudioEmbedError` that stopped it. The
    queue's bound is what keeps decoding ahead of the model from using unbounded memory. Leaving the
    ``with`` block early stops the worker and closes the file it was reading.
    """

    _END = object()

    def __init__(self, sources: Iterable[Any], options: EmbedOptions, *, queue_size: int) -> None:
        self._sources = sources
        self._options = options
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name="audioembed-decode", daemon=True)

    def __enter__(self) -> PieceProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # unblock a worker waiting on a full queue
                self._queue.get_nowait()
        self._thread.join()

    def __iter__(self) -> Iterator[tuple[int, Any, Piece]]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):  # a bug in the worker: surface it here
                raise item
            yield item

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=0.1)
                return True
        return False

    def _work(self) -> None:
        try:
            for index, source in enumerate(self._sources):
                try:
                    with contextlib.closing(input_pieces(source, self._options)) as pieces:  # closes the file
                        for piece in pieces:
                            if not self._put((index, source, piece)):
                                return
                except AudioEmbedError as error:
                    if not self._put((index, source, error)):
                        return
            self._put(self._END)
        except BaseException as error:
            self._put(error)
