"""What an :class:`~audioembed.pipeline.Embedder` returns: embeddings with their times, and model facts."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audioembed.errors import ShapeError
from audioembed.vggish.params import EMBEDDING_SIZE

OUTPUT_KINDS = ("both", "raw", "quantized")


@dataclass(frozen=True)
class EmbeddingResult:
    """Embeddings of one input, one row per 0.96 s example, with the facts needed to align them.

    Attributes
    ----------
    embeddings : np.ndarray [shape=(N, 128), float32] or None
        Raw VGGish output (fc2, pre-activation), exactly the reference's ``vggish/embedding``.
        ``None`` only when the Embedder was asked for ``output="quantized"``.
    quantized : np.ndarray [shape=(N, 128), uint8] or None
        PCA-whitened, clipped and truncated to 8 bits (the AudioSet release format). ``None`` without PCA
        parameters or with ``output="raw"``.
    timestamps : np.ndarray [shape=(N,), float64]
        Start of each example's window in seconds from the start of the input.
    window_seconds : float
        Length of each example's window (0.96 s).
    hop_seconds : float
        Distance between consecutive starts.
    duration_seconds : float
        Length of the input audio.
    sample_rate : int
        Sample rate of the input audio before resampling.
    short_clip : str
        ``"none"`` when the input was long enough for one example, else the policy that applied:
        ``"pad"`` (zero-padded to one example) or ``"drop"`` (no examples, as the reference does).
    """

    embeddings: np.ndarray | None
    quantized: np.ndarray | None
    timestamps: np.ndarray
    window_seconds: float
    hop_seconds: float
    duration_seconds: float
    sample_rate: int
    short_clip: str

    def __post_init__(self) -> None:
        # A ShapeError (a ValueError) names the field, so a result built from a foreign source (a server's
        # answer, a hand-made array) fails here rather than later in an unrelated reshape.
        if not isinstance(self.timestamps, np.ndarray) or self.timestamps.ndim != 1:
            got = getattr(self.timestamps, "shape", type(self.timestamps).__name__)
            raise ShapeError(f"timestamps must be a 1-D array [N], got {got!r}")
        count = self.timestamps.shape[0]
        for name, expected_dtype in (("embeddings", np.float32), ("quantized", np.uint8)):
            matrix = getattr(self, name)
            if matrix is None:
                continue
            if not isinstance(matrix, np.ndarray):
                raise ShapeError(f"{name} must be a NumPy array or None, got {type(matrix).__name__}")
            if matrix.shape != (count, EMBEDDING_SIZE) or matrix.dtype != expected_dtype:
                raise ShapeError(
                    f"{name} must be {np.dtype(expected_dtype).name} [{count}, {EMBEDDING_SIZE}] to match "
                    f"{count} timestamps, got {matrix.dtype} {list(matrix.shape)}"
                )

    @property
    def num_examples(self) -> int:
        """Number of examples (rows)."""
        return int(self.timestamps.shape[0])

    @property
    def end_times(self) -> np.ndarray:
        """End of each example's window in seconds, ``timestamps + window_seconds``: float64 [N]."""
        return self.timestamps + self.window_seconds

    def save_npz(self, path: str | os.PathLike[str], *, provenance: dict[str, str] | None = None) -> Path:
        """Write this result atomically as one ``.npz`` (the layout ``audioembed embed`` writes).

        Parameters
        ----------
        path : str or PathLike
            The file to write; missing parent directories are created.
        provenance : dict of str to str, optional
            Extra string scalars stored beside the arrays (e.g. ``weights_sha256``).

        Returns
        -------
        Path
            ``path``.
        """
        # The writer lives with the other output formats (like pandas' ``to_parquet``), imported on use.
        from audioembed.bulk.outputs import write_result_npz

        target = Path(path)
        write_result_npz(target, self, provenance)
        return target


@dataclass(frozen=True)
class ModelInfo:
    """Facts about the loaded model that a user needs to trust and reproduce its outputs.

    Attributes
    ----------
    weights_sha256 : str
        SHA-256 of the weights file that was loaded.
    weights_source : str
        Where the weights came from: the original file name recorded in a native file, or the path.
    weights_format : str
        The format the weights were read from (``"native"``, ``"tf-checkpoint"``, ``"torch-legacy"``, ...).
    synthetic : bool
        True for weights made by ``audioembed weights synth``: outputs are *not* AudioSet embeddings.
    pca_loaded : bool
        Whether quantized outputs are available.
    pca_sha256 : str or None
        SHA-256 of the PCA parameter file, when one was loaded.
    sample_rate : int
        Rate the model's front-end works at (16 000 Hz).
    window_seconds, hop_seconds : float
        Example window and the Embedder's default hop.
    embedding_size : int
        Width of an embedding (128).
    metadata : dict
        Anything else the weights file recorded.
    """

    weights_sha256: str
    weights_source: str
    weights_format: str
    synthetic: bool
    pca_loaded: bool
    pca_sha256: str | None
    sample_rate: int
    window_seconds: float
    hop_seconds: float
    embedding_size: int = EMBEDDING_SIZE
    metadata: dict[str, str] = field(default_factory=dict)
