"""The ``audioembed.v1.EmbeddingService`` servicer: thin handlers over an Embedder and the dynamic batcher.

Decoding and feature extraction (``Embedder.extract``) run on the gRPC handler threads; the model runs on
the batcher's single thread (``Embedder.run_model``), which gathers examples from concurrent requests into
one batch. Handlers raise; :func:`~audioembed_server.status.rpc` maps exceptions to status codes.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeoutError
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass
from typing import IO, Any

import grpc
import numpy as np

from audioembed import __version__, audio
from audioembed.audio.decode import open_audio, read_blocks
from audioembed.errors import AudioDecodeError, InvalidOptionError
from audioembed_server.batcher import (
    DynamicBatcher,
    QueueFullError,
    RequestCancelledError,
    RequestExpiredError,
)
from audioembed_server.config import ServerConfig
from audioembed_server.convert import RequestOptions, audio_source, pcm_format, result_to_proto
from audioembed_server.metrics import ServerMetrics
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from audioembed_server.status import (
    CallStats,
    DeadlineTooShortError,
    ModelNotReadyError,
    PayloadTooLargeError,
    rpc,
    status_for,
)
from audioembed_server.streams import IdleTimeoutReader, StreamSlots

SERVICE_NAME = pb.DESCRIPTOR.services_by_name[
    "EmbeddingService"
].full_name  # "audioembed.v1.EmbeddingService"
MIN_REMAINING_SECONDS = 0.005  # less time than this left on the caller's deadline: refuse before queuing
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024  # an encoded stream is kept in memory up to this, then on disk
STREAM_DECODE_BLOCK_SECONDS = 10.0  # an encoded stream is decoded in blocks of this much audio


@dataclass(frozen=True)
class Engine:
    """A loaded model: the Embedder and the batcher whose thread calls its ``run_model``."""

    embedder: Any  # audioembed.pipeline.Embedder (or anything with extract / run_model / make_result)
    batcher: DynamicBatcher
    pca_loaded: bool


class EmbeddingServicer(pb_grpc.EmbeddingServiceServicer):
    """Handlers of the embedding service; ``engine`` is None until the model has loaded."""

    def __init__(self, config: ServerConfig, metrics: ServerMetrics) -> None:
        self.config = config
        self.metrics = metrics
        self.engine: Engine | None = None
        self.load_error: BaseException | None = None
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self.streams = StreamSlots(config.max_concurrent_streams)  # type: ignore[arg-type]

    @property
    def in_flight(self) -> int:
        """Embedding RPCs being handled right now (graceful shutdown waits for them)."""
        with self._in_flight_lock:
            return self._in_flight

    def track(self, delta: int) -> None:
        """Count an RPC in (+1) or out (-1); called by :func:`~audioembed_server.status.rpc`."""
        with self._in_flight_lock:
            self._in_flight += delta

    # --- shared steps -----------------------------------------------------------------------------

    def _engine(self) -> Engine:
        engine = self.engine
        if engine is None:
            if self.load_error is not None:
                raise ModelNotReadyError(f"the model failed to load: {self.load_error}")
            raise ModelNotReadyError(
                "the model is still loading; retry shortly (health check says when ready)"
            )
        return engine

    @staticmethod
    def _deadline(context: grpc.ServicerContext) -> float | None:
        """The caller's deadline as ``time.monotonic()``; refuse when it has (nearly) passed already."""
        remaining = context.time_remaining()
        if remaining is None:
            return None
        if remaining < MIN_REMAINING_SECONDS:
            raise DeadlineTooShortError(f"deadline leaves {remaining * 1000:.1f} ms: too little to start")
        return time.monotonic() + remaining

    def _empty(self, engine: Engine) -> tuple[np.ndarray, np.ndarray | None]:
        width = self._dimension(engine)
        return np.zeros((0, width), np.float32), (
            np.zeros((0, width), np.uint8) if engine.pca_loaded else None
        )

    @staticmethod
    def _dimension(engine: Engine) -> int:
        return int(engine.embedder.model_info.embedding_size)

    def _submit(self, engine: Engine, log_mel: np.ndarray, context: grpc.ServicerContext) -> Any:
        """Queue examples for the model (after a last deadline check); None for no examples."""
        if log_mel.shape[0] == 0:
            return None
        deadline = self._deadline(context)
        # float32 is what the model computes in: converting here halves what the queue holds.
        rows = np.asarray(log_mel, dtype=np.float32)  # [n, 96, 64]
        return engine.batcher.submit(rows, deadline=deadline, is_active=context.is_active)

    def _wait(
        self, engine: Engine, future: Any, context: grpc.ServicerContext, stats: CallStats
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The model outputs ``(raw [n, 128], quantized [n, 128] | None)`` of a submitted request."""
        if future is None:
            return self._empty(engine)
        remaining = context.time_remaining()
        try:
            outcome = future.result(timeout=None if remaining is None else max(remaining, 0.0))
        except FutureTimeoutError as e:
            future.cancel()
            raise RequestExpiredError("deadline expired while waiting for the model") from e
        except CancelledError as e:
            raise RequestCancelledError("request cancelled while queued") from e
        stats.add_outcome(outcome.queue_seconds, outcome.compute_seconds)
        raw, quantized = outcome.outputs
        return raw, quantized

    def _extract(self, engine: Engine, message: pb.Audio, options: RequestOptions, stats: CallStats) -> Any:
        source, rate = audio_source(message)
        self._check_size(engine, source, rate, options)
        examples = engine.embedder.extract(source, rate, **options.extract_kwargs())
        stats.audio_seconds += float(examples.duration_seconds)
        return examples

    @staticmethod
    def _check_size(engine: Engine, source: Any, rate: int | None, options: RequestOptions) -> None:
        """Refuse, from the header alone, a clip that would make more examples than the queue holds.

        A few kilobytes of FLAC silence can decode to gigabytes, and a tiny hop multiplies examples: the
        message-size limit alone does not bound memory, so this runs before anything is decoded.
        """
        info = audio.probe(source, sample_rate=rate)
        if info.frames == 0:
            return  # empty audio: the front-end's own error says so
        defaults = engine.embedder.options
        hop = options.hop_seconds if options.hop_seconds is not None else defaults.hop_seconds
        short_clip = options.short_clip if options.short_clip is not None else defaults.short_clip
        expected = audio.expected_examples(info.duration_seconds, hop_seconds=hop, short_clip=short_clip)
        if expected > engine.batcher.max_queued:
            raise PayloadTooLargeError(
                f"this clip would make {expected} examples ({info.duration_seconds:.1f} s at a {hop:g} s "
                f"hop), more than the queue holds ({engine.batcher.max_queued}): send it through "
                "EmbedStream, or use a larger hop"
            )

    # --- handlers ---------------------------------------------------------------------------------

    @rpc("Embed")
    def Embed(  # noqa: N802 - gRPC's method name
        self, request: pb.EmbedRequest, context: grpc.ServicerContext, stats: CallStats
    ) -> pb.EmbedResponse:
        engine = self._engine()
        options = RequestOptions.from_proto(request.options, pca_loaded=engine.pca_loaded)
        self._deadline(context)
        examples = self._extract(engine, request.audio, options, stats)
        future = self._submit(engine, examples.log_mel, context)
        raw, quantized = self._wait(engine, future, context, stats)
        stats.examples += raw.shape[0]
        result = engine.embedder.make_result(examples, raw, quantized)
        return pb.EmbedResponse(result=result_to_proto(result, output=options.output))

    @rpc("EmbedBatch")
    def EmbedBatch(  # noqa: N802 - gRPC's method name
        self, request: pb.EmbedBatchRequest, context: grpc.ServicerContext, stats: CallStats
    ) -> pb.EmbedBatchResponse:
        engine = self._engine()
        count = len(request.items)
        if count > self.config.max_batch_items:
            raise InvalidOptionError(
                f"EmbedBatch takes at most {self.config.max_batch_items} items per call, got {count}"
            )
        self._deadline(context)
        stats.extra["items"] = count
        # Phase 1: extract every item and queue its examples, so items share model batches. Items go in
        # waves that fit the queue: before queuing more, wait for earlier items, so an accepted call never
        # overflows the queue with its own items.
        pending: list[tuple[Any, Any, RequestOptions] | BaseException] = []
        outstanding: deque[tuple[Any, int]] = deque()  # (future, examples) queued and not yet waited for
        for item in request.items:
            try:
                options = RequestOptions.from_proto(item.options, pca_loaded=engine.pca_loaded)
                examples = self._extract(engine, item.audio, options, stats)
                future = self._submit_in_wave(engine, examples.log_mel, context, outstanding)
                pending.append((examples, future, options))
            except (RequestCancelledError, RequestExpiredError):
                raise  # the whole call is gone: no point extracting the rest
            except Exception as error:
                pending.append(error)
        # Phase 2: collect, in order; one item's failure is that item's status.
        response = pb.EmbedBatchResponse()
        failed = 0
        for entry in pending:
            try:
                if isinstance(entry, BaseException):
                    raise entry
                examples, future, options = entry
                raw, quantized = self._wait(engine, future, context, stats)
                result = engine.embedder.make_result(examples, raw, quantized)
                response.items.add(result=result_to_proto(result, output=options.output))
                stats.examples += raw.shape[0]
            except (RequestCancelledError, RequestExpiredError):
                raise  # the whole call is gone: no point answering item by item
            except Exception as error:
                mapped = status_for(error)
                response.items.add(error=pb.Status(code=mapped.code.value[0], message=mapped.message))
                failed += 1
        stats.extra["failed_items"] = failed
        return response

    def _submit_in_wave(
        self,
        engine: Engine,
        log_mel: np.ndarray,
        context: grpc.ServicerContext,
        outstanding: deque[tuple[Any, int]],
    ) -> Any:
        """Queue one EmbedBatch item once the call's earlier items leave it room; track its future.

        Waits (oldest first) for earlier items of the same call while they and this item together would
        exceed the queue, and again if the queue is full of other calls' work while ours is outstanding.
        An item is refused for queue space only when none of this call's items is left to wait for.
        """
        count = int(log_mel.shape[0])
        capacity = engine.batcher.max_queued
        while outstanding and sum(n for _, n in outstanding) + count > capacity:
            self._settle_oldest(outstanding, context)
        while True:
            try:
                future = self._submit(engine, log_mel, context)
                break
            except QueueFullError:
                if not outstanding or count > capacity:
                    raise
                self._settle_oldest(outstanding, context)
        if future is not None:
            outstanding.append((future, count))
        return future

    @staticmethod
    def _settle_oldest(outstanding: deque[tuple[Any, int]], context: grpc.ServicerContext) -> None:
        """Wait until the oldest outstanding item's future resolves (its outcome is read later, in order)."""
        future, _ = outstanding.popleft()
        remaining = context.time_remaining()
        futures_wait([future], timeout=None if remaining is None else max(remaining, 0.0))
        if not future.done():  # the caller's deadline passed first
            raise RequestExpiredError("deadline expired while waiting for earlier items of the batch")

    @rpc("EmbedStream")
    def EmbedStream(  # noqa: N802 - gRPC's method name
        self,
        request_iterator: Iterator[pb.EmbedStreamRequest],
        context: grpc.ServicerContext,
        stats: CallStats,
    ) -> Iterator[pb.EmbedStreamResponse]:
        engine = self._engine()
        with self.streams.hold():
            reader = IdleTimeoutReader(request_iterator, idle_seconds=self.config.stream_idle_seconds)
            try:
                yield from self._embed_stream(engine, reader, context, stats)
            finally:
                reader.close()

    def _embed_stream(
        self,
        engine: Engine,
        request_iterator: Iterator[pb.EmbedStreamRequest],
        context: grpc.ServicerContext,
        stats: CallStats,
    ) -> Iterator[pb.EmbedStreamResponse]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("payload") != "config":
            raise InvalidOptionError("the first EmbedStream message must carry `config` (format and options)")
        config = first.config
        options = RequestOptions.from_proto(config.options, pca_loaded=engine.pca_loaded)
        defaults = engine.embedder.options
        hop = options.hop_seconds if options.hop_seconds is not None else defaults.hop_seconds
        short_clip = options.short_clip or defaults.short_clip
        kind = config.WhichOneof("format")
        if kind is None:
            raise InvalidOptionError(
                "stream config must set `pcm` (raw PCM chunks) or `encoded` (a file's bytes)"
            )
        with contextlib.ExitStack() as stack:
            if kind == "pcm":
                encoding, rate, channels = pcm_format(config.pcm)
                front = self._front_end(engine, rate, channels, hop)
                blocks = self._pcm_blocks(request_iterator, encoding, rate, channels)
            else:
                # Containers need seeking to parse: spool the file (disk past 8 MiB), then decode in blocks.
                spool = stack.enter_context(tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES))
                self._spool(request_iterator, spool)
                handle = stack.enter_context(open_audio(spool))
                front = self._front_end(engine, handle.samplerate, handle.channels, hop)
                block_frames = max(1, round(STREAM_DECODE_BLOCK_SECONDS * handle.samplerate))
                blocks = read_blocks(handle, "<stream>", block_frames=block_frames)
            for block in blocks:
                log_mel, starts = front.push(block)
                if log_mel.shape[0]:
                    yield self._stream_response(engine, front, log_mel, starts, options, context, stats)
            if front.samples_pushed == 0:
                raise AudioDecodeError("the stream carried no audio samples")
            log_mel, starts = front.finish(short_clip=short_clip)
            yield self._stream_response(engine, front, log_mel, starts, options, context, stats, final=True)

    def _pcm_blocks(
        self, request_iterator: Iterator[pb.EmbedStreamRequest], encoding: str, rate: int, channels: int
    ) -> Iterator[np.ndarray]:
        """Decode PCM chunks as they arrive; a frame split across two chunks waits for its second half."""
        frame_bytes = (2 if encoding == "s16le" else 4) * channels
        carry = b""
        for message in request_iterator:
            data = carry + self._chunk(message)
            usable = len(data) - len(data) % frame_bytes
            carry = data[usable:]
            if usable:
                yield audio.decode_pcm(data[:usable], encoding=encoding, sample_rate=rate, channels=channels)
        if carry:
            raise AudioDecodeError(
                f"the stream ended inside a frame: {len(carry)} bytes left over; frames have {frame_bytes}"
            )

    def _spool(self, request_iterator: Iterator[pb.EmbedStreamRequest], spool: IO[bytes]) -> None:
        """Write an encoded stream's chunks to ``spool`` (bounded by ``max_stream_mb``) and rewind it."""
        limit = self.config.max_stream_bytes
        received = 0
        for message in request_iterator:
            chunk = self._chunk(message)
            received += len(chunk)
            if received > limit:
                raise PayloadTooLargeError(
                    f"stream exceeded the server's limit of {limit} bytes (max_stream_mb="
                    f"{self.config.max_stream_mb:g}); split the recording"
                )
            spool.write(chunk)
        if received == 0:
            raise AudioDecodeError("the stream carried no audio data (0 bytes)")
        spool.seek(0)

    @staticmethod
    def _front_end(engine: Engine, rate: int, channels: int, hop: float) -> audio.StreamingFrontEnd:
        resampler = engine.embedder.options.resampler
        return audio.StreamingFrontEnd(rate, num_channels=channels, hop_seconds=hop, resampler=resampler)

    @staticmethod
    def _chunk(message: pb.EmbedStreamRequest) -> bytes:
        if message.WhichOneof("payload") != "chunk":
            raise InvalidOptionError(
                "only the first EmbedStream message may carry `config`; the rest carry `chunk`"
            )
        return message.chunk

    def _stream_response(
        self,
        engine: Engine,
        front: audio.StreamingFrontEnd,
        log_mel: np.ndarray,
        starts: np.ndarray,
        options: RequestOptions,
        context: grpc.ServicerContext,
        stats: CallStats,
        *,
        final: bool = False,
    ) -> pb.EmbedStreamResponse:
        future = self._submit(engine, log_mel, context)
        raw, quantized = self._wait(engine, future, context, stats)
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
        return pb.EmbedStreamResponse(result=result_to_proto(result, output=options.output), final=final)

    @rpc("GetModelInfo")
    def GetModelInfo(  # noqa: N802 - gRPC's method name
        self, request: pb.GetModelInfoRequest, context: grpc.ServicerContext, stats: CallStats
    ) -> pb.ModelInfo:
        engine = self._engine()
        info = engine.embedder.model_info
        c = self.config
        return pb.ModelInfo(
            sample_rate=int(info.sample_rate),
            window_seconds=float(info.window_seconds),
            hop_seconds=float(info.hop_seconds),
            dimension=int(info.embedding_size),
            pca_loaded=bool(info.pca_loaded),
            weights=pb.WeightsProvenance(
                sha256=str(info.weights_sha256),
                source=str(info.weights_source),
                synthetic=bool(info.synthetic),
            ),
            limits=pb.ServerLimits(
                max_batch_examples=c.max_batch_examples,
                max_queue_delay_ms=c.max_queue_delay_ms,
                max_queue_examples=c.max_queue_examples,
                max_receive_message_bytes=c.max_receive_message_bytes,
                max_send_message_bytes=c.max_send_message_bytes,
                max_stream_bytes=c.max_stream_bytes,
                max_batch_items=c.max_batch_items,
            ),
            version=__version__,
        )
