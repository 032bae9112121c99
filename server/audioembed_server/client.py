"""``EmbeddingClient``: the service from Python, returning the library's own ``EmbeddingResult``.

Results compare directly with in-process ``Embedder`` ones. Calls that fail with UNAVAILABLE (model
loading, server restarting) or RESOURCE_EXHAUSTED with a ``retry-after-ms`` hint (queue full) are
retried with bounded exponential backoff, within the call's timeout.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audioembed.errors import InvalidOptionError
from audioembed_server.classify_client import ClassifyCalls, ServedClassifier, served_classifier
from audioembed_server.client_requests import AudioItem, stream_requests
from audioembed_server.client_requests import audio_message as _audio_message
from audioembed_server.client_requests import embed_options as _options
from audioembed_server.client_results import batch_results, concatenate_results, to_result
from audioembed_server.client_status import RETRYABLE, ServiceError, retry_delay
from audioembed_server.client_status import service_error as _service_error
from audioembed_server.client_status import status_code as _status_code  # noqa: F401 (see below)
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from audioembed_server.servicer import SERVICE_NAME
from audioembed_server.targets import SERVICE_CONFIG, channel_target

# The helpers live in client_requests / client_results / client_status (one job each). They are imported
# under the private names this module has always used, which other client modules (mixins adding calls to
# EmbeddingClient) import from here; ``__all__`` keeps the public names importable from here too.
__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "RETRYABLE",
    "AudioItem",
    "EmbeddingClient",
    "ServiceError",
    "ServiceInfo",
    "concatenate_results",
    "to_result",
]

DEFAULT_CHUNK_BYTES = 256 * 1024  # encoded files are streamed in messages far below any sane size limit


@dataclass(frozen=True)
class ServiceInfo:
    """What ``GetModelInfo`` says: the model, its weights' provenance, and the server's limits."""

    sample_rate: int
    window_seconds: float
    hop_seconds: float
    dimension: int
    pca_loaded: bool
    weights_sha256: str
    weights_source: str
    synthetic: bool
    limits: dict[str, float]
    version: str
    classifiers: tuple[ServedClassifier, ...] = ()  # what `classify` can use, sorted by name


class EmbeddingClient(ClassifyCalls):
    """A client of ``audioembed.v1.EmbeddingService``.

    Parameters
    ----------
    address : str or sequence of str
        ``host:port``; several replicas as a list or ``"a:1,b:2"``; or a target URI such as
        ``dns:///svc:50051`` (every address the name resolves to). Calls are balanced round-robin over
        the replicas, and a retry (UNAVAILABLE: a replica went away) goes to another one.
    tls : bool
        Connect with TLS (implied by ``root_certificates``); system roots unless given.
    root_certificates : bytes or path, optional
        PEM roots to trust (e.g. a self-signed server certificate).
    token : str, optional
        Sent as ``authorization: Bearer <token>``.
    timeout : float
        Seconds per call, retries included (the gRPC deadline).
    max_retries : int
        Retries after the first attempt on UNAVAILABLE / RESOURCE_EXHAUSTED (with a retry hint).
    initial_backoff, max_backoff : float
        Backoff doubles from ``initial_backoff`` up to ``max_backoff`` seconds, with jitter.
    max_message_mb : float
        Largest message sent or received.
    channel_options : sequence of (str, value)
        More gRPC channel arguments, e.g. ``[("grpc.use_local_subchannel_pool", 1)]`` so that this client
        opens its own connections instead of sharing those of other clients in the process to the same
        target (what a load generator wants, to be spread over a server's processes).
    """

    def __init__(
        self,
        address: str | Sequence[str],
        *,
        tls: bool = False,
        root_certificates: bytes | str | os.PathLike | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        initial_backoff: float = 0.1,
        max_backoff: float = 2.0,
        max_message_mb: float = 64.0,
        channel_options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        if max_retries < 0 or timeout <= 0:
            raise InvalidOptionError(
                f"need max_retries >= 0 and timeout > 0, got {max_retries!r}, {timeout!r}"
            )
        size = int(max_message_mb * 1024 * 1024)
        options = [
            ("grpc.max_receive_message_length", size),
            ("grpc.max_send_message_length", size),
            ("grpc.service_config", SERVICE_CONFIG),  # round-robin over every replica
            *channel_options,
        ]
        target = channel_target(address)
        if tls or root_certificates is not None:
            roots = root_certificates
            if roots is not None and not isinstance(roots, bytes):
                roots = Path(roots).read_bytes()
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._stub = pb_grpc.EmbeddingServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> EmbeddingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- retries ----------------------------------------------------------------------------------

    def _call(self, method: Callable[..., Any], request: Any, timeout: float | None) -> Any:
        deadline = time.monotonic() + (timeout or self.timeout)
        for attempt in itertools.count():
            remaining = deadline - time.monotonic()
            try:
                return method(request, timeout=max(remaining, 0.001), metadata=self._metadata)
            except grpc.RpcError as error:
                delay = self._retry_delay(error, attempt)
                if delay is None or time.monotonic() + delay >= deadline:
                    raise _service_error(error) from error
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count() never ends

    def _retry_delay(self, error: grpc.RpcError, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the error is final."""
        return retry_delay(
            error,
            attempt,
            max_retries=self.max_retries,
            initial_backoff=self.initial_backoff,
            max_backoff=self.max_backoff,
        )

    # --- calls ------------------------------------------------------------------------------------

    def embed(
        self,
        audio: AudioItem,
        sample_rate: int | None = None,
        *,
        output: str = "both",
        hop_seconds: float | None = None,
        short_clip: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Embed one clip (a path, the bytes of a file, or an array with ``sample_rate``)."""
        request = pb.EmbedRequest(
            audio=_audio_message(audio, sample_rate), options=_options(output, hop_seconds, short_clip)
        )
        return to_result(self._call(self._stub.Embed, request, timeout).result)

    def embed_batch(
        self,
        items: Iterable[AudioItem],
        *,
        output: str = "both",
        hop_seconds: float | None = None,
        short_clip: str | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """Embed many clips in one call: a list, in order, of ``EmbeddingResult`` or :class:`ServiceError`.

        Each item is a path, bytes, or ``(samples, sample_rate)``. A bad item is a ``ServiceError`` in its
        slot (not raised), so the other items' results are kept.
        """
        options = _options(output, hop_seconds, short_clip)
        request = pb.EmbedBatchRequest(
            items=[pb.EmbedRequest(audio=_audio_message(item, None), options=options) for item in items]
        )
        response = self._call(self._stub.EmbedBatch, request, timeout)
        return batch_results(response, len(request.items))

    def embed_stream(
        self,
        chunks: Iterable[bytes | np.ndarray],
        *,
        sample_rate: int | None = None,
        channels: int = 1,
        encoding: str | None = None,
        output: str = "both",
        hop_seconds: float | None = None,
        short_clip: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Stream one recording; yield an ``EmbeddingResult`` per server message as examples complete.

        With ``sample_rate`` the chunks are raw PCM: arrays (int16 -> s16le, float -> f32le) or bytes in
        ``encoding``. Without it they are the consecutive bytes of one audio file. The last result's
        ``duration_seconds`` and ``short_clip`` describe the whole stream. Streams are not retried.
        """
        options = _options(output, hop_seconds, short_clip)
        requests = stream_requests(
            chunks, options, sample_rate=sample_rate, channels=channels, encoding=encoding
        )
        responses = self._stub.EmbedStream(requests, timeout=timeout or self.timeout, metadata=self._metadata)
        try:
            for response in responses:
                yield to_result(response.result)
        except grpc.RpcError as error:
            raise _service_error(error) from error

    def embed_file_stream(
        self, path: str | os.PathLike, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, **options: Any
    ) -> Any:
        """Stream a (large) audio file in chunks and return one ``EmbeddingResult`` for all of it."""

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                while block := handle.read(chunk_bytes):
                    yield block

        return concatenate_results(list(self.embed_stream(chunks(), **options)))

    def model_info(self, *, timeout: float | None = None) -> ServiceInfo:
        info = self._call(self._stub.GetModelInfo, pb.GetModelInfoRequest(), timeout)
        limits = {field.name: value for field, value in info.limits.ListFields()}
        return ServiceInfo(
            sample_rate=info.sample_rate,
            window_seconds=info.window_seconds,
            hop_seconds=info.hop_seconds,
            dimension=info.dimension,
            pca_loaded=info.pca_loaded,
            weights_sha256=info.weights.sha256,
            weights_source=info.weights.source,
            synthetic=info.weights.synthetic,
            limits=limits,
            version=info.version,
            classifiers=tuple(served_classifier(c) for c in info.classifiers),
        )

    def health(self, service: str = SERVICE_NAME, *, timeout: float = 5.0) -> str:
        """The health status name of ``service`` ("SERVING", "NOT_SERVING", ...); "" = the whole server."""
        response = self._health.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
