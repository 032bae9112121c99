"""The loaded model: VGGish, the optional postprocessor, and where their parameters came from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from audioembed import audio, weights_install
from audioembed.blas import blas_threads
from audioembed.errors import WeightsNotFoundError
from audioembed.result import ModelInfo
from audioembed.vggish import Postprocessor, VGGish, weights


@dataclass
class ModelBundle:
    """VGGish in eval mode, its postprocessor (or None), and their provenance.

    Attributes
    ----------
    model : VGGish
    postprocessor : Postprocessor or None
    weights_file : weights.WeightsFile
        What was read: format, sha256, metadata (tensors are released after loading).
    pca_sha256 : str or None
    """

    model: VGGish
    postprocessor: Postprocessor | None
    weights_file: weights.WeightsFile
    pca_sha256: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def run(self, log_mel: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Embed examples: float32 [N, 96, 64] → (raw float32 [N, 128], quantized uint8 [N, 128] | None)."""
        raw = self.model(log_mel)
        with blas_threads(1):  # the PCA product [N, 128] @ [128, 128]: see audioembed.blas
            quantized = None if self.postprocessor is None else self.postprocessor(raw)
        return raw, quantized

    def info(self, *, hop_seconds: float) -> ModelInfo:
        """Describe the bundle for users and ``GetModelInfo``."""
        metadata = dict(self.weights_file.metadata)
        return ModelInfo(
            weights_sha256=self.weights_file.sha256,
            weights_source=metadata.get("source_file", os.path.basename(self.weights_file.path)),
            weights_format=self.weights_file.format,
            synthetic=self.weights_file.synthetic,
            pca_loaded=self.postprocessor is not None,
            pca_sha256=self.pca_sha256,
            sample_rate=audio.SAMPLE_RATE_HZ,
            window_seconds=audio.EXAMPLE_WINDOW_SECONDS,
            hop_seconds=hop_seconds,
            metadata=metadata,
        )


def load_model_bundle(
    weights_path: str | os.PathLike | None,
    pca_path: str | os.PathLike | None,
    *,
    need_pca: bool,
    allow_download: bool,
) -> ModelBundle:
    """Resolve, read and load the weights and PCA parameters.

    PCA parameters come from, in order: ``pca_path``; the weights file itself when it is a native file that
    holds them; ``$AUDIOEMBED_PCA`` or the cache. Without any, ``need_pca`` decides between an error that
    says how to get them and a bundle without a postprocessor.
    """
    download = weights_install.download_official if allow_download else None
    resolved = weights.resolve_weights(weights_path, download=download)
    weights_file = weights.read_weights(resolved)
    model = weights.build_vggish(weights_file)  # native files: parameters are views of the mmap

    postprocessor: Postprocessor | None = None
    pca_sha256: str | None = None
    if pca_path is None and weights_file.pca is not None:
        postprocessor = Postprocessor.from_params(**weights_file.pca)
        pca_sha256 = weights_file.sha256
    else:
        try:
            resolved_pca = weights.resolve_pca(pca_path, download=download)
        except WeightsNotFoundError:
            if need_pca:
                raise
            resolved_pca = None
        if resolved_pca is not None:
            postprocessor = weights.load_postprocessor(resolved_pca)
            pca_sha256 = weights.file_sha256(resolved_pca)
    weights_file.release_tensors()  # the model holds what it needs (copies, or views of the mmap)
    return ModelBundle(
        model=model, postprocessor=postprocessor, weights_file=weights_file, pca_sha256=pca_sha256
    )
