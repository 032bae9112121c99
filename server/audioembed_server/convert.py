"""Protobuf messages <-> the library's values: options, audio sources, and results as packed matrices.

The client's reading of results (checked for malformed answers) is in :mod:`audioembed_server.client_results`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioembed import audio
from audioembed.errors import AudioDecodeError, InvalidOptionError
from audioembed_server.proto import embedding_service_pb2 as pb

EMBEDDING_DTYPE = np.dtype("<f4")  # raw embeddings on the wire: float32 little-endian, row-major
QUANTIZED_DTYPE = np.dtype("u1")

OUTPUTS = {
    pb.OUTPUT_KIND_UNSPECIFIED: "both",
    pb.OUTPUT_KIND_BOTH: "both",
    pb.OUTPUT_KIND_RAW: "raw",
    pb.OUTPUT_KIND_QUANTIZED: "quantized",
}
OUTPUT_ENUMS = {"both": pb.OUTPUT_KIND_BOTH, "raw": pb.OUTPUT_KIND_RAW, "quantized": pb.OUTPUT_KIND_QUANTIZED}
SHORT_CLIP_REQUEST = {
    pb.SHORT_CLIP_POLICY_UNSPECIFIED: None,
    pb.SHORT_CLIP_POLICY_PAD: "pad",
    pb.SHORT_CLIP_POLICY_DROP: "drop",
}
SHORT_CLIP_ENUMS = {
    "none": pb.SHORT_CLIP_POLICY_NONE,
    "pad": pb.SHORT_CLIP_POLICY_PAD,
    "drop": pb.SHORT_CLIP_POLICY_DROP,
}
SHORT_CLIP_NAMES = {value: name for name, value in SHORT_CLIP_ENUMS.items()}
PCM_ENCODINGS = {pb.PCM_ENCODING_S16LE: "s16le", pb.PCM_ENCODING_F32LE: "f32le"}
PCM_ENUMS = {name: value for value, name in PCM_ENCODINGS.items()}


@dataclass(frozen=True)
class RequestOptions:
    """A request's options, validated: ``None`` means the server's default."""

    output: str  # "both" | "raw" | "quantized"
    hop_seconds: float | None
    short_clip: str | None  # "pad" | "drop" | None

    @classmethod
    def from_proto(cls, options: pb.EmbedOptions, *, pca_loaded: bool) -> RequestOptions:
        """Validate ``options``; quantized output without PCA parameters is an :class:`InvalidOptionError`."""
        if options.output not in OUTPUTS:
            raise InvalidOptionError(
                f"unknown output kind {options.output!r}; expected one of {sorted(OUTPUTS)}"
            )
        output = OUTPUTS[options.output]
        if output == "quantized" and not pca_loaded:
            raise InvalidOptionError(
                "output 'quantized' needs PCA parameters, and this server has none: ask for 'raw', "
                "or start the server with --pca"
            )
        if options.short_clip not in SHORT_CLIP_REQUEST:
            name = SHORT_CLIP_NAMES.get(options.short_clip, options.short_clip)
            raise InvalidOptionError(f"short_clip must be 'pad', 'drop' or unset in a request, got {name!r}")
        hop = options.hop_seconds if options.HasField("hop_seconds") else None
        if hop is not None and not (math.isfinite(hop) and hop > 0):
            raise InvalidOptionError(f"hop_seconds must be a positive number of seconds, got {hop!r}")
        return cls(output, hop, SHORT_CLIP_REQUEST[options.short_clip])

    def extract_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Embedder.extract`` (unset options left to the embedder's defaults)."""
        return {"hop_seconds": self.hop_seconds, "short_clip": self.short_clip}


def pcm_format(fmt: pb.PcmFormat) -> tuple[str, int, int]:
    """``(encoding, sample_rate, channels)`` of a PCM format; the front-end checks rate and channels."""
    if fmt.encoding not in PCM_ENCODINGS:
        raise InvalidOptionError(
            "PCM encoding must be PCM_ENCODING_S16LE or PCM_ENCODING_F32LE, "
            f"got {pb.PcmEncoding.Name(fmt.encoding)}"
            if fmt.encoding in pb.PcmEncoding.values()
            else f"unknown PCM encoding {fmt.encoding!r}"
        )
    return PCM_ENCODINGS[fmt.encoding], int(fmt.sample_rate), int(fmt.channels or 1)


def audio_source(message: pb.Audio) -> tuple[Any, int | None]:
    """The ``(audio, sample_rate)`` to hand to ``Embedder.extract``: encoded bytes, or decoded PCM samples.

    Returns
    -------
    source : bytes or np.ndarray [shape=(n,) or (n, channels)], float64
    sample_rate : int or None
        None for encoded bytes (the container says).
    """
    kind = message.WhichOneof("source")
    if kind == "encoded":
        return message.encoded, None
    if kind == "pcm":
        encoding, rate, channels = pcm_format(message.pcm.format)
        samples = audio.decode_pcm(message.pcm.data, encoding=encoding, sample_rate=rate, channels=channels)
        return samples, rate
    raise AudioDecodeError("the request carries no audio: set audio.encoded or audio.pcm")


def result_to_proto(result: Any, *, output: str) -> pb.EmbeddingResult:
    """An ``EmbeddingResult`` as a message, keeping the outputs ``output`` asks for."""
    embeddings = np.asarray(result.embeddings)
    message = pb.EmbeddingResult(
        num_examples=int(embeddings.shape[0]),
        dimension=int(embeddings.shape[1]) if embeddings.ndim == 2 else 0,
        timestamps=np.asarray(result.timestamps, dtype=np.float64).tolist(),
        window_seconds=float(result.window_seconds),
        hop_seconds=float(result.hop_seconds),
        duration_seconds=float(result.duration_seconds),
        sample_rate=int(result.sample_rate),
        short_clip=SHORT_CLIP_ENUMS[result.short_clip],
    )
    if output in ("both", "raw"):
        message.raw = np.ascontiguousarray(embeddings, dtype=EMBEDDING_DTYPE).tobytes()
        message.has_raw = True
    if output in ("both", "quantized") and result.quantized is not None:
        message.quantized = np.ascontiguousarray(result.quantized, dtype=QUANTIZED_DTYPE).tobytes()
        message.has_quantized = True
    return message
