"""The ``audioembed.v1.EmbeddingService`` servicer: thin handlers over an :class:`~.engine.Engine`.

Each handler checks readiness and hands its call to the module that does its job: :mod:`.engine` (the steps
every call shares), :mod:`.batch_call` (``EmbedBatch``), :mod:`.stream_call` (``EmbedStream``). Handlers
raise; :func:`~audioembed_server.status.rpc` maps exceptions to status codes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc

from audioembed import __version__
from audioembed_server.batch_call import embed_batch
from audioembed_server.classifiers import classifier_infos
from audioembed_server.classify_call import classify, classify_batch
from audioembed_server.config import ServerConfig
from audioembed_server.convert import RequestOptions, result_to_proto
from audioembed_server.engine import Engine, check_deadline
from audioembed_server.metrics import ServerMetrics
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from audioembed_server.status import CallStats, ModelNotReadyError, rpc
from audioembed_server.stream_call import embed_stream
from audioembed_server.streams import IdleTimeoutReader, StreamSlots

__all__ = ["SERVICE_NAME", "EmbeddingServicer", "Engine"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name[
    "EmbeddingService"
].full_name  # "audioembed.v1.EmbeddingService"


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

    def ready_engine(self) -> Engine:
        """The loaded engine; :class:`ModelNotReadyError` (UNAVAILABLE) while loading or if loading failed."""
        engine = self.engine
        if engine is None:
            if self.load_error is not None:
                raise ModelNotReadyError(f"the model failed to load: {self.load_error}")
            raise ModelNotReadyError(
                "the model is still loading; retry shortly (health check says when ready)"
            )
        return engine

    # --- handlers ---------------------------------------------------------------------------------

    @rpc("Embed")
    def Embed(  # noqa: N802 - gRPC's method name
        self, request: pb.EmbedRequest, context: grpc.ServicerContext, stats: CallStats
    ) -> pb.EmbedResponse:
        engine = self.ready_engine()
        options = RequestOptions.from_proto(request.options, pca_loaded=engine.pca_loaded)
        check_deadline(context)
        with engine.batcher.expecting() as announcement:
            examples = engine.extract(request.audio, options, stats)
            future = engine.submit(examples.log_mel, context, announcement)
        raw, quantized = engine.wait(future, context, stats)
        stats.examples += raw.shape[0]
        result = engine.embedder.make_result(examples, raw, quantized)
        return pb.EmbedResponse(result=result_to_proto(result, output=options.output))

    @rpc("EmbedBatch")
    def EmbedBatch(  # noqa: N802 - gRPC's method name
        self, request: pb.EmbedBatchRequest, context: grpc.ServicerContext, stats: CallStats
    ) -> pb.EmbedBatchResponse:
        engine = self.ready_engine()
        return embed_batch(engine, request, context, stats, max_items=self.config.max_batch_items)

    @rpc("EmbedStream")
    def EmbedStream(  # noqa: N802 - gRPC's method name
        self,
        request_iterator: Iterator[pb.EmbedStreamRequest],
        context: grpc.ServicerContext,
        stats: CallStats,
    ) -> Iterator[pb.EmbedStreamResponse]:
        engine = self.ready_engine()
        with self.streams.hold():
            reader = IdleTimeoutReader(request_iterator, idle_seconds=self.config.stream_idle_seconds)
            try:
                yield from embed_stream(engine, reader, context, stats, self.config)
            finally:
                reader.close()

    @rpc("GetModelInfo")
    def GetModelInfo(  # noqa: N802 - gRPC's method name
        self, request: pb.GetModelInfoRequest, context: grpc.ServicerContext, stats: CallStats
    ) -> pb.ModelInfo:
        engine = self.ready_engine()
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
            classifiers=classifier_infos(engine.classifiers),
        )

    @rpc("Classify")
    def Classify(  # noqa: N802 - gRPC's method name
        self, request: pb.ClassifyRequest, context: grpc.ServicerContext, stats: CallStats
    ) -> pb.ClassifyResponse:
        return classify(self.ready_engine(), request, context, stats)

    @rpc("ClassifyBatch")
    def ClassifyBatch(  # noqa: N802 - gRPC's method name
        self, request: pb.ClassifyBatchRequest, context: grpc.ServicerContext, stats: CallStats
    ) -> pb.ClassifyBatchResponse:
        engine = self.ready_engine()
        return classify_batch(engine, request, context, stats, max_items=self.config.max_batch_items)
