"""``Classify``, ``ClassifyBatch`` and classification in ``EmbedStream``: a head on batched embeddings.

The embeddings come from the engine's batcher, so classification shares model batches with ``Embed``
traffic (a fine-tuned classifier, with VGGish layers of its own, has an engine and batcher of its own);
the head (``Classifier.window_scores``, a few small matrix products) then runs on the handler thread of
each request. Unset window options default to those the head was trained with, so served scores equal
those of ``Classifier.load(path).classify(...)`` in process.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import grpc
import numpy as np

from audioembed.errors import InvalidOptionError
from audioembed_server.batch_call import Outstanding, _submit_in_wave, answer_items
from audioembed_server.classifiers import check_top_k, find, trained_options
from audioembed_server.convert import EMBEDDING_DTYPE, SHORT_CLIP_ENUMS, RequestOptions
from audioembed_server.engine import Engine, check_deadline
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.status import CallStats

SCORE_DTYPE = EMBEDDING_DTYPE  # window scores on the wire: float32 little-endian, row-major


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A validated classification request: which head, which window options, how many labels."""

    name: str
    classifier: Any  # audioembed.classifier.Classifier
    options: RequestOptions
    top_k: int
    engine: Engine  # the one computing its embeddings (a fine-tuned classifier's own)


def prepare(engine: Engine, request: pb.ClassifyRequest) -> Prepared:
    """Validate a ``ClassifyRequest``: a served classifier and valid options (else INVALID_ARGUMENT)."""
    classifier = find(engine.classifiers, request.classifier)
    embed_options = pb.EmbedOptions(output=pb.OUTPUT_KIND_BOTH, short_clip=request.options.short_clip)
    if request.options.HasField("hop_seconds"):
        embed_options.hop_seconds = request.options.hop_seconds
    options = RequestOptions.from_proto(embed_options, pca_loaded=engine.pca_loaded)
    return Prepared(
        request.classifier,
        classifier,
        with_trained_defaults(options, classifier),
        check_top_k(request.top_k),
        engine.for_classifier(request.classifier),
    )


def with_trained_defaults(options: RequestOptions, classifier: Any) -> RequestOptions:
    """Fill a request's unset hop and short-clip policy with the ones the head was trained with."""
    trained = trained_options(classifier)
    return dataclasses.replace(
        options,
        hop_seconds=options.hop_seconds if options.hop_seconds is not None else trained.get("hop_seconds"),
        short_clip=options.short_clip if options.short_clip is not None else trained.get("short_clip"),
    )


def classify(
    engine: Engine, request: pb.ClassifyRequest, context: grpc.ServicerContext, stats: CallStats
) -> pb.ClassifyResponse:
    """Answer one ``Classify`` call."""
    prepared = prepare(engine, request)
    stats.extra["classifier"] = prepared.name
    check_deadline(context)
    engine = prepared.engine
    with engine.batcher.expecting() as announcement:
        examples = engine.extract(request.audio, prepared.options, stats)
        future = engine.submit(examples.log_mel, context, announcement)
    raw, quantized = engine.wait(future, context, stats)
    stats.examples += raw.shape[0]
    return pb.ClassifyResponse(result=_score(prepared, examples, raw, quantized))


def classify_batch(
    engine: Engine,
    request: pb.ClassifyBatchRequest,
    context: grpc.ServicerContext,
    stats: CallStats,
    *,
    max_items: int,
) -> pb.ClassifyBatchResponse:
    """Answer one ``ClassifyBatch`` call as ``EmbedBatch`` does: all items queued first, each its own status.

    Raises
    ------
    InvalidOptionError
        More than ``max_items`` items.
    RequestCancelledError, RequestExpiredError
        The whole call is gone.
    """
    count = len(request.items)
    if count > max_items:
        raise InvalidOptionError(f"ClassifyBatch takes at most {max_items} items per call, got {count}")
    check_deadline(context)
    stats.extra["items"] = count
    response = pb.ClassifyBatchResponse()

    def queue(item: pb.ClassifyRequest, outstanding: Outstanding) -> tuple[Prepared, Any, Any]:
        prepared = prepare(engine, item)
        with prepared.engine.batcher.expecting() as announcement:
            examples = prepared.engine.extract(item.audio, prepared.options, stats)
            future = _submit_in_wave(prepared.engine, examples.log_mel, context, outstanding, announcement)
        return prepared, examples, future

    def finish(entry: tuple[Prepared, Any, Any]) -> pb.ClassificationResult:
        prepared, examples, future = entry
        raw, quantized = prepared.engine.wait(future, context, stats)
        message = _score(prepared, examples, raw, quantized)
        stats.examples += raw.shape[0]
        return message

    answer_items(request.items, queue, finish, response.items.add, stats)
    return response


def _score(
    prepared: Prepared, examples: Any, raw: np.ndarray, quantized: np.ndarray | None
) -> pb.ClassificationResult:
    embedded = prepared.engine.embedder.make_result(examples, raw, quantized)
    result = prepared.classifier.result_from_embeddings(embedded, top_k=prepared.top_k)
    return classification_to_proto(prepared.name, result, embedded)


def classification_to_proto(name: str, result: Any, embedded: Any) -> pb.ClassificationResult:
    """A library ``ClassificationResult`` as a message (scores stay float32, bit for bit).

    ``embedded`` is the ``EmbeddingResult`` it was computed from: it adds the hop and source sample rate.
    """
    scores = np.ascontiguousarray(result.window_scores, dtype=SCORE_DTYPE)  # [N, C]
    return pb.ClassificationResult(
        classifier=name,
        labels=list(result.labels),
        num_windows=int(scores.shape[0]),
        num_classes=len(result.labels),
        window_scores=scores.tobytes(),
        clip_scores=np.asarray(result.clip_scores, dtype=np.float32).tolist(),
        top_k=[pb.LabelScore(label=label, score=float(score)) for label, score in result.top_k],
        timestamps=np.asarray(result.timestamps, dtype=np.float64).tolist(),
        window_seconds=float(result.window_seconds),
        hop_seconds=float(embedded.hop_seconds),
        duration_seconds=float(result.duration_seconds),
        sample_rate=int(embedded.sample_rate),
        short_clip=SHORT_CLIP_ENUMS[result.short_clip],
        multi_label=bool(result.multi_label),
    )


class StreamScorer:
    """Classification of an ``EmbedStream``: each part's window scores, and the pool of all windows so far.

    Parameters
    ----------
    name : str
    classifier : audioembed.classifier.Classifier
    top_k : int
    """

    def __init__(self, name: str, classifier: Any, top_k: int) -> None:
        self.name = name
        self.classifier = classifier
        self.top_k = top_k
        self._scores: list[np.ndarray] = []  # [n_i, C] of every part so far

    def score(self, embedded: Any) -> pb.ClassificationResult:
        """The message for one part (an ``EmbeddingResult`` of the examples completed since the last one)."""
        part = self.classifier.result_from_embeddings(embedded, top_k=self.top_k)
        self._scores.append(part.window_scores)
        every = np.concatenate(self._scores)  # [sum n_i, C]
        clip = self.classifier.pool(every)
        best = [] if every.shape[0] == 0 else np.argsort(-clip, kind="stable")[: self.top_k]
        pooled = dataclasses.replace(
            part, clip_scores=clip, top_k=[(part.labels[i], float(clip[i])) for i in best]
        )
        return classification_to_proto(self.name, pooled, embedded)


def stream_scorer(engine: Engine, config: pb.StreamConfig) -> StreamScorer | None:
    """The scorer a stream's config asks for (None: embeddings only); unknown name -> INVALID_ARGUMENT."""
    if not config.classifier:
        return None
    return StreamScorer(
        config.classifier, find(engine.classifiers, config.classifier), check_top_k(config.top_k)
    )
