"""The client's side of requests: audio items, PCM chunks and options as protobuf messages.

Everything here validates the caller's values (an :class:`~audioembed.errors.InvalidOptionError` naming the
bad one) before anything is sent.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from audioembed.errors import InvalidOptionError
from audioembed_server.convert import OUTPUT_ENUMS, PCM_ENUMS, SHORT_CLIP_ENUMS
from audioembed_server.proto import embedding_service_pb2 as pb

AudioItem = Any  # path | bytes | np.ndarray (with a sample rate) | (np.ndarray, sample_rate)


def audio_message(item: AudioItem, sample_rate: int | None) -> pb.Audio:
    """Encode one clip: a path or bytes travel as the file's bytes; an array as raw PCM.

    Parameters
    ----------
    item : path, bytes, np.ndarray [shape=(n,) or (n, channels)], or (np.ndarray, int)
        The clip; a tuple carries its own sample rate.
    sample_rate : int or None
        Rate of a bare array (ignored for files and bytes).
    """
    if isinstance(item, tuple):
        if len(item) != 2:
            raise InvalidOptionError(
                f"an audio tuple must be (samples, sample_rate), got {len(item)} elements"
            )
        item, sample_rate = item
    if isinstance(item, str | os.PathLike):
        return pb.Audio(encoded=Path(item).read_bytes())
    if isinstance(item, bytes | bytearray | memoryview):
        return pb.Audio(encoded=bytes(item))
    if isinstance(item, np.ndarray):
        if sample_rate is None:
            raise InvalidOptionError("an array of samples needs sample_rate")
        data, encoding = pcm_bytes(item)
        channels = 1 if item.ndim == 1 else int(item.shape[1])
        fmt = pb.PcmFormat(encoding=PCM_ENUMS[encoding], sample_rate=int(sample_rate), channels=channels)
        return pb.Audio(pcm=pb.RawPcm(data=data, format=fmt))
    raise InvalidOptionError(
        f"cannot send audio of type {type(item).__name__}: pass a path, bytes, or an array"
    )


def pcm_bytes(samples: np.ndarray) -> tuple[bytes, str]:
    """``(bytes, encoding)`` of samples ``[n]`` or ``[n, channels]``.

    int16 arrays travel as s16le; float arrays as f32le (float64 is rounded to float32).
    """
    if samples.ndim not in (1, 2):
        raise InvalidOptionError(f"samples must be [n] or [n, channels], got shape {samples.shape}")
    if samples.dtype == np.int16:
        return np.ascontiguousarray(samples, dtype="<i2").tobytes(), "s16le"
    if np.issubdtype(samples.dtype, np.floating):
        return np.ascontiguousarray(samples, dtype="<f4").tobytes(), "f32le"
    raise InvalidOptionError(f"samples must be int16 or floating point, got dtype {samples.dtype}")


def stream_pcm(chunk: bytes | np.ndarray, encoding: str) -> bytes:
    """One stream chunk's bytes; an array must match the stream's ``encoding``."""
    if isinstance(chunk, np.ndarray):
        data, kind = pcm_bytes(chunk)
        if kind != encoding:
            raise InvalidOptionError(f"a {chunk.dtype} chunk cannot be sent as {encoding}")
        return data
    return bytes(chunk)


def embed_options(output: str, hop_seconds: float | None, short_clip: str | None) -> pb.EmbedOptions:
    """The request's ``EmbedOptions``; unset values are left to the server's defaults."""
    if output not in OUTPUT_ENUMS:
        raise InvalidOptionError(f"output must be one of {sorted(OUTPUT_ENUMS)}, got {output!r}")
    if short_clip not in (None, "pad", "drop"):
        raise InvalidOptionError(f"short_clip must be 'pad', 'drop' or None, got {short_clip!r}")
    options = pb.EmbedOptions(output=OUTPUT_ENUMS[output])
    if hop_seconds is not None:
        options.hop_seconds = float(hop_seconds)
    if short_clip is not None:
        options.short_clip = SHORT_CLIP_ENUMS[short_clip]
    return options


def stream_requests(
    chunks: Iterable[bytes | np.ndarray],
    options: pb.EmbedOptions,
    *,
    sample_rate: int | None,
    channels: int = 1,
    encoding: str | None = None,
    classifier: str = "",
    top_k: int = 0,
) -> Iterator[pb.EmbedStreamRequest]:
    """The messages of one ``EmbedStream`` call: the config (format, options, classifier), then the chunks."""
    chunk_iter = iter(chunks)
    if sample_rate is None:
        config = pb.StreamConfig(encoded=True, options=options)
        payloads: Iterator[bytes] = (bytes(c) for c in chunk_iter)
    else:
        first = next(chunk_iter, None)
        if encoding is None:
            if not isinstance(first, np.ndarray):
                raise InvalidOptionError("PCM byte chunks need encoding='s16le' or 'f32le'")
            encoding = pcm_bytes(first)[1]
        if encoding not in PCM_ENUMS:
            raise InvalidOptionError(f"encoding must be 's16le' or 'f32le', got {encoding!r}")
        fmt = pb.PcmFormat(encoding=PCM_ENUMS[encoding], sample_rate=int(sample_rate), channels=int(channels))
        config = pb.StreamConfig(pcm=fmt, options=options)
        rest = chunk_iter if first is None else itertools.chain([first], chunk_iter)
        payloads = (stream_pcm(c, encoding) for c in rest)
    config.classifier = classifier
    config.top_k = top_k

    def requests() -> Iterator[pb.EmbedStreamRequest]:
        yield pb.EmbedStreamRequest(config=config)
        for payload in payloads:
            yield pb.EmbedStreamRequest(chunk=payload)

    return requests()
