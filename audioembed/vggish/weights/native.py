"""The native weights format: safetensors with the 18 tensors in TF names.

Format 2 (written today) stores the three dense kernels output-major, ``[out, in]`` (the transpose of TF's
``[in, out]``), and reading views them back as ``[in, out]`` (F-contiguous): the fused dense stack runs
``Wᵀ @ xᵀ`` on that layout without copying it, which OpenBLAS does 1.2-1.8× faster than ``x @ W`` at 2-64
rows (:mod:`audioembed.nn.fused_dense`). Format 1 files (every tensor in its TF layout) are still read.
Optionally the PCA parameters ride along (``pca_eigen_vectors``, ``pca_means``, float64), and string
metadata records the format version, the architecture, where the weights came from (file name and
SHA-256), whether they are synthetic, and the layout version of each module of the model
(``module_versions``, see :mod:`audioembed.nn.serialization`; files from before it are version 1).
Files are written by the ``safetensors`` package; reading memory-maps the file and views each tensor in
place, so loading takes milliseconds and processes that load the same file share its pages.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

import numpy as np
import safetensors.numpy

from audioembed.errors import WeightsError, WeightsFormatError
from audioembed.nn.serialization import VERSIONS_KEY
from audioembed.nn.state_dict import module_versions
from audioembed.vggish import params
from audioembed.vggish.model import VGGish
from audioembed.vggish.weights.pca import PCA_NAMES, check_pca

FORMAT_VERSION = "2"  # bump when the layout or required metadata change
READABLE_VERSIONS = ("1", "2")  # 1: every tensor in its TF layout
# Stored transposed from format 2 on: the dense kernels (the only 2-D tensors).
OUTPUT_MAJOR = frozenset(v.tf_name for v in params.VARIABLES if len(v.shape) == 2)
ARCHITECTURE = "vggish"
_HEADER_LIMIT = 100 * 1024 * 1024  # bytes: a sane JSON header is a few KB
_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8")}


def check_model_tensors(tensors: Mapping[str, np.ndarray], *, source: str) -> None:
    """Check that ``tensors`` holds exactly VGGish's 18 float32 tensors in TF shapes.

    Raises
    ------
    WeightsFormatError
        Naming the first missing or unexpected name, or wrong shape or dtype.
    """
    missing = [v.tf_name for v in params.VARIABLES if v.tf_name not in tensors]
    unexpected = sorted(set(tensors) - set(params.VARIABLES_BY_TF_NAME))
    if missing or unexpected:
        raise WeightsFormatError(f"{source}: not VGGish weights: missing {missing}, unexpected {unexpected}")
    for variable in params.VARIABLES:
        array = tensors[variable.tf_name]
        if tuple(array.shape) != variable.shape:
            raise WeightsFormatError(
                f"{source}: {variable.tf_name} has shape {list(array.shape)}, expected {list(variable.shape)}"
            )
        if array.dtype != np.float32:
            raise WeightsFormatError(
                f"{source}: {variable.tf_name} has dtype {array.dtype}, expected float32"
            )


def write_native(
    path: str | PathLike[str],
    tensors: Mapping[str, np.ndarray],
    *,
    pca: Mapping[str, np.ndarray] | None = None,
    metadata: Mapping[str, str],
) -> Path:
    """Write weights (and optionally PCA parameters) as a native safetensors file, atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination; written to a temporary file beside it, then renamed.
    tensors : mapping of str to np.ndarray
        The 18 VGGish tensors by TF name, TF layouts, float32, all finite.
    pca : mapping of str to np.ndarray, optional
        ``pca_eigen_vectors`` [128, 128] and ``pca_means`` [128] (stored as float64).
    metadata : mapping of str to str
        Provenance: ``source_file``, ``source_sha256``, ``synthetic`` ("true"/"false"), anything else.
        ``format_version`` and ``architecture`` are set by this function.

    Returns
    -------
    path : Path
        The written file.
    """
    path = Path(path)
    check_model_tensors(tensors, source="weights to write")
    for name, array in tensors.items():
        if not np.all(np.isfinite(array)):
            raise WeightsFormatError(f"refusing to write {name}: it holds non-finite values")
    if any(not isinstance(v, str) for v in metadata.values()):
        raise WeightsFormatError(f"metadata values must be strings, got {dict(metadata)!r}")
    payload = {
        name: np.ascontiguousarray(array.T if name in OUTPUT_MAJOR else array)
        for name, array in tensors.items()
    }
    if pca is not None:
        payload.update(check_pca(dict(pca), source="PCA parameters to write"))
    header = {**metadata, "format_version": FORMAT_VERSION, "architecture": ARCHITECTURE}
    # The layouts these tensors are in: today's classes (a zero-weight model costs no memory until touched).
    header[VERSIONS_KEY] = json.dumps(module_versions(VGGish(initialize=False)), sort_keys=True)
    header.setdefault("synthetic", "false")
    header["has_pca"] = "true" if pca is not None else "false"
    header["dense_kernels"] = "output-major"  # for people reading the file with other tools
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # e.g. a cache directory not created yet
        # safetensors creates its files 0600; give ours the mode the user's umask gives new files.
        os.close(os.open(temporary, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o666))
        mode = temporary.stat().st_mode & 0o777
        safetensors.numpy.save_file(payload, temporary, metadata=header)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except OSError as error:
        raise WeightsError(f"cannot write {path}: {error.strerror or error}") from error
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
    return path


def read_native(
    path: str | PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None, dict[str, str]]:
    """Memory-map a native file.

    Parameters
    ----------
    path : str or PathLike
        A file written by :func:`write_native`.

    Returns
    -------
    tensors : dict of str to np.ndarray
        The 18 model tensors by TF name, in TF shapes: read-only views of the mapped file (the dense
        kernels of a format 2 file are F-contiguous views of their stored ``[out, in]`` layout).
    pca : dict of str to np.ndarray or None
        The PCA parameters if the file holds them.
    metadata : dict of str to str
        The file's metadata.

    Raises
    ------
    WeightsFormatError
        A bad header, an unsupported dtype, offsets outside the file, a newer format version, or
        wrong tensors.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as file:
        prefix = file.read(8)
        header_length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if not 2 <= header_length <= min(_HEADER_LIMIT, size - 8):
            raise WeightsFormatError(
                f"{path}: bad safetensors header length {header_length} ({size}-byte file)"
            )
        try:
            header = json.loads(file.read(header_length))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise WeightsFormatError(f"{path}: corrupted safetensors header: {error}") from error
    if not isinstance(header, dict):
        raise WeightsFormatError(f"{path}: safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise WeightsFormatError(
            f"{path}: safetensors metadata must map strings to strings, got {metadata!r}"
        )
    if metadata.get("architecture") != ARCHITECTURE:
        raise WeightsFormatError(
            f"{path}: architecture is {metadata.get('architecture')!r}, expected {ARCHITECTURE!r}: "
            "not an audioembed VGGish file"
        )
    version = metadata.get("format_version")
    if version not in READABLE_VERSIONS:
        raise WeightsFormatError(
            f"{path}: native format version {version!r} is not supported "
            f"(this audioembed reads versions {', '.join(READABLE_VERSIONS)})"
        )
    data_start = 8 + header_length
    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    arrays = {}
    for name, entry in header.items():
        try:
            dtype = _DTYPES[entry["dtype"]]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(o) for o in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as error:
            raise WeightsFormatError(f"{path}: bad header entry for {name!r}: {entry!r}") from error
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dtype.itemsize or begin < 0 or data_start + end > size:
            raise WeightsFormatError(
                f"{path}: {name!r} spans bytes {begin}..{end}, which does not fit {count} × {dtype} "
                f"inside the {size}-byte file (truncated?)"
            )
        flat = np.frombuffer(mapped, dtype=dtype, count=count, offset=data_start + begin)
        array = flat.reshape(shape)  # (count,) -> stored shape; still a view of the mapping
        if version != "1" and name in OUTPUT_MAJOR:
            expected = params.VARIABLES_BY_TF_NAME[name].shape
            if shape != expected[::-1]:
                raise WeightsFormatError(
                    f"{path}: {name} is stored with shape {list(shape)}, expected {list(expected[::-1])} "
                    f"(format {version} stores dense kernels output-major, [out, in])"
                )
            array = array.T  # [in, out], F-contiguous
        arrays[name] = array
    pca_arrays = {name: arrays.pop(name) for name in PCA_NAMES if name in arrays}
    check_model_tensors(arrays, source=str(path))
    pca = check_pca(pca_arrays, source=str(path)) if pca_arrays else None
    return arrays, pca, dict(metadata)
