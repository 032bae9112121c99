"""The Embedder: audio in, :class:`~audioembed.result.EmbeddingResult` out, batched across inputs.

It joins the three layers below it — the front-end (:mod:`audioembed.audio`), the model and postprocessor
(:mod:`audioembed.vggish`) — and adds what a caller of the whole pipeline needs: options checked once,
batches filled across inputs, decoding overlapped with inference, results in input order, thread safety.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

import numpy as np

from audioembed import audio
from audioembed.batching import Completed, ExampleBatcher, PendingInput
from audioembed.errors import AudioEmbedError, InvalidOptionError
from audioembed.feeding import InputState, PieceProducer, extract, input_pieces, with_rate
from audioembed.model_bundle import ModelBundle, load_model_bundle
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
        How far :meth:`embed_many` decodes ahead of the model, in inputs (or 10 s blocks of long ones):
        bounded, so memory is too.
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
        options = self.options.override(hop_seconds=hop_seconds, short_clip=short_clip)
        item = source if sample_rate is None else with_rate(source, sample_rate)
        batcher = self._new_batcher()
        pending = batcher.start(None)
        summary: audio.Examples | None = None
        done = []
        for piece in input_pieces(item, options):
            if isinstance(piece, audio.Examples):
                summary = piece
            else:
                done += batcher.extend(pending, piece)
        done += batcher.finish(pending)
        done += batcher.flush()
        (completed,) = done
        if completed.error is not None:
            raise completed.error
        return self.make_result(summary, completed.raw, completed.quantized)

    def embed_many(
        self,
        sources: Iterable[AudioSource],
        *,
        hop_seconds: float | None = None,
        short_clip: str | None = None,
        errors: Literal["raise", "return"] = "raise",
    ) -> Iterator[EmbeddingResult | FailedInput]:
        """Embed many inputs, filling model batches across them; yield results in input order.

        Inputs are decoded ahead on a worker thread while the model runs, so the model does not wait on
        I/O; encoded inputs are decoded in 10 s blocks, so a long file never sits in memory whole. Arrays
        must come as ``(array, sample_rate)`` tuples.

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
        batcher = self._new_batcher()
        with PieceProducer(sources, options, queue_size=2 * self.prefetch) as producer:
            states: dict[int, tuple[InputState, PendingInput]] = {}
            for index, source, piece in producer:
                if index not in states:
                    state = InputState(index, source)
                    states[index] = (state, batcher.start(state))
                state, pending = states[index]
                if isinstance(piece, np.ndarray):
                    completions = batcher.extend(pending, piece)
                else:
                    if isinstance(piece, AudioEmbedError):
                        pending.error = piece  # its queued rows are skipped
                    else:
                        state.summary = piece
                    completions = batcher.finish(pending)
                    del states[index]
                for done in completions:
                    yield self._finish(done, errors)
                if isinstance(piece, AudioEmbedError) and errors == "raise":
                    break  # stop reading; the flush below yields what came before, then raises
            for done in batcher.flush():
                yield self._finish(done, errors)

    def with_model_state(self, state: dict[str, np.ndarray]) -> Embedder:
        """A new Embedder on the same weights, PCA and options, with some VGGish parameters replaced.

        For a fine-tuned classifier, whose file holds the VGGish layers it trained (``{"fc2.weight": ...}``):
        the new Embedder's model is built afresh from the same weights file (memory-mapped, so cheap), then
        loads ``state``; the postprocessor is shared. ``model_info`` still names the original weights.
        """
        from audioembed.vggish import weights as weights_io  # the loaders, only needed here

        model = weights_io.build_vggish(weights_io.read_weights(self._bundle.weights_file.path))
        _, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise InvalidOptionError(f"not VGGish parameters: {sorted(unexpected)}")
        # Built field by field rather than copied: a copy would also take instance attributes (e.g. a
        # patched bound method) that still point at this Embedder's model.
        clone = object.__new__(Embedder)
        clone.options, clone.batch_size, clone.prefetch = self.options, self.batch_size, self.prefetch
        clone._bundle = dataclasses.replace(self._bundle, model=model)
        clone._model_lock = threading.Lock()
        return clone

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
        return extract(source, sample_rate, options)

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

    def _finish(self, done: Completed, errors: str) -> EmbeddingResult | FailedInput:
        state: InputState = done.tag
        if done.error is not None:
            if errors == "raise":
                raise done.error
            return FailedInput(index=state.index, source=describe_source(state.source), error=done.error)
        return self.make_result(state.summary, done.raw, done.quantized)

    def _new_batcher(self) -> ExampleBatcher:
        return ExampleBatcher(
            self.run_model, batch_size=self.batch_size, with_quantized=self._bundle.postprocessor is not None
        )


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
