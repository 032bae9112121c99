"""The classifier file: a safetensors file with the head's tensors and everything needed to trust it.

Tensors are the head's state dict (``layers.0.weight``, ``feature_mean``, ...), float32. String metadata:

==================  ===========================================================================
key                 value
==================  ===========================================================================
format              ``audioembed-classifier`` (what tells it from a VGGish weights file)
format_version      ``1``
labels              JSON list of label names, in class-index order
multi_label         ``true`` / ``false``: sigmoid per class, or softmax over classes
config              JSON of :class:`~audioembed.classifier.heads.HeadConfig`
vggish_sha256       SHA-256 of the VGGish weights file the embeddings came from
vggish_synthetic    ``true`` when those weights were synthetic (``weights synth``)
pca_sha256          SHA-256 of the PCA parameters' file (quantized features depend on them), or ``""``
training            JSON of the training options and outcome (seed, epochs, metrics, data set)
==================  ===========================================================================
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import safetensors

from audioembed.bulk.atomic import atomic_file
from audioembed.classifier.heads import HeadConfig
from audioembed.errors import ClassifierError, InvalidOptionError

FORMAT = "audioembed-classifier"
FORMAT_VERSION = "1"  # bump when the layout or required metadata change
VGGISH_PREFIX = "vggish."  # tensors of a fine-tuned VGGish, beside the head's


@dataclass(frozen=True)
class ClassifierFile:
    """What a classifier file holds.

    Attributes
    ----------
    tensors : dict of str to np.ndarray
        The head's state dict.
    labels : tuple of str
    multi_label : bool
    config : HeadConfig
    vggish_sha256 : str
    vggish_synthetic : bool
    pca_sha256 : str or None
    training : dict
        Training options and outcome, as written.
    vggish_tensors : dict of str to np.ndarray
        A fine-tuned classifier's trained VGGish parameters by state-dict key (``fc2.weight``); stored
        under ``vggish.`` + key. Empty for a head trained on frozen VGGish.
    """

    tensors: dict[str, np.ndarray]
    labels: tuple[str, ...]
    multi_label: bool
    config: HeadConfig
    vggish_sha256: str
    vggish_synthetic: bool = False
    pca_sha256: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    vggish_tensors: dict[str, np.ndarray] = field(default_factory=dict)


def is_classifier_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a safetensors file whose metadata says it is a classifier (cheap: header only)."""
    try:
        with safetensors.safe_open(os.fspath(path), framework="numpy") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT
    except Exception:
        return False


def write_classifier(path: str | os.PathLike, contents: ClassifierFile) -> Path:
    """Write a classifier file atomically; the same contents always give the same bytes.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    if len(contents.labels) != contents.config.num_classes:
        raise InvalidOptionError(
            f"{len(contents.labels)} labels for a head with {contents.config.num_classes} classes"
        )
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "labels": json.dumps(list(contents.labels)),
        "multi_label": "true" if contents.multi_label else "false",
        "config": json.dumps(contents.config.to_dict(), sort_keys=True),
        "vggish_sha256": contents.vggish_sha256,
        "vggish_synthetic": "true" if contents.vggish_synthetic else "false",
        "pca_sha256": contents.pca_sha256 or "",
        "training": json.dumps(contents.training, sort_keys=True),
    }
    try:
        with atomic_file(path) as handle:
            tensors = {
                **contents.tensors,
                **{VGGISH_PREFIX + k: v for k, v in contents.vggish_tensors.items()},
            }
            handle.write(_serialize(tensors, metadata))
    except OSError as error:
        raise ClassifierError(f"cannot write {path}: {error.strerror or error}") from error
    return path


def read_classifier(path: str | os.PathLike) -> ClassifierFile:
    """Read a classifier file.

    Raises
    ------
    FileNotFoundError
        (as :class:`ClassifierError`) when the file does not exist.
    ClassifierError
        Not a safetensors file, a safetensors file of something else (e.g. VGGish weights), a newer
        format version, or inconsistent contents; the message says which.
    """
    path = Path(path)
    if not path.is_file():
        raise ClassifierError(f"classifier file {str(path)!r} does not exist")
    try:
        with safetensors.safe_open(os.fspath(path), framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    except Exception as error:
        raise ClassifierError(f"{path} is not a readable safetensors file: {error}") from error
    if metadata.get("format") != FORMAT:
        what = "VGGish weights" if metadata.get("architecture") == "vggish" else "something else"
        raise ClassifierError(
            f"{path} is not an audioembed classifier (format {metadata.get('format')!r}; it holds {what}); "
            "train one with `audioembed train`"
        )
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ClassifierError(
            f"{path}: classifier format version {metadata.get('format_version')!r} is not supported "
            f"(this audioembed reads version {FORMAT_VERSION})"
        )
    try:
        labels = tuple(json.loads(metadata["labels"]))
        config = HeadConfig(**json.loads(metadata["config"]))
        training = json.loads(metadata.get("training", "{}"))
        vggish = {k[len(VGGISH_PREFIX) :]: v for k, v in tensors.items() if k.startswith(VGGISH_PREFIX)}
        contents = ClassifierFile(
            tensors={k: v for k, v in tensors.items() if not k.startswith(VGGISH_PREFIX)},
            vggish_tensors=vggish,
            labels=labels,
            multi_label=_flag(metadata["multi_label"]),
            config=config,
            vggish_sha256=metadata["vggish_sha256"],
            vggish_synthetic=_flag(metadata.get("vggish_synthetic", "false")),
            pca_sha256=metadata.get("pca_sha256") or None,
            training=training,
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ClassifierError(f"{path}: corrupted classifier metadata: {error!r}") from error
    if len(labels) != config.num_classes or not all(isinstance(label, str) for label in labels):
        raise ClassifierError(f"{path}: {labels!r} are not {config.num_classes} label names")
    return contents


def describe_classifier(path: str | os.PathLike) -> dict[str, Any]:
    """What ``audioembed weights info`` shows for a classifier file (JSON-serialisable)."""
    contents = read_classifier(path)
    return {
        "file": str(path),
        "format": FORMAT,
        "size_bytes": Path(path).stat().st_size,
        "labels": list(contents.labels),
        "multi_label": contents.multi_label,
        "config": contents.config.to_dict(),
        "vggish_sha256": contents.vggish_sha256,
        "vggish_synthetic": contents.vggish_synthetic,
        "pca_sha256": contents.pca_sha256,
        "training": contents.training,
        "tensors": {
            name: {"dtype": str(array.dtype), "shape": list(array.shape)}
            for name, array in contents.tensors.items()
        },
        "parameters": int(sum(array.size for array in contents.tensors.values())),
        "fine_tuned_vggish": {
            name: {"dtype": str(array.dtype), "shape": list(array.shape)}
            for name, array in contents.vggish_tensors.items()
        },
    }


def _serialize(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """safetensors bytes with keys in sorted order.

    The ``safetensors`` package writes its metadata from a hash map, whose order changes from one process
    to the next; a seeded training run must give a bit-identical file, so the (simple, documented) layout
    is written here: 8-byte little-endian header length, JSON header, then the tensors' bytes.
    """
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {
            "dtype": "F32",
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        blobs.append(array.tobytes())
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header with spaces to 8-byte alignment
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def _flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"expected 'true' or 'false', got {text!r}")
    return text == "true"


def state_tensors(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A head's state dict as plain float32 arrays for :func:`write_classifier`."""
    return {name: np.asarray(value, dtype=np.float32) for name, value in state.items()}
