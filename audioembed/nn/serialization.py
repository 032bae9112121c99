"""State dicts in safetensors files, with the module versions in the file's metadata.

safetensors metadata maps strings to strings, so the per-module versions of a
:class:`~audioembed.nn.state_dict.StateDict` travel as one JSON object under the key ``module_versions``
(``{"": 1, "conv1": 1, "head.norm": 2}``: key prefix without the final dot → version). A file without that
key (written before versions were recorded, or by another program) loads as version 1 for every module, so
``load_state_dict`` runs each class's upgrades from version 1. VGGish's native weights files use the same key
(:mod:`audioembed.vggish.weights.native`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import safetensors

from audioembed.errors import WeightsError, WeightsFormatError, WeightsNotFoundError
from audioembed.nn.module import Module
from audioembed.nn.state_dict import VERSION, StateDict

VERSIONS_KEY = "module_versions"  # metadata key of the JSON {prefix: version} object


def encode_versions(state: Mapping[str, Any]) -> str | None:
    """The ``module_versions`` metadata value for ``state`` (None when it records no versions)."""
    metadata = getattr(state, "metadata", None) or {}
    versions = {prefix: entry[VERSION] for prefix, entry in metadata.items() if VERSION in entry}
    return json.dumps(versions, sort_keys=True, separators=(",", ":")) if versions else None


def decode_versions(metadata: Mapping[str, str], *, source: str) -> dict[str, dict[str, int]]:
    """``StateDict.metadata`` from a file's string metadata; empty when the file records no versions.

    Raises
    ------
    WeightsFormatError
        ``module_versions`` is not a JSON object of positive integers.
    """
    text = metadata.get(VERSIONS_KEY)
    if text is None:
        return {}
    try:
        versions = json.loads(text)
    except json.JSONDecodeError as error:
        raise WeightsFormatError(f"{source}: {VERSIONS_KEY} metadata is not JSON: {text[:80]!r}") from error
    if not isinstance(versions, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in versions.values()
    ):
        raise WeightsFormatError(
            f"{source}: {VERSIONS_KEY} must map module prefixes to versions >= 1, got {text[:80]!r}"
        )
    return {prefix: {VERSION: version} for prefix, version in versions.items()}


def save_state_file(
    path: str | PathLike[str],
    state: Module | Mapping[str, Any],
    *,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a module's state dict (or a state dict) to a safetensors file, atomically, versions included.

    Parameters
    ----------
    path : str or PathLike
        Destination; written beside it first, then renamed, so a crash never leaves half a file.
    state : Module or mapping of str to array
        A Module (its ``state_dict()`` is written) or a state dict; a :class:`StateDict`'s versions are
        recorded under ``module_versions``.
    metadata : mapping of str to str, optional
        Anything else to record (provenance, labels, options); ``module_versions`` is reserved.

    Returns
    -------
    Path

    Raises
    ------
    WeightsFormatError
        Metadata that is not str to str or uses the reserved key, or a value that is not a numeric array.
    WeightsError
        The file cannot be written.
    """
    path = Path(path)
    state = state.state_dict() if isinstance(state, Module) else state
    extra = dict(metadata or {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise WeightsFormatError(f"metadata must map str to str, got {extra!r}")
    if VERSIONS_KEY in extra:
        raise WeightsFormatError(f"metadata key {VERSIONS_KEY!r} is reserved for the module versions")
    versions = encode_versions(state)
    if versions is not None:
        extra[VERSIONS_KEY] = versions
    # np.asarray, not np.ascontiguousarray, which would turn a 0-d buffer (a counter) into shape (1,).
    payload = {key: np.asarray(value, order="C") for key, value in state.items()}
    data = _safetensors_bytes(payload, extra)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(data)
        os.replace(temporary, path)
    except OSError as error:
        raise WeightsError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    return path


_DTYPE_CODES = {
    "f8": "F64", "f4": "F32", "f2": "F16",
    "i8": "I64", "i4": "I32", "i2": "I16", "i1": "I8",
    "u8": "U64", "u4": "U32", "u2": "U16", "u1": "U8", "b1": "BOOL",
}  # fmt: skip


def _safetensors_bytes(arrays: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """The safetensors encoding of ``arrays``, the same bytes for the same state (keys and metadata sorted).

    The ``safetensors`` package orders the metadata as a hash map does, which changes from one process to
    the next; reproducible files (a seeded training run writes the same bytes) need a fixed order.
    """
    header: dict[str, Any] = {"__metadata__": dict(sorted(metadata.items()))} if metadata else {}
    chunks, offset = [], 0
    for key in sorted(arrays):
        array = arrays[key]
        code = _DTYPE_CODES.get(f"{array.dtype.kind}{array.dtype.itemsize}")
        if code is None:
            raise WeightsFormatError(f"cannot store {key!r} of dtype {array.dtype} in a safetensors file")
        raw = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()  # little-endian, C order
        header[key] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to a multiple of 8 bytes
    return len(text).to_bytes(8, "little") + text + b"".join(chunks)


def load_state_file(path: str | PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Read a safetensors state file: the state dict (with its module versions) and the other metadata.

    Returns
    -------
    state : StateDict
        Arrays by key (private copies); ``state.metadata`` holds the recorded module versions, or nothing
        for a file that records none (every module then loads as version 1).
    metadata : dict of str to str
        The file's other metadata.

    Raises
    ------
    WeightsNotFoundError
        No such file.
    WeightsFormatError
        Not a readable safetensors file, or malformed ``module_versions``.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"state file {str(path)!r} does not exist")
    try:
        with safetensors.safe_open(os.fspath(path), framework="numpy") as handle:
            metadata = dict(handle.metadata() or {})
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise WeightsFormatError(f"{path} is not a readable safetensors file: {error}") from error
    versions = decode_versions(metadata, source=str(path))
    metadata.pop(VERSIONS_KEY, None)
    return StateDict(arrays, metadata=versions), metadata
