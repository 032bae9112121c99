"""Safe reader of PyTorch ``.pth`` files (legacy and zip containers) without PyTorch.

A ``.pth`` is a pickle, and an unrestricted ``pickle.load`` runs whatever code the file names. This
reader's unpickler resolves only an allow-list of globals (``docs/weight-formats.md`` §B.4): the
state-dict container, tensor rebuild functions, typed storages, and NumPy's array reconstruction. Any
other global raises :class:`~audioembed.errors.UnsafePickleError` naming it, before anything runs.
Tensors come back as NumPy arrays, honouring storage offsets, strides and shared storages.
"""

from __future__ import annotations

import contextlib
import io
import mmap
import pickle
import struct
import zipfile
import zlib
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from audioembed.errors import WeightsFormatError
from audioembed.vggish.weights.torch_unpickler import (
    PendingTensor,
    RestrictedUnpickler,
    StorageRef,
    StorageType,
)

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C  # first pickle of a legacy torch.save file
LEGACY_PROTOCOL_VERSION = 1001  # second pickle
# The first bytes of every legacy file: protocol-2 PROTO opcode, then LONG1 of the magic number.
LEGACY_PREFIX = bytes.fromhex("80028a0a6cfc9c46f9206aa85019")
ZIP_PREFIX = b"PK\x03\x04"
# What zipfile raises on a corrupted archive besides BadZipFile: a seek to a negative offset (OSError), a
# bad deflate stream (zlib.error), an unknown compression method (NotImplementedError), an "encrypted" flag
# (RuntimeError), a header that ends early (EOFError, struct.error, ValueError).
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    struct.error,
    ValueError,
)


def read_torch_file(path: str | PathLike[str]) -> dict[str, np.ndarray]:
    """Read the dict saved in a ``.pth`` file (legacy or zip container) as NumPy arrays.

    Parameters
    ----------
    path : str or PathLike
        A file written by ``torch.save`` of a dict (a state dict, or a dict of NumPy arrays).

    Returns
    -------
    arrays : dict of str to np.ndarray
        Each tensor copied out of its storage with its offset and strides applied (C-contiguous).
        bfloat16 tensors are widened to float32.

    Raises
    ------
    UnsafePickleError
        The pickle names a global outside the allow-list (e.g. ``os.system``).
    WeightsFormatError
        Not a torch file, truncated, inconsistent storages, or not a dict of tensors/arrays.
    """
    path = Path(path)
    with open(path, "rb") as file:
        head = file.read(len(LEGACY_PREFIX))
    if head.startswith(ZIP_PREFIX):
        obj = _read_zip(path)
    elif head == LEGACY_PREFIX:
        obj = _read_legacy(path)
    else:
        raise WeightsFormatError(f"{path} is not a PyTorch file (starts with {head.hex(' ')})")
    return _as_array_dict(obj, path)


# --- legacy container: pickles back to back, then raw storages -------------------------------------


def _read_legacy(path: Path) -> Any:
    source = str(path)
    storages: dict[str, StorageRef] = {}

    def persistent(pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] == "storage"):
            raise WeightsFormatError(f"{source}: unexpected persistent id {pid!r}")
        _, kind, key, _location, numel, view = pid
        ref = _storage_ref(kind, key, numel, source)
        if view is not None:
            # Old torch saved views of one root storage: (root key, offset, size) in elements.
            view_key, offset, size = view
            ref = StorageRef(str(view_key), ref.kind, int(size), (str(key), int(offset), int(size)))
        known = storages.setdefault(ref.key, ref)
        if known.kind != ref.kind:
            raise WeightsFormatError(
                f"{source}: storage {ref.key!r} used as {known.kind.name} and {ref.kind.name}"
            )
        return ref

    try:
        with open(path, "rb") as file:
            if _restricted_load(file, source) != LEGACY_MAGIC_NUMBER:
                raise WeightsFormatError(f"{source}: bad legacy torch magic number")
            protocol = _restricted_load(file, source)
            if protocol != LEGACY_PROTOCOL_VERSION:
                raise WeightsFormatError(f"{source}: unsupported legacy torch protocol {protocol!r}")
            sys_info = _restricted_load(file, source)
            if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
                raise WeightsFormatError(f"{source}: only little-endian files are supported ({sys_info!r})")
            obj = RestrictedUnpickler(file, source=source, persistent=persistent).load()
            keys = _restricted_load(file, source)
            data_start = file.tell()
    except (EOFError, pickle.UnpicklingError, struct.error, ValueError) as error:
        if isinstance(error, WeightsFormatError):
            raise
        raise WeightsFormatError(f"{source}: truncated or corrupted torch file: {error}") from error
    if not isinstance(keys, list) or not all(isinstance(key, str) for key in keys):
        raise WeightsFormatError(f"{source}: storage key list is {type(keys).__name__}, not a list of str")

    arrays: dict[str, np.ndarray] = {}
    with open(path, "rb") as file, _mapped(file) as mapping:
        pos = data_start
        for key in keys:
            ref = storages.get(key)
            if ref is None:
                raise WeightsFormatError(f"{source}: storage {key!r} is stored but no tensor uses it")
            if pos + 8 > len(mapping):
                raise WeightsFormatError(f"{source}: truncated before storage {key!r}")
            count = int.from_bytes(mapping[pos : pos + 8], "little", signed=True)
            pos += 8
            nbytes = count * ref.kind.dtype.itemsize
            if count < 0 or pos + nbytes > len(mapping):
                raise WeightsFormatError(
                    f"{source}: storage {key!r} claims {count} elements; the file is truncated"
                )
            # A view of the mapping: each tensor is copied out of it once, when resolved below.
            arrays[key] = np.frombuffer(mapping, dtype=ref.kind.dtype, count=count, offset=pos)
            pos += nbytes
        for ref in storages.values():
            if ref.key not in arrays:
                raise WeightsFormatError(f"{source}: storage {ref.key!r} is used but not stored")
        result = _resolve(obj, arrays, source)
        arrays.clear()  # drop the views so the mapping can close
    return result


@contextlib.contextmanager
def _mapped(file: io.BufferedReader) -> Iterator[mmap.mmap]:
    """Map a file read-only; closing tolerates views still held by a traceback (the GC unmaps later)."""
    mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield mapping
    finally:
        with contextlib.suppress(BufferError):
            mapping.close()


def _restricted_load(file: io.BufferedReader, source: str) -> Any:
    return RestrictedUnpickler(file, source=source).load()


# --- zip container: data.pkl + one member per storage ---------------------------------------------


def _read_zip(path: Path) -> Any:
    source = str(path)
    try:
        return _read_zip_archive(path, source)
    except WeightsFormatError:
        raise
    except ZIP_ERRORS as error:  # the pickle's own failures are WeightsFormatErrors already
        raise WeightsFormatError(f"{source}: corrupted zip container: {error}") from error


def _read_zip_archive(path: Path, source: str) -> Any:
    archive = zipfile.ZipFile(path)
    with archive, open(path, "rb") as file, _mapped(file) as mapping:
        names = archive.namelist()
        prefix = names[0].split("/", 1)[0] if names and "/" in names[0] else ""
        if f"{prefix}/data.pkl" not in names:
            raise WeightsFormatError(f"{source}: zip has no {prefix}/data.pkl: not a torch file")
        byteorder = "little"
        if f"{prefix}/byteorder" in names:
            byteorder = archive.read(f"{prefix}/byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise WeightsFormatError(f"{source}: unknown byteorder {byteorder!r}")
        arrays: dict[str, np.ndarray] = {}

        def persistent(pid: Any) -> StorageRef:
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
                raise WeightsFormatError(f"{source}: unexpected persistent id {pid!r}")
            _, kind, key, _location, numel = pid
            ref = _storage_ref(kind, key, numel, source)
            if ref.key not in arrays:
                member = f"{prefix}/data/{ref.key}"
                dtype = ref.kind.dtype.newbyteorder("<" if byteorder == "little" else ">")
                start, size = _member_span(archive, member, len(mapping), source)
                if size != ref.numel * dtype.itemsize:
                    raise WeightsFormatError(
                        f"{source}: {member} holds {size} bytes, expected {ref.numel} × {dtype.itemsize}"
                    )
                if start is None:  # a compressed member: inflate it
                    raw = np.frombuffer(archive.read(member), dtype=dtype)
                else:  # stored: a view of the mapped bytes; tensors are copied out of it when resolved
                    raw = np.frombuffer(mapping, dtype=dtype, count=ref.numel, offset=start)
                arrays[ref.key] = raw.astype(ref.kind.dtype, copy=False)  # copies only if big-endian
            return ref

        obj = RestrictedUnpickler(
            io.BytesIO(archive.read(f"{prefix}/data.pkl")), source=source, persistent=persistent
        ).load()
        result = _resolve(obj, arrays, source)
        arrays.clear()  # drop the views so the mapping can close
    return result


def _member_span(
    archive: zipfile.ZipFile, member: str, file_size: int, source: str
) -> tuple[int | None, int]:
    """Where a member's bytes sit in the file: ``(offset, size)``, or ``(None, size)`` if compressed."""
    try:
        info = archive.getinfo(member)
    except KeyError:
        raise WeightsFormatError(f"{source}: zip has no member {member}") from None
    if info.compress_type != zipfile.ZIP_STORED:
        return None, info.file_size
    # Local header: 30 fixed bytes, then the name and an extra field whose lengths sit at 26 and 28.
    archive.fp.seek(info.header_offset)
    header = archive.fp.read(30)
    if len(header) != 30 or header[:4] != ZIP_PREFIX:
        raise WeightsFormatError(f"{source}: bad local header for {member}")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    start = info.header_offset + 30 + name_length + extra_length
    if start + info.file_size > file_size:
        raise WeightsFormatError(f"{source}: {member} runs past the end of the file (truncated)")
    return start, info.file_size


# --- shared: storages, tensors, the result ---------------------------------------------------------


def _storage_ref(kind: Any, key: Any, numel: Any, source: str) -> StorageRef:
    if not isinstance(kind, StorageType):
        raise WeightsFormatError(f"{source}: storage of unsupported type {kind!r}")
    if not isinstance(numel, int) or numel < 0:
        raise WeightsFormatError(f"{source}: storage {key!r} has bad size {numel!r}")
    return StorageRef(str(key), kind, numel)


def _tensor(pending: PendingTensor, arrays: dict[str, np.ndarray], source: str) -> np.ndarray:
    ref = pending.storage
    storage = arrays[ref.key]
    if ref.view is not None:  # a legacy view: a window on the root storage
        _, view_offset, view_size = ref.view
        storage = storage[view_offset : view_offset + view_size]
    size, stride, offset = pending.size, pending.stride, pending.offset
    if len(size) != len(stride) or offset < 0 or min(size, default=0) < 0 or min(stride, default=0) < 0:
        raise WeightsFormatError(
            f"{source}: bad tensor geometry: offset {offset}, size {size}, stride {stride}"
        )
    if 0 in size:
        result = np.zeros(size, dtype=storage.dtype)
    else:
        last = offset + sum(
            (n - 1) * s for n, s in zip(size, stride, strict=True)
        )  # largest element index used
        if last >= storage.size:
            raise WeightsFormatError(
                f"{source}: tensor of size {list(size)}, stride {list(stride)}, offset {offset} reaches "
                f"element {last} of a {storage.size}-element storage"
            )
        itemsize = storage.itemsize
        view = np.lib.stride_tricks.as_strided(
            storage[offset:], shape=size, strides=[s * itemsize for s in stride], writeable=False
        )
        result = np.array(view, order="C")  # copy: tensors sharing a storage must not alias
    if ref.kind.bfloat16:
        result = (result.astype(np.uint32) << np.uint32(16)).view(np.float32)
    return result


def _resolve(obj: Any, arrays: dict[str, np.ndarray], source: str) -> Any:
    if isinstance(obj, PendingTensor):
        return _tensor(obj, arrays, source)
    if isinstance(obj, dict):
        return type(obj)((key, _resolve(value, arrays, source)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_resolve(value, arrays, source) for value in obj)
    return obj


def _as_array_dict(obj: Any, path: Path) -> dict[str, np.ndarray]:
    if not isinstance(obj, dict):
        raise WeightsFormatError(f"{path} holds a {type(obj).__name__}, expected a dict of tensors")
    result: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray) or value.dtype.hasobject:
            raise WeightsFormatError(
                f"{path}: entry {key!r} is a {type(value).__name__}, expected a tensor or numeric array"
            )
        result[key] = value
    return result
