"""The client's side of answers: a server's messages as the library's ``EmbeddingResult``, checked first.

A server of another version, a proxy that truncates, or a bug can send an answer that does not hold
together. Every check here raises :class:`~audioembed.errors.MalformedResponseError` naming the field
(``items[2].result.raw``) and its value, instead of a bare ``ValueError`` or ``KeyError`` from deep inside
NumPy; a well-formed answer is converted exactly as before.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from audioembed.errors import InvalidInputError, MalformedResponseError
from audioembed_server.client_status import ServiceError, status_code
from audioembed_server.convert import EMBEDDING_DTYPE, QUANTIZED_DTYPE, SHORT_CLIP_NAMES
from audioembed_server.proto import embedding_service_pb2 as pb


def matrices_from_proto(
    message: pb.EmbeddingResult, where: str = "result"
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Unpack ``(embeddings float32 [N, D] or None, quantized uint8 [N, D] or None)``; None = not sent.

    Raises
    ------
    MalformedResponseError
        The byte counts do not match ``num_examples * dimension`` (a corrupted or foreign message).
    """
    n, d = int(message.num_examples), int(message.dimension)
    embeddings = quantized = None
    if message.has_raw:
        raw = np.frombuffer(message.raw, dtype=np.uint8)  # bytes: a count not a multiple of 4 is bad too
        if raw.size != n * d * EMBEDDING_DTYPE.itemsize:
            raise MalformedResponseError(
                f"{where}.raw holds {raw.size} bytes, expected {n} x {d} float32 "
                f"({n * d * EMBEDDING_DTYPE.itemsize} bytes)"
            )
        embeddings = raw.view(EMBEDDING_DTYPE).astype(np.float32).reshape(n, d)  # [N, D], a writable copy
    elif message.raw:
        raise MalformedResponseError(f"{where}.raw holds {len(message.raw)} bytes but has_raw is false")
    if message.has_quantized:
        q = np.frombuffer(message.quantized, dtype=QUANTIZED_DTYPE)
        if q.size != n * d:
            raise MalformedResponseError(f"{where}.quantized holds {q.size} bytes, expected {n} x {d}")
        quantized = q.reshape(n, d).copy()  # [N, D], writable like the library's
    elif message.quantized:
        raise MalformedResponseError(
            f"{where}.quantized holds {len(message.quantized)} bytes but has_quantized is false"
        )
    return embeddings, quantized


def to_result(message: pb.EmbeddingResult, where: str = "result") -> Any:
    """A wire result as the library's ``EmbeddingResult``.

    Parameters
    ----------
    message : pb.EmbeddingResult
    where : str
        How error messages name this result (``"items[3].result"``).

    Raises
    ------
    MalformedResponseError
        Counts, lengths, times or the short-clip policy do not hold together.
    """
    from audioembed import EmbeddingResult

    if message.short_clip not in SHORT_CLIP_NAMES:
        raise MalformedResponseError(
            f"{where}.short_clip is {message.short_clip!r}, not one of {sorted(SHORT_CLIP_NAMES)}"
        )
    if len(message.timestamps) != message.num_examples:
        raise MalformedResponseError(
            f"{where} has {len(message.timestamps)} timestamps for num_examples={message.num_examples}"
        )
    for name in ("window_seconds", "hop_seconds"):
        value = getattr(message, name)
        if not (math.isfinite(value) and value > 0):
            raise MalformedResponseError(f"{where}.{name} must be a positive number, got {value!r}")
    if not (math.isfinite(message.duration_seconds) and message.duration_seconds >= 0):
        raise MalformedResponseError(
            f"{where}.duration_seconds must be >= 0, got {message.duration_seconds!r}"
        )
    timestamps = np.asarray(message.timestamps, dtype=np.float64)  # [N]
    if not np.all(np.isfinite(timestamps)):
        raise MalformedResponseError(f"{where}.timestamps holds non-finite values: {timestamps.tolist()!r}")
    embeddings, quantized = matrices_from_proto(message, where)
    try:
        return EmbeddingResult(
            embeddings=embeddings,
            quantized=quantized,
            timestamps=timestamps,
            window_seconds=message.window_seconds,
            hop_seconds=message.hop_seconds,
            duration_seconds=message.duration_seconds,
            sample_rate=message.sample_rate,
            short_clip=SHORT_CLIP_NAMES[message.short_clip],
        )
    except InvalidInputError as error:  # e.g. dimension != 128: the result's own shape check
        raise MalformedResponseError(f"{where}: {error}") from error


def batch_results(response: pb.EmbedBatchResponse, num_requested: int) -> list[Any]:
    """An ``EmbedBatch`` answer as a list, in order, of ``EmbeddingResult`` or :class:`ServiceError`.

    Raises
    ------
    MalformedResponseError
        The answer has a different number of items than were sent, an item with neither a result nor an
        error, an error whose code is OK, or a malformed result.
    """
    if len(response.items) != num_requested:
        raise MalformedResponseError(
            f"EmbedBatch answered {len(response.items)} items for {num_requested} clips sent"
        )
    results: list[Any] = []
    for index, item in enumerate(response.items):
        outcome = item.WhichOneof("outcome")
        if outcome == "result":
            results.append(to_result(item.result, f"items[{index}].result"))
        elif outcome == "error" and item.error.code != 0:
            results.append(ServiceError(status_code(item.error.code), item.error.message))
        elif outcome == "error":
            raise MalformedResponseError(f"items[{index}].error has code 0 (OK): {item.error.message!r}")
        else:
            raise MalformedResponseError(f"items[{index}] carries neither a result nor an error")
    return results


def concatenate_results(parts: Sequence[Any]) -> Any:
    """Join the results of one stream into one ``EmbeddingResult`` (the last part's totals).

    Raises
    ------
    MalformedResponseError
        No parts (a server always ends a stream with a summary), or parts that disagree on the outputs
        they carry, the window, the hop or the sample rate.
    """
    from audioembed import EmbeddingResult

    if not parts:
        raise MalformedResponseError("the stream returned no results (a server always sends a last one)")
    last = parts[-1]
    for index, part in enumerate(parts):
        for name in ("window_seconds", "hop_seconds", "sample_rate"):
            if getattr(part, name) != getattr(last, name):
                raise MalformedResponseError(
                    f"stream part {index} has {name}={getattr(part, name)!r}, the last part "
                    f"{getattr(last, name)!r}"
                )

    def joined(name: str) -> np.ndarray | None:
        present = [getattr(p, name) is not None for p in parts]
        if any(present) and not all(present):
            raise MalformedResponseError(
                f"stream part {present.index(not present[0])} {'has' if not present[0] else 'lacks'} "
                f"{name}, part 0 {'has' if present[0] else 'lacks'} it"
            )
        return np.concatenate([getattr(p, name) for p in parts]) if present[0] else None  # [sum N_i, 128]

    return EmbeddingResult(
        embeddings=joined("embeddings"),
        quantized=joined("quantized"),
        timestamps=np.concatenate([p.timestamps for p in parts]),
        window_seconds=last.window_seconds,
        hop_seconds=last.hop_seconds,
        duration_seconds=last.duration_seconds,
        sample_rate=last.sample_rate,
        short_clip=last.short_clip,
    )
