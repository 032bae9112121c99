"""The Embedder: audio in, :class:`~audioembed.result.EmbeddingResult` out, batched across inputs.

It joins the three layers below it — the front-end (:mod:`audioembed.audio`), the model and postprocessor
(:mod:`audioembed.vggish`) — and adds what a caller of the whole pipeline needs: options checked once,
batches filled across inputs, decoding overlapped with inference, results in input order, thread safety.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np

from audioembed import audio
from audioembed.audio.constants import EXAMPLE_WINDOW_FRAMES, NUM_MEL_BANDS
from audioembed.batching import ExampleBatcher
from audioembed.errors import AudioEmbedError, InvalidOptionError
from audioembed.model_bundle import ModelBundle, load_model_bundle
from audioembed.nn.threads import blas_threads
from audioembed.options import EmbedOptions
from audioembed.result import EmbeddingResult, ModelInfo

AudioSource = str | os.PathLike | bytes | bytearray | BinaryIO | np.ndarray | tuple
"""A path, encoded bytes, a binary file object, an array (with ``sample_rate``), or ``(array, rate)``."""


@dataclass(frozen=True)
class FailedInput:
    """An input of :meth:`Embedder.embed_many` that could not be embedded (``errors="return"``).

    Attributes
    ----------
    index : int
        Position of the input in the iterable.
    source : str
        A short description of the input (its path, or its type and size).
    error : AudioEmbedError
        Why it failed; its message names the problem.
    """

    index: int
    source: str
    error: AudioEmbedError


class Embedder:
    """VGGish embeddings of audio, numerically Google's reference pipeline.

    Parameters
    ----------
    weights : str or os.PathLike, optional
        Model weights in any supported format (native ``.safetensors``, TF ``vggish_model.ckpt``, the
        PyTorch port's ``.pth``). Default: ``$AUDIOEMBED_WEIGHTS``, then the cache
        (``$AUDIOEMBED_HOME``), then a download if ``allow_download``.
    pca : str or os.PathLike, optional
        PCA parameters (``vggish_pca_params.npz`` or the port's ``.pth``). Default: those inside a native
        weights file, then ``$AUDIOEMBED_PCA``, then the cache. Required for ``output="quantized"``;
        with ``"both"`` results carry ``quantized=None`` when there are none.
    output : {"both", "raw", "quantized"}
        Which matrices results carry.
    hop_seconds : float
        Default distance between example starts: a positive multiple of 0.01 s (0.96 = no overlap).
    short_clip : {"pad", "drop"}
        Default policy for inputs shorter than one example (0.975 s): zero-pad to one example, or return
        no examples as the reference does.
    resampler : {"reference", "fast"}
        ``"reference"`` reproduces the reference's resampler; ``"fast"`` uses polyphase filtering.
    batch_size : int
        Examples per model call. 64 is where throughput levels off on a 2-core CPU.
    allow_download : bool
        Whether missing weights may be fetched from the official URLs.
    prefetch : int
        How many inputs :meth:`embed_many` decodes ahead of the model (bounded, so memory is too).
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        pca: str | os.PathLike | None = None,
        *,
        output: Literal["both", "raw", "quantized"] = "both",
        hop_seconds: float = audio.EXAMPLE_HOP_SECONDS,
        short_clip: Literal["pad", "drop"] = "pad",
        resampler: Literal["reference", "fast"] = "reference",
        batch_size: int = 64,
        allow_download: bool = False,
        prefetch: int = 4,
    ) -> None:
        self.options = EmbedOptions(
            output=output, hop_seconds=hop_seconds, short_clip=short_clip, resampler=resampler
        )
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidOptionError(f"batch_size must be a positive integer, got {batch_size!r}")
        if not isinstance(prefetch, int) or prefetch < 1:
            raise InvalidOptionError(f"prefetch must be a positive integer, got {prefetch!r}")
        self.batch_size = batch_size
        self.prefetch = prefetch
        self._bundle: ModelBundle = load_model_bundle(
            weights, pca, need_pca=output == "quantized", allow_download=allow_download
        )
        # The model's fast engine reuses scratch buffers and runs its own worker threads: one call at a time.
        self._model_lock = threading.Lock()

    # --- what users call ------------------------------------------------------------------------------

    @property
    def model_info(self) -> ModelInfo:
        """Provenance of the loaded weights and the pipeline's constants."""
        return self._bundle.info(hop_seconds=self.options.hop_seconds)

    def embed(
        self,
        source: AudioSource,
        sample_rate: int | None = None,
        *,
        hop_seconds: float | None = None,
        short_clip: str | None = None,
    ) -> EmbeddingResult:
        """Embed one input.

        Parameters
        ----------
        source : path, bytes, binary file object, np.ndarray or (np.ndarray, int)
            The audio. An array is ``[n]`` or ``[n, channels]`` samples and needs ``sample_rate``.
        sample_rate : int, optional
            Rate of an array input in Hz.
        hop_seconds, short_clip : optional
            Override the Embedder's defaults for this call.

        Returns
        -------
        EmbeddingResult
            ``N`` rows, one per example; ``N = 0`` only with ``short_clip="drop"`` on a short input.
        """
        examples = self.extract(source, sample_rate, hop_seconds=hop_seconds, short_clip=short_clip)
        raw, quantized = self.run_model(examples.log_mel)
        return self.make_result(examples, raw, quantized)

    def embed_many(
        self,
        sources: Iterable[AudioSource],
        *,
        hop_seconds: float | None = None,
        short_clip: str | None = None,
        errors: Literal["raise", "return"] = "raise",
    ) -> Iterator[EmbeddingResult | FailedInput]:
        """Embed many inputs, filling model batches across them; yield results in input order.

        Inputs are decoded ``prefetch`` ahead on a worker thread while the model runs, so the model does
        not wait on I/O. Arrays must come as ``(array, sample_rate)`` tuples.

        Parameters
        ----------
        sources : iterable
            Inputs as accepted by :meth:`embed`.
        hop_seconds, short_clip : optional
            Override the Embedder's defaults for every input.
        errors : {"raise", "return"}
            On an input that cannot be embedded: raise its error (``"raise"``), or yield a
            :class:`FailedInput` in its place and go on (``"return"``).

        Yields
        ------
        EmbeddingResult or FailedInput
            One per input, in input order.
        """
        if errors not in ("raise", "return"):
            raise InvalidOptionError(f"errors must be 'raise' or 'return', got {errors!r}")
        options = self.options.override(hop_seconds=hop_seconds, short_clip=short_clip)
        batcher: ExampleBatcher[tuple[int, AudioSource, audio.Examples | AudioEmbedError]] = ExampleBatcher(
            self.run_model, batch_size=self.batch_size, with_quantized=self._bundle.postprocessor is not None
        )
        empty = np.zeros((0, EXAMPLE_WINDOW_FRAMES, NUM_MEL_BANDS), dtype=np.float32)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audioembed-decode") as pool:
            for index, source, future in _prefetched(pool, sources, options, self.prefetch):
                try:
                    examples: audio.Examples | AudioEmbedError = future.result()
                except AudioEmbedError as error:
                    if errors == "raise":
                        raise
                    examples = error
                log_mel = examples.log_mel if isinstance(examples, audio.Examples) else empty
                for done in batcher.add((index, source, examples), log_mel):
                    yield self._finish(done.tag, done.raw, done.quantized)
            for done in batcher.flush():
                yield self._finish(done.tag, done.raw, done.quantized)

    # --- the stages, for servers that schedule them themselves -------------------------------------------

    def extract(
        self,
        source: AudioSource,
        sample_rate: int | None = None,
        *,
        hop_seconds: float | None = None,
        short_clip: str | None = None,
    ) -> audio.Examples:
        """Run the front-end only: decode, down-mix, resample, log-mel, frame. Thread-safe."""
        options = self.options.override(hop_seconds=hop_seconds, short_clip=short_clip)
        return _extract(source, sample_rate, options)

    def run_model(self, log_mel: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Run VGGish (and the postprocessor, when loaded) on examples. Thread-safe.

        Parameters
        ----------
        log_mel : np.ndarray [shape=(N, 96, 64)]
            Examples from :meth:`extract`; any N, run in chunks of ``batch_size``.

        Returns
        -------
        raw : np.ndarray [shape=(N, 128), float32]
        quantized : np.ndarray [shape=(N, 128), uint8] or None
            None when no PCA parameters are loaded.
        """
        log_mel = np.asarray(log_mel, dtype=np.float32)  # the model computes in float32
        raw_parts, quantized_parts = [], []
        with self._model_lock:
            for start in range(0, log_mel.shape[0], self.batch_size):
                raw, quantized = self._bundle.run(log_mel[start : start + self.batch_size])
                raw_parts.append(raw)
                quantized_parts.append(quantized)
        if not raw_parts:
            raw, quantized = self._bundle.run(log_mel)  # N = 0: let the model produce its [0, 128] shapes
            return raw, quantized
        raw = np.concatenate(raw_parts, axis=0)
        quantized = None if quantized_parts[0] is None else np.concatenate(quantized_parts, axis=0)
        return raw, quantized

    def make_result(
        self, examples: audio.Examples, raw: np.ndarray, quantized: np.ndarray | None
    ) -> EmbeddingResult:
        """Package model outputs with the examples' timing, keeping the matrices ``output`` asks for."""
        output = self.options.output
        return EmbeddingResult(
            embeddings=None if output == "quantized" else raw,
            quantized=None if output == "raw" else quantized,
            timestamps=examples.timestamps,
            window_seconds=examples.window_seconds,
            hop_seconds=examples.hop_seconds,
            duration_seconds=examples.duration_seconds,
            sample_rate=examples.sample_rate,
            short_clip=examples.short_clip,
        )

    def _finish(
        self,
        tag: tuple[int, AudioSource, audio.Examples | AudioEmbedError],
        raw: np.ndarray,
        quantized: np.ndarray | None,
    ) -> EmbeddingResult | FailedInput:
        index, source, examples = tag
        if isinstance(examples, AudioEmbedError):
            return FailedInput(index=index, source=describe_source(source), error=examples)
        return self.make_result(examples, raw, quantized)


def _extract(source: AudioSource, sample_rate: int | None, options: EmbedOptions) -> audio.Examples:
    if isinstance(source, tuple):
        if len(source) != 2 or sample_rate is not None:
            raise InvalidOptionError(
                f"a tuple input must be (samples, sample_rate) with no separate sample_rate, got a "
                f"{len(source)}-tuple and sample_rate={sample_rate!r}"
            )
        source, sample_rate = source
    # One BLAS thread: the front-end's matrix products are small, so OpenBLAS's extra threads only spin and
    # steal the core the model's workers need (measured: front-end busy time 6.2 s -> 2.8 s on 100 clips).
    # The limit is reference-counted and shared with the model's engine, so it is lifted only when neither
    # stage is running.
    with blas_threads(1):
        return audio.extract_examples(
            source,
            sample_rate=sample_rate,
            hop_seconds=options.hop_seconds,
            short_clip=options.short_clip,
            resampler=options.resampler,
        )


def _prefetched(
    pool: ThreadPoolExecutor,
    sources: Iterable[AudioSource],
    options: EmbedOptions,
    depth: int,
) -> Iterator[tuple[int, AudioSource, Future[audio.Examples]]]:
    """Submit front-end work up to ``depth`` inputs ahead; yield (index, source, future) in order."""
    window: list[tuple[int, AudioSource, Future[audio.Examples]]] = []
    try:
        for index, source in enumerate(sources):
            window.append((index, source, pool.submit(_extract, source, None, options)))
            if len(window) > depth:
                yield window.pop(0)
        while window:
            yield window.pop(0)
    finally:
        for _, _, future in window:  # the caller stopped early: don't decode what nobody will read
            future.cancel()


def describe_source(source: AudioSource) -> str:
    """A short human description of an input for messages: its path, or its type and size."""
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    if isinstance(source, (bytes, bytearray)):
        return f"<{len(source)} bytes>"
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[0], np.ndarray):
        return f"<array {list(source[0].shape)} at {source[1]} Hz>"
    if isinstance(source, np.ndarray):
        return f"<array {list(source.shape)}>"
    return f"<{type(source).__name__}>"
