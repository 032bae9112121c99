"""One entry point for every weights file: :func:`read_weights` returns a :class:`WeightsFile`."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from os import PathLike
from pathlib import Path

import numpy as np

from audioembed.errors import WeightsFormatError
from audioembed.vggish import params
from audioembed.vggish.weights import detect, native, pca, tf_checkpoint, torch_pickle, torch_port

logger = logging.getLogger(__name__)

_HASH_CHUNK = 1 << 22  # bytes per read while hashing


@dataclass(frozen=True)
class WeightsFile:
    """The contents of one weights file, in canonical form.

    Attributes
    ----------
    path : Path
        The file read.
    format : str
        One of :data:`~audioembed.vggish.weights.detect.FORMATS`.
    tensors : mapping of str to np.ndarray
        The 18 model tensors by TF name in TF layouts (float32), or empty for a PCA-only file.
    pca : mapping of str to np.ndarray or None
        ``pca_eigen_vectors`` float64 [128, 128] and ``pca_means`` float64 [128], if the file has them.
    metadata : mapping of str to str
        The native file's metadata; for foreign formats ``source_format`` only.
    """

    path: Path
    format: str
    tensors: dict[str, np.ndarray]
    pca: dict[str, np.ndarray] | None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def synthetic(self) -> bool:
        """Whether the weights were generated (``audioembed weights synth``), not trained."""
        return self.metadata.get("synthetic") == "true"

    @property
    def has_model(self) -> bool:
        """Whether the file holds the model tensors (a PCA-only file does not)."""
        return bool(self.tensors)

    def release_tensors(self) -> None:
        """Drop the model tensors (a loaded model holds its own), keeping format, metadata and sha256."""
        self.tensors.clear()

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the file's bytes (computed on first use: ~1 s for the full checkpoint)."""
        return file_sha256(self.path)


def file_sha256(path: str | PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_weights(path: str | PathLike[str]) -> WeightsFile:
    """Read any supported weights or PCA file into canonical form.

    Parameters
    ----------
    path : str or PathLike
        A native ``.safetensors``, a TF V1 checkpoint, a PyTorch port ``.pth`` (weights or PCA), or
        a PCA ``.npz``. The format is detected from the bytes.

    Returns
    -------
    WeightsFile
        Tensors by TF name (checked: names, shapes, float32), PCA parameters when present.

    Raises
    ------
    WeightsNotFoundError
        The file does not exist.
    WeightsFormatError
        Unknown, unsupported or corrupted file, or contents that are not VGGish weights / PCA.
    UnsafePickleError
        A ``.pth`` whose pickle names a global outside the allow-list.
    """
    path = Path(path)
    kind = detect.detect_format(path)
    tensors: dict[str, np.ndarray] = {}
    pca_params: dict[str, np.ndarray] | None = None
    metadata: dict[str, str] = {"source_format": kind}
    if kind == detect.NATIVE:
        tensors, pca_params, metadata = native.read_native(path)
    elif kind == detect.TF_V1:
        names = [variable.tf_name for variable in params.VARIABLES]
        declared = {entry.name for entry in tf_checkpoint.list_tf_checkpoint(path)}
        extras = sorted(declared - set(names))
        if extras:
            logger.info("%s: ignoring %d tensors that are not VGGish weights: %s", path, len(extras), extras)
        missing = [name for name in names if name not in declared]
        if missing:
            raise WeightsFormatError(
                f"{path} is a TensorFlow checkpoint but not of VGGish: missing {missing[:3]}"
                f"{' ...' if len(missing) > 3 else ''} ({len(missing)} of 18)"
            )
        tensors = tf_checkpoint.read_tf_checkpoint(path, names=names)
        native.check_model_tensors(tensors, source=str(path))
    elif kind in (detect.TORCH_LEGACY, detect.TORCH_ZIP):
        arrays = torch_pickle.read_torch_file(path)
        if torch_port.is_port_state_dict(arrays):
            tensors = torch_port.port_to_tf(arrays, source=str(path))
        elif any(name in arrays for name in pca.PCA_NAMES):
            pca_params = pca.check_pca(arrays, source=str(path))
        else:
            raise WeightsFormatError(
                f"{path} holds neither the VGGish PyTorch port's weights nor PCA parameters "
                f"(keys {sorted(arrays)[:6]})"
            )
    else:  # detect.NPZ
        pca_params = pca.read_pca_npz(path)
    return WeightsFile(path=path, format=kind, tensors=tensors, pca=pca_params, metadata=metadata)
