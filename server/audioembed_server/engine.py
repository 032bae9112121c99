"""A loaded model and the steps every embedding RPC takes with it: check, extract, queue, wait.

Decoding and feature extraction (``Embedder.extract``) run on the calling gRPC handler thread; the model
runs on the batcher's single thread (``Embedder.run_model``), which gathers examples from concurrent
requests into one batch. Steps raise; :func:`~audioembed_server.status.rpc` maps exceptions to status codes.
"""

from __future__ import annotations

import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np

from audioembed import audio
from audioembed_server.batcher import (
    Announcement,
    DynamicBatcher,
    RequestCancelledError,
    RequestExpiredError,
)
from audioembed_server.convert import RequestOptions, audio_source
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.status import CallStats, DeadlineTooShortError, PayloadTooLargeError

MIN_REMAINING_SECONDS = 0.005  # less time than this left on the caller's deadline: refuse before queuing


def check_deadline(context: grpc.ServicerContext) -> float | None:
    """The caller's deadline as ``time.monotonic()`` (None: no deadline); refuse one (nearly) passed."""
    remaining = context.time_remaining()
    if remaining is None:
        return None
    if remaining < MIN_REMAINING_SECONDS:
        raise DeadlineTooShortError(f"deadline leaves {remaining * 1000:.1f} ms: too little to start")
    return time.monotonic() + remaining


@dataclass(frozen=True)
class Engine:
    """A loaded model: the Embedder and the batcher whose thread calls its ``run_model``.

    Attributes
    ----------
    embedder : audioembed.Embedder
        Or anything with ``extract`` / ``run_model`` / ``make_result`` / ``options`` / ``model_info``.
    batcher : DynamicBatcher
    pca_loaded : bool
        Whether quantized outputs can be produced.
    classifiers : dict of str to audioembed.classifier.Classifier
        The served classifiers by name (``serve --classifier NAME=PATH``).
    classifier_engines : dict of str to Engine
        For each fine-tuned classifier (its own VGGish layers), the engine its windows run on: its own
        embedder and batcher. The others run on this engine.
    """

    embedder: Any
    batcher: DynamicBatcher
    pca_loaded: bool
    classifiers: dict[str, Any] = field(default_factory=dict)
    classifier_engines: dict[str, Engine] = field(default_factory=dict)

    def for_classifier(self, name: str) -> Engine:
        """The engine that computes the embeddings of classifier ``name``."""
        return self.classifier_engines.get(name, self)

    def close(self, timeout: float | None = None) -> None:
        """Stop the batchers (this one and the fine-tuned classifiers')."""
        self.batcher.close(timeout=timeout)
        for engine in self.classifier_engines.values():
            engine.batcher.close(timeout=timeout)

    @property
    def dimension(self) -> int:
        """Width of an embedding row (128)."""
        return int(self.embedder.model_info.embedding_size)

    def empty_outputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Outputs of zero examples: ``(float32 [0, 128], uint8 [0, 128] | None)``."""
        width = self.dimension
        return np.zeros((0, width), np.float32), (np.zeros((0, width), np.uint8) if self.pca_loaded else None)

    def extract(self, message: pb.Audio, options: RequestOptions, stats: CallStats) -> Any:
        """Decode one ``Audio`` message into the Embedder's examples (after the size check).

        Callers announce the request around this and :meth:`submit` (``with engine.batcher.expecting() as
        announcement``): a batch about to start may wait for these examples.
        """
        source, rate = audio_source(message)
        self.check_size(source, rate, options)
        examples = self.embedder.extract(source, rate, **options.extract_kwargs())
        stats.audio_seconds += float(examples.duration_seconds)
        return examples

    def check_size(self, source: Any, rate: int | None, options: RequestOptions) -> None:
        """Refuse, from the header alone, a clip that would make more examples than the queue holds.

        A few kilobytes of FLAC silence can decode to gigabytes, and a tiny hop multiplies examples: the
        message-size limit alone does not bound memory, so this runs before anything is decoded.
        """
        info = audio.probe(source, sample_rate=rate)
        if info.frames == 0:
            return  # empty audio: the front-end's own error says so
        defaults = self.embedder.options
        hop = options.hop_seconds if options.hop_seconds is not None else defaults.hop_seconds
        short_clip = options.short_clip if options.short_clip is not None else defaults.short_clip
        expected = audio.expected_examples(info.duration_seconds, hop_seconds=hop, short_clip=short_clip)
        if expected > self.batcher.max_queued:
            raise PayloadTooLargeError(
                f"this clip would make {expected} examples ({info.duration_seconds:.1f} s at a {hop:g} s "
                f"hop), more than the queue holds ({self.batcher.max_queued}): send it through "
                "EmbedStream, or use a larger hop"
            )

    def submit(
        self, log_mel: np.ndarray, context: grpc.ServicerContext, announcement: Announcement | None = None
    ) -> Any:
        """Queue examples ``[n, 96, 64]`` for the model (after a last deadline check); None for n = 0.

        ``announcement``: from ``batcher.expecting()`` around the decoding; ended as the rows are queued.
        """
        if log_mel.shape[0] == 0:
            return None
        deadline = check_deadline(context)
        # float32 is what the model computes in: converting here halves what the queue holds.
        rows = np.asarray(log_mel, dtype=np.float32)  # [n, 96, 64]
        return self.batcher.submit(
            rows, deadline=deadline, is_active=context.is_active, announcement=announcement
        )

    def wait(
        self, future: Any, context: grpc.ServicerContext, stats: CallStats
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """The model outputs ``(raw [n, 128], quantized [n, 128] | None)`` of a submitted request."""
        if future is None:
            return self.empty_outputs()
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
