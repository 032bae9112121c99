"""``Classifier``: a trained head on an Embedder — audio in, per-window and clip-level class scores out."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from audioembed.classifier.file import ClassifierFile, read_classifier
from audioembed.classifier.heads import ClassifierHead, HeadConfig, pool_scores, scores_from_logits
from audioembed.errors import ClassifierError, ClassifierMismatchError, InvalidOptionError, ShapeError
from audioembed.pipeline import AudioSource, Embedder, FailedInput
from audioembed.result import EmbeddingResult
from audioembed.vggish.params import EMBEDDING_SIZE


@dataclass(frozen=True)
class ClassificationResult:
    """Class scores of one input.

    Attributes
    ----------
    labels : tuple of str
        Label names in class-index order (the columns of the score matrices).
    window_scores : np.ndarray [shape=(N, C), float32]
        Score of each class in each 0.96 s window: softmax probabilities (single-label) or independent
        sigmoids (multi-label).
    clip_scores : np.ndarray [shape=(C,), float32]
        Window scores pooled over the clip (mean or max, as the head was trained); zeros when N = 0.
    timestamps : np.ndarray [shape=(N,), float64]
        Start of each window in seconds.
    top_k : list of (str, float)
        The best clip-level labels, best first.
    window_seconds, duration_seconds : float
    short_clip : str
        As in :class:`~audioembed.result.EmbeddingResult`.
    multi_label : bool
    """

    labels: tuple[str, ...]
    window_scores: np.ndarray
    clip_scores: np.ndarray
    timestamps: np.ndarray
    top_k: list[tuple[str, float]]
    window_seconds: float
    duration_seconds: float
    short_clip: str
    multi_label: bool

    @property
    def label(self) -> str | None:
        """The best clip-level label (None for an input with no windows)."""
        return self.top_k[0][0] if self.top_k else None


class Classifier:
    """A sound classifier: VGGish embeddings, then a trained head, then pooling over the clip.

    Build one with :meth:`load`. Thread-safe as the Embedder is (the head only reads its weights).

    Attributes
    ----------
    labels : tuple of str
    multi_label : bool
    vggish_sha256 : str
        The VGGish weights the head was trained on; the embedder must have loaded the same file.
    pca_sha256 : str or None
    config : HeadConfig
        Architecture and pooling.
    training : dict
        The options and outcome of the training run (seed, epochs, validation metric, ...).
    embedder : Embedder
        The embedder classification runs; for a fine-tuned classifier a private one with its VGGish layers.
    fine_tuned : bool
        Whether the file holds VGGish layers trained with the head (``audioembed train --fine-tune``). Then
        :meth:`window_scores` needs embeddings from :attr:`embedder`, not from another Embedder.
    """

    def __init__(self, contents: ClassifierFile, embedder: Embedder, *, source: str = "<classifier>") -> None:
        self.labels = contents.labels
        self.multi_label = contents.multi_label
        self.vggish_sha256 = contents.vggish_sha256
        self.pca_sha256 = contents.pca_sha256
        self.config: HeadConfig = contents.config
        self.training: dict[str, Any] = contents.training
        self.source = source
        head = ClassifierHead(contents.config)
        try:
            head.load_state_dict(contents.tensors)
        except (ValueError, KeyError) as error:
            raise ClassifierError(f"{source}: head tensors do not fit its config: {error}") from error
        self.head = head.eval()
        check_compatible(contents, embedder, source=source)
        self.fine_tuned = bool(contents.vggish_tensors)
        # A fine-tuned classifier runs its own VGGish (its trained layers): a shared embedder's
        # embeddings are not the ones its head learned from.
        self.embedder = embedder.with_model_state(contents.vggish_tensors) if self.fine_tuned else embedder

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        embedder: Embedder | None = None,
        *,
        weights: str | os.PathLike | None = None,
        pca: str | os.PathLike | None = None,
        allow_download: bool = False,
    ) -> Classifier:
        """Load a classifier file and attach it to an Embedder.

        Parameters
        ----------
        path : str or PathLike
            A file written by ``audioembed train``.
        embedder : Embedder, optional
            Shared with other users (a server's). Default: a new Embedder on ``weights`` / ``pca`` (or the
            default resolution: ``$AUDIOEMBED_WEIGHTS``, the cache) with the front-end options the head
            was trained with.
        weights, pca, allow_download : optional
            For the new Embedder; ignored when ``embedder`` is given.

        Raises
        ------
        ClassifierError
            Not a classifier file, or a corrupted one.
        ClassifierMismatchError
            The head was trained on other VGGish weights (or PCA parameters) than the embedder's; the
            message names both sha256.
        """
        contents = read_classifier(path)
        if embedder is None:
            embedder = Embedder(
                weights, pca, allow_download=allow_download, **embedding_options(contents.training)
            )
        return cls(contents, embedder, source=str(Path(path)))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def window_scores(self, embeddings: np.ndarray | None, quantized: np.ndarray | None = None) -> np.ndarray:
        """Class scores of each window from its embedding: no audio needed.

        Parameters
        ----------
        embeddings : np.ndarray [shape=(N, 128), float32] or None
            Raw embeddings; required by a head trained on raw features.
        quantized : np.ndarray [shape=(N, 128), uint8] or None
            PCA/uint8 embeddings; required by a head trained on quantized features.

        Returns
        -------
        np.ndarray [shape=(N, C), float32]
        """
        features = embeddings if self.config.features == "raw" else quantized
        if features is None:
            kind = "raw embeddings" if self.config.features == "raw" else "quantized (PCA) embeddings"
            raise InvalidOptionError(f"this classifier was trained on {kind}, which were not given")
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != EMBEDDING_SIZE:
            raise ShapeError(f"embeddings must be [N, {EMBEDDING_SIZE}], got {list(features.shape)}")
        logits = self.head(self.head.normalize(features))
        return scores_from_logits(logits, multi_label=self.multi_label)

    def pool(self, window_scores: np.ndarray) -> np.ndarray:
        """Clip-level scores ``[C]`` from window scores ``[N, C]`` (mean or max, as trained)."""
        window_scores = np.asarray(window_scores)
        if window_scores.ndim != 2 or window_scores.shape[1] != self.num_classes:
            raise ShapeError(
                f"window scores must be [N, {self.num_classes}], got {list(window_scores.shape)}"
            )
        return pool_scores(window_scores, self.config.pool)

    def result_from_embeddings(self, embedded: EmbeddingResult, *, top_k: int = 5) -> ClassificationResult:
        """Classify an input already embedded (by this classifier's embedder, or a server's batcher)."""
        top_k = _check_top_k(top_k)
        scores = self.window_scores(embedded.embeddings, embedded.quantized)
        clip = self.pool(scores)
        best = [] if scores.shape[0] == 0 else np.argsort(-clip, kind="stable")[:top_k]
        return ClassificationResult(
            labels=self.labels,
            window_scores=scores,
            clip_scores=clip,
            timestamps=embedded.timestamps,
            top_k=[(self.labels[i], float(clip[i])) for i in best],
            window_seconds=embedded.window_seconds,
            duration_seconds=embedded.duration_seconds,
            short_clip=embedded.short_clip,
            multi_label=self.multi_label,
        )

    def classify(
        self, source: AudioSource, sample_rate: int | None = None, *, top_k: int = 5
    ) -> ClassificationResult:
        """Classify one input (anything :meth:`Embedder.embed` takes)."""
        top_k = _check_top_k(top_k)
        return self.result_from_embeddings(self.embedder.embed(source, sample_rate), top_k=top_k)

    def classify_many(
        self,
        sources: Iterable[AudioSource],
        *,
        top_k: int = 5,
        errors: Literal["raise", "return"] = "return",
    ) -> Iterator[ClassificationResult | FailedInput]:
        """Classify many inputs, batched across them like :meth:`Embedder.embed_many`, in input order.

        With ``errors="return"`` an input that cannot be read yields a
        :class:`~audioembed.pipeline.FailedInput` in its place.
        """
        top_k = _check_top_k(top_k)
        for embedded in self.embedder.embed_many(sources, errors=errors):
            if isinstance(embedded, FailedInput):
                yield embedded
            else:
                yield self.result_from_embeddings(embedded, top_k=top_k)


def check_compatible(contents: ClassifierFile, embedder: Embedder, *, source: str) -> None:
    """Refuse an embedder whose weights (or PCA, for quantized features) are not the head's."""
    info = embedder.model_info
    if info.weights_sha256 != contents.vggish_sha256:
        raise ClassifierMismatchError(
            f"{source} was trained on VGGish weights with sha256 {contents.vggish_sha256}, but the loaded "
            f"weights ({info.weights_source}) have sha256 {info.weights_sha256}: its scores would be "
            "meaningless; load the weights it was trained on, or train it again"
        )
    if contents.config.features == "quantized":
        if not info.pca_loaded or embedder.options.output == "raw":
            raise ClassifierMismatchError(
                f"{source} takes quantized (PCA) embeddings, but the embedder produces none "
                f"(PCA loaded: {info.pca_loaded}, output {embedder.options.output!r})"
            )
        if contents.pca_sha256 and info.pca_sha256 != contents.pca_sha256:
            raise ClassifierMismatchError(
                f"{source} was trained on PCA parameters with sha256 {contents.pca_sha256}, but the "
                f"loaded ones have sha256 {info.pca_sha256}"
            )
    elif embedder.options.output == "quantized":
        raise ClassifierMismatchError(
            f"{source} takes raw embeddings, but the embedder outputs only quantized ones"
        )


def embedding_options(training: dict[str, Any]) -> dict[str, Any]:
    """The front-end options the head was trained with (hop, short-clip policy, resampler), if recorded.

    A classifier applies best to windows cut as its training windows were, so a new Embedder for it uses
    them; a shared embedder (a server's) is used as it is.
    """
    recorded = training.get("embedding") or {}
    return {key: recorded[key] for key in ("hop_seconds", "short_clip", "resampler") if key in recorded}


def _check_top_k(top_k: int) -> int:
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise InvalidOptionError(f"top_k must be a positive integer, got {top_k!r}")
    return int(top_k)
