"""``EmbedStream``: one recording sent in chunks, answered with results as its examples complete.

The first message carries the format and options; the rest carry bytes. Raw PCM is decoded chunk by chunk;
an encoded file is spooled (memory, then disk past :data:`SPOOL_MEMORY_BYTES`) because containers need
seeking to parse, then decoded in blocks. Either way memory is bounded by the block, not the recording.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from typing import IO

import grpc
import numpy as np

from audioembed import audio
from audioembed.errors import AudioDecodeError, InvalidOptionError
from audioembed_server.classify_call import StreamScorer, stream_scorer, with_trained_defaults
from audioembed_server.config import ServerConfig
from audioembed_server.convert import RequestOptions, pcm_format, result_to_proto
from audioembed_server.engine import Engine
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.status import CallStats, PayloadTooLargeError

SPOOL_MEMORY_BYTES = 8 * 1024 * 1024  # an encoded stream is kept in memory up to this, then on disk
STREAM_DECODE_BLOCK_SECONDS = 10.0  # an encoded stream is decoded in blocks of this much audio
STREAM_NAME = "<stream>"  # how error messages name the recording


def embed_stream(
    engine: Engine,
    request_iterator: Iterator[pb.EmbedStreamRequest],
    context: grpc.ServicerContext,
    stats: CallStats,
    config: ServerConfig,
) -> Iterator[pb.EmbedStreamResponse]:
    """Answer one ``EmbedStream`` call: a response per group of completed examples, the last ``final``."""
    first = next(request_iterator, None)
    if first is None or first.WhichOneof("payload") != "config":
        raise InvalidOptionError("the first EmbedStream message must carry `config` (format and options)")
    stream_config = first.config
    options = RequestOptions.from_proto(stream_config.options, pca_loaded=engine.pca_loaded)
    scorer = stream_scorer(engine, stream_config)  # None unless the config names a classifier
    if scorer is not None:
        options = with_trained_defaults(options, scorer.classifier)
        engine = engine.for_classifier(scorer.name)  # a fine-tuned classifier's own VGGish
    defaults = engine.embedder.options
    hop = options.hop_seconds if options.hop_seconds is not None else defaults.hop_seconds
    short_clip = options.short_clip or defaults.short_clip
    kind = stream_config.WhichOneof("format")
    if kind is None:
        raise InvalidOptionError(
            "stream config must set `pcm` (raw PCM chunks) or `encoded` (a file's bytes)"
        )
    with contextlib.ExitStack() as stack:
        if kind == "pcm":
            encoding, rate, channels = pcm_format(stream_config.pcm)
            front = _front_end(engine, rate, channels, hop)
            blocks = _pcm_blocks(request_iterator, encoding, rate, channels)
        else:
            spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES))
            _spool(request_iterator, spool, config)
            handle = stack.enter_context(audio.open_audio(spool))
            front = _front_end(engine, handle.samplerate, handle.channels, hop)
            block_frames = max(1, round(STREAM_DECODE_BLOCK_SECONDS * handle.samplerate))
            blocks = audio.read_blocks(handle, STREAM_NAME, block_frames=block_frames)
        for block in blocks:
            log_mel, starts = front.push(block)
            if log_mel.shape[0]:
                yield _response(engine, front, log_mel, starts, options, context, stats, scorer=scorer)
        if front.samples_pushed == 0:
            raise AudioDecodeError("the stream carried no audio samples")
        log_mel, starts = front.finish(short_clip=short_clip)
        yield _response(engine, front, log_mel, starts, options, context, stats, final=True, scorer=scorer)


def _pcm_blocks(
    request_iterator: Iterator[pb.EmbedStreamRequest], encoding: str, rate: int, channels: int
) -> Iterator[np.ndarray]:
    """Decode PCM chunks as they arrive; a frame split across two chunks waits for its second half."""
    frame_bytes = (2 if encoding == "s16le" else 4) * channels
    carry = b""
    for message in request_iterator:
        data = carry + _chunk(message)
        usable = len(data) - len(data) % frame_bytes
        carry = data[usable:]
        if usable:
            yield audio.decode_pcm(data[:usable], encoding=encoding, sample_rate=rate, channels=channels)
    if carry:
        raise AudioDecodeError(
            f"the stream ended inside a frame: {len(carry)} bytes left over; frames have {frame_bytes}"
        )


def _spool(request_iterator: Iterator[pb.EmbedStreamRequest], spool: IO[bytes], config: ServerConfig) -> None:
    """Write an encoded stream's chunks to ``spool`` (bounded by ``max_stream_mb``) and rewind it."""
    limit = config.max_stream_bytes
    received = 0
    for message in request_iterator:
        chunk = _chunk(message)
        received += len(chunk)
        if received > limit:
            raise PayloadTooLargeError(
                f"stream exceeded the server's limit of {limit} bytes (max_stream_mb="
                f"{config.max_stream_mb:g}); split the recording"
            )
        spool.write(chunk)
    if received == 0:
        raise AudioDecodeError("the stream carried no audio data (0 bytes)")
    spool.seek(0)


def _front_end(engine: Engine, rate: int, channels: int, hop: float) -> audio.StreamingFrontEnd:
    resampler = engine.embedder.options.resampler
    return audio.StreamingFrontEnd(rate, num_channels=channels, hop_seconds=hop, resampler=resampler)


def _chunk(message: pb.EmbedStreamRequest) -> bytes:
    if message.WhichOneof("payload") != "chunk":
        raise InvalidOptionError(
            "only the first EmbedStream message may carry `config`; the rest carry `chunk`"
        )
    return message.chunk


def _response(
    engine: Engine,
    front: audio.StreamingFrontEnd,
    log_mel: np.ndarray,
    starts: np.ndarray,
    options: RequestOptions,
    context: grpc.ServicerContext,
    stats: CallStats,
    *,
    final: bool = False,
    scorer: StreamScorer | None = None,
) -> pb.EmbedStreamResponse:
    """Run the model on examples ``[k, 96, 64]`` starting at ``starts [k]``; wrap them as a stream message."""
    future = engine.submit(log_mel, context)
    raw, quantized = engine.wait(future, context, stats)
    stats.examples += raw.shape[0]
    stats.audio_seconds = front.duration_seconds
    examples = audio.Examples(
        log_mel=log_mel,
        timestamps=starts,
        window_seconds=audio.EXAMPLE_WINDOW_SECONDS,
        hop_seconds=front.hop_seconds,
        duration_seconds=front.duration_seconds,
        sample_rate=front.sample_rate,
        num_channels=front.num_channels,
        short_clip=front.short_clip if final else "none",
    )
    result = engine.embedder.make_result(examples, raw, quantized)
    response = pb.EmbedStreamResponse(result=result_to_proto(result, output=options.output), final=final)
    if scorer is not None:  # the classifier's scores of these windows, and of the whole stream so far
        response.classification.CopyFrom(scorer.score(result))
    return response
