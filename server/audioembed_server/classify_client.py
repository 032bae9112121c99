"""The client side of classification: ``EmbeddingClient.classify`` / ``classify_batch`` / ``classify_stream``.

Results are the library's :class:`~audioembed.classifier.ClassificationResult`, so they compare directly with
an in-process ``Classifier.classify``. :class:`ClassifyCalls` is a mixin of
:class:`~audioembed_server.client.EmbeddingClient` (it uses the client's retrying ``_call``, stub and
metadata); it lives here to keep the embedding client's module about embeddings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
import numpy as np

from audioembed.errors import InvalidInputError, InvalidOptionError, MalformedResponseError
from audioembed_server.convert import EMBEDDING_DTYPE, SHORT_CLIP_ENUMS, SHORT_CLIP_NAMES
from audioembed_server.proto import embedding_service_pb2 as pb


@dataclasses.dataclass(frozen=True)
class ServedClassifier:
    """A classifier a server serves, as ``GetModelInfo`` lists it."""

    name: str
    labels: tuple[str, ...]
    multi_label: bool
    vggish_sha256: str
    model: str  # "logistic" | "mlp"
    features: str  # "raw" | "quantized"
    pool: str  # "mean" | "max"
    fine_tuned: bool = False  # runs its own VGGish layers (audioembed train --fine-tune)


def served_classifier(message: pb.ClassifierInfo) -> ServedClassifier:
    return ServedClassifier(
        name=message.name,
        labels=tuple(message.labels),
        multi_label=message.multi_label,
        vggish_sha256=message.vggish_sha256,
        model=message.model,
        features=message.features,
        pool=message.pool,
        fine_tuned=message.fine_tuned,
    )


def classification_from_proto(message: pb.ClassificationResult) -> Any:
    """A wire ``ClassificationResult`` as the library's.

    Raises
    ------
    MalformedResponseError
        ``window_scores`` does not hold ``num_windows * num_classes`` floats, the labels do not match,
        or the short-clip policy is unknown (a corrupted or foreign message).
    """
    from audioembed.classifier import ClassificationResult

    n, c = int(message.num_windows), int(message.num_classes)
    size = len(message.window_scores)
    if size != n * c * EMBEDDING_DTYPE.itemsize or len(message.labels) != c:
        raise MalformedResponseError(
            f"classification.window_scores holds {size} bytes and {len(message.labels)} labels, "
            f"for {n} x {c} float32"
        )
    if message.short_clip not in SHORT_CLIP_NAMES:
        raise MalformedResponseError(f"classification.short_clip is {message.short_clip!r}: unknown policy")
    flat = np.frombuffer(message.window_scores, dtype=EMBEDDING_DTYPE)
    try:
        return ClassificationResult(
            labels=tuple(message.labels),
            window_scores=flat.astype(np.float32).reshape(n, c),  # [N, C], a writable copy
            clip_scores=np.asarray(message.clip_scores, dtype=np.float32),  # [C]
            timestamps=np.asarray(message.timestamps, dtype=np.float64),  # [N]
            top_k=[(item.label, float(item.score)) for item in message.top_k],
            window_seconds=message.window_seconds,
            duration_seconds=message.duration_seconds,
            short_clip=SHORT_CLIP_NAMES[message.short_clip],
            multi_label=message.multi_label,
        )
    except InvalidInputError as error:  # the result's own checks (e.g. clip_scores of the wrong length)
        raise MalformedResponseError(f"classification: {error}") from error


def classify_request(
    audio: pb.Audio, classifier: str, top_k: int, hop_seconds: float | None, short_clip: str | None
) -> pb.ClassifyRequest:
    """A validated ``ClassifyRequest`` (the server validates again; this fails before sending)."""
    if not isinstance(classifier, str) or not classifier:
        raise InvalidOptionError(f"classifier must be a served classifier's name, got {classifier!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 1:
        raise InvalidOptionError(f"top_k must be a positive integer, got {top_k!r}")
    if short_clip not in (None, "pad", "drop"):
        raise InvalidOptionError(f"short_clip must be 'pad', 'drop' or None, got {short_clip!r}")
    options = pb.ClassifyOptions()
    if hop_seconds is not None:
        options.hop_seconds = float(hop_seconds)
    if short_clip is not None:
        options.short_clip = SHORT_CLIP_ENUMS[short_clip]
    return pb.ClassifyRequest(audio=audio, classifier=classifier, top_k=int(top_k), options=options)


class ClassifyCalls:
    """Classification methods of :class:`~audioembed_server.client.EmbeddingClient`."""

    # Provided by EmbeddingClient: the stub, the auth metadata, the default timeout, the retrying call.
    _stub: Any
    _metadata: tuple[tuple[str, str], ...]
    timeout: float
    _call: Callable[[Any, Any, float | None], Any]

    def classify(
        self,
        audio: Any,
        classifier: str,
        sample_rate: int | None = None,
        *,
        top_k: int = 5,
        hop_seconds: float | None = None,
        short_clip: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Classify one clip with the served classifier ``classifier``; a ``ClassificationResult``.

        ``audio`` is what :meth:`embed` takes. Unset ``hop_seconds`` / ``short_clip`` are the ones the
        classifier was trained with. An unknown name raises :class:`ServiceError` (INVALID_ARGUMENT)
        naming the served classifiers.
        """
        from audioembed_server.client import _audio_message

        request = classify_request(
            _audio_message(audio, sample_rate), classifier, top_k, hop_seconds, short_clip
        )
        return classification_from_proto(self._call(self._stub.Classify, request, timeout).result)

    def classify_batch(
        self,
        items: Iterable[Any],
        classifier: str,
        *,
        top_k: int = 5,
        hop_seconds: float | None = None,
        short_clip: str | None = None,
        timeout: float | None = None,
    ) -> list[Any]:
        """Classify many clips in one call: in order, a ``ClassificationResult`` or ``ServiceError`` each."""
        from audioembed_server.client import ServiceError, _audio_message, _status_code

        request = pb.ClassifyBatchRequest(
            items=[
                classify_request(_audio_message(item, None), classifier, top_k, hop_seconds, short_clip)
                for item in items
            ]
        )
        response = self._call(self._stub.ClassifyBatch, request, timeout)
        return [
            classification_from_proto(item.result)
            if item.WhichOneof("outcome") == "result"
            else ServiceError(_status_code(item.error.code), item.error.message)
            for item in response.items
        ]

    def classify_stream(
        self,
        chunks: Iterable[bytes | np.ndarray],
        classifier: str,
        *,
        sample_rate: int | None = None,
        channels: int = 1,
        encoding: str | None = None,
        top_k: int = 5,
        hop_seconds: float | None = None,
        short_clip: str | None = None,
        timeout: float | None = None,
    ) -> Iterator[Any]:
        """Stream one recording (as :meth:`embed_stream`) and yield a ``ClassificationResult`` per message.

        Each holds the window scores of the windows completed since the previous one; its ``clip_scores``
        and ``top_k`` pool every window so far, so the last one's describe the whole recording.
        """
        from audioembed_server.client import _options, _service_error, stream_requests

        check = classify_request(pb.Audio(), classifier, top_k, hop_seconds, short_clip)
        options = _options("raw", hop_seconds, short_clip)  # raw: the smallest embeddings to carry along
        requests = stream_requests(
            chunks,
            options,
            sample_rate=sample_rate,
            channels=channels,
            encoding=encoding,
            classifier=check.classifier,
            top_k=check.top_k,
        )
        responses = self._stub.EmbedStream(requests, timeout=timeout or self.timeout, metadata=self._metadata)
        try:
            for response in responses:
                yield classification_from_proto(response.classification)
        except grpc.RpcError as error:
            raise _service_error(error) from error

    def classify_file_stream(
        self, path: Any, classifier: str, *, chunk_bytes: int = 256 * 1024, **options: Any
    ) -> Any:
        """Stream a (large) audio file in chunks; one ``ClassificationResult`` for all of it."""

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                while block := handle.read(chunk_bytes):
                    yield block

        return join_stream_parts(list(self.classify_stream(chunks(), classifier, **options)))


def join_stream_parts(parts: list[Any]) -> Any:
    """Join the results of one classified stream: every window's scores, the last part's pooled scores."""
    if not parts:
        raise ValueError("no results to join: the stream returned nothing")
    return dataclasses.replace(
        parts[-1],
        window_scores=np.concatenate([p.window_scores for p in parts]),  # [sum N_i, C]
        timestamps=np.concatenate([p.timestamps for p in parts]),  # [sum N_i]
    )
