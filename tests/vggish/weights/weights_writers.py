"""Test-side writers of the foreign weight formats, so readers are tested on full-size files.

Written from the format facts in ``docs/weight-formats.md`` (not by calling TensorFlow or PyTorch):
a TensorFlow V1 table writer, and legacy / zip ``torch.save`` writers that pickle the same globals
PyTorch does. Committed fixtures made by the real libraries (``scripts/make_weight_fixtures.py``)
check that these writers and the readers agree with the real thing.
"""

from __future__ import annotations

import collections
import contextlib
import io
import pickle
import struct
import sys
import types
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from audioembed import crc32c

TABLE_MAGIC = bytes.fromhex("57fb808b247547db")
TF_DTYPES = {"float32": (1, 5), "float64": (2, 6), "int32": (3, 7), "int64": (9, 10)}  # enum, field


# --- protobuf wire encoding ----------------------------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative ints: 64-bit two's complement, 10 bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(field: int, payload: bytes) -> bytes:
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def field_varint(field: int, value: int) -> bytes:
    return varint(field << 3) + varint(value)


# --- TensorFlow V1 checkpoint ----------------------------------------------------------------------


def _payload(array: np.ndarray) -> list[bytes | memoryview]:
    """The TensorProto of ``array`` as buffers: float payloads are views of the array, not copies."""
    dtype_name = array.dtype.name
    _, value_field = TF_DTYPES[dtype_name]
    if dtype_name in ("float32", "float64"):
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
        payload: bytes | memoryview = memoryview(data.reshape(-1)).cast("B")
    else:
        payload = b"".join(varint(int(v)) for v in array.ravel())
    return [varint(value_field << 3 | 2) + varint(len(payload)), payload]


def tensor_proto(array: np.ndarray) -> bytes:
    """The ``TensorProto`` of ``array`` with the values in its ``*_val`` field (packed)."""
    return b"".join(bytes(part) for part in _payload(array))


def _length_delimited(field: int, parts: list[bytes | memoryview]) -> list[bytes | memoryview]:
    return [varint(field << 3 | 2) + varint(sum(len(p) for p in parts)), *parts]


def _header_record(declared: dict[str, tuple[int, tuple[int, ...]]]) -> bytes:
    metas = b""
    for name, (dtype_enum, dims) in sorted(declared.items()):
        shape = b"".join(field_bytes(2, field_varint(1, dim)) for dim in dims)
        full_slice = b"".join(field_bytes(1, b"") for _ in dims)
        meta = (
            field_bytes(1, name.encode())
            + field_bytes(2, shape)
            + field_varint(3, dtype_enum)
            + field_bytes(4, full_slice)
        )
        metas += field_bytes(1, meta)
    versions = field_bytes(2, field_varint(1, 1))
    return field_bytes(1, metas + versions)


def slice_record(name: str, slice_proto: bytes, tensor_proto: bytes) -> bytes:
    """A ``SavedTensorSlices`` record holding one ``SavedSlice``."""
    saved = field_bytes(1, name.encode()) + field_bytes(2, slice_proto) + field_bytes(3, tensor_proto)
    return field_bytes(2, saved)


def full_slice(rank: int) -> bytes:
    """A ``TensorSliceProto`` covering a whole tensor: one empty Extent per dimension."""
    return b"".join(field_bytes(1, b"") for _ in range(rank))


class _BlockBuilder:
    def __init__(self, restart_interval: int = 16) -> None:
        self.parts: list[bytes | memoryview] = []
        self.size = 0
        self.restarts = [0]
        self.count = 0
        self.last_key = b""
        self.restart_interval = restart_interval

    def add(self, key: bytes, value: list[bytes | memoryview]) -> None:
        shared = 0
        if self.count % self.restart_interval == 0 and self.count:
            self.restarts.append(self.size)
        elif self.count:
            while shared < min(len(key), len(self.last_key)) and key[shared] == self.last_key[shared]:
                shared += 1
        value_length = sum(len(part) for part in value)
        entry = varint(shared) + varint(len(key) - shared) + varint(value_length) + key[shared:]
        self.parts += [entry, *value]
        self.size += len(entry) + value_length
        self.count += 1
        self.last_key = key

    def finish(self) -> list[bytes | memoryview]:
        tail = b"".join(struct.pack("<I", r) for r in self.restarts) + struct.pack("<I", len(self.restarts))
        return [*self.parts, tail]


def write_tf_v1(
    path: Path,
    tensors: dict[str, np.ndarray],
    *,
    block_size: int = 262_144,
    raw: dict[str, tuple[int, tuple[int, ...], bytes]] | None = None,
    header: bytes | None = None,
) -> Path:
    """Write ``tensors`` as a TensorFlow V1 checkpoint table (keys: the names, not OrderedCode).

    ``raw`` adds records written verbatim: name -> (DataType enum, declared shape, record value), to
    exercise encodings and errors. ``header`` replaces the metadata record's value.
    """
    raw = raw or {}
    declared = {name: (TF_DTYPES[a.dtype.name][0], a.shape) for name, a in tensors.items()}
    declared.update({name: (dtype_enum, dims) for name, (dtype_enum, dims, _) in raw.items()})
    values: dict[str, list[bytes | memoryview]] = {}
    for name, array in tensors.items():
        saved = [field_bytes(1, name.encode()) + field_bytes(2, full_slice(array.ndim))]
        saved += _length_delimited(3, _payload(array))
        values[name] = _length_delimited(2, saved)  # SavedTensorSlices.data, without copying the values
    values.update({name: [record] for name, (_, _, record) in raw.items()})
    offset = 0
    index = _BlockBuilder(restart_interval=1)
    with open(path, "wb") as file:

        def emit(block: list[bytes | memoryview]) -> tuple[int, int]:
            nonlocal offset
            crc = 0
            for part in block:
                file.write(part)
                crc = crc32c.crc32c(part, crc)
            kind = b"\x00"  # no compression
            file.write(kind + struct.pack("<I", crc32c.mask(crc32c.crc32c(kind, crc))))
            size = sum(len(part) for part in block)
            handle = (offset, size)
            offset += size + 5
            return handle

        block = _BlockBuilder()
        records = [(b"", [_header_record(declared) if header is None else header])]
        records += [(name.encode(), values[name]) for name in sorted(values)]
        for key, value in records:
            block.add(key, value)
            if block.size >= block_size:
                handle = emit(block.finish())
                index.add(block.last_key, [varint(handle[0]) + varint(handle[1])])
                block = _BlockBuilder()
        if block.count:
            handle = emit(block.finish())
            index.add(block.last_key + b"\xff", [varint(handle[0]) + varint(handle[1])])
        metaindex_handle = emit(_BlockBuilder().finish())
        index_handle = emit(index.finish())
        handles = b"".join(varint(v) for v in (*metaindex_handle, *index_handle))
        file.write(handles.ljust(40, b"\x00") + TABLE_MAGIC)
    return path


# --- torch.save, legacy and zip --------------------------------------------------------------------

_STORAGE_NAMES = {"float32": "FloatStorage", "float64": "DoubleStorage", "int64": "LongStorage"}
_ALL_STORAGES = ("FloatStorage", "DoubleStorage", "LongStorage", "BFloat16Storage", "HalfStorage")


@contextlib.contextmanager
def _fake_torch() -> Iterator[dict[str, type]]:
    """Stand-in ``torch`` modules so ``pickle`` writes the same global names ``torch.save`` does."""
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    classes = {}
    for name in _ALL_STORAGES:
        cls = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(torch, name, cls)
        classes[name] = cls

    def _rebuild_tensor_v2(*args):  # pragma: no cover - only pickled by reference
        raise RuntimeError("never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield {"classes": classes, "rebuild": _rebuild_tensor_v2}
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


class FakeStorage:
    """Raw storage bytes; ``storage_name`` overrides the torch class (e.g. BFloat16Storage of uint16)."""

    def __init__(self, key: str, data: np.ndarray, storage_name: str | None = None) -> None:
        self.key = key
        self.data = np.ascontiguousarray(data).ravel()
        self.storage_name = storage_name or _STORAGE_NAMES[self.data.dtype.name]


class FakeTensor:
    """Pickles like a torch tensor: ``_rebuild_tensor_v2(storage, offset, size, stride, False, {})``."""

    rebuild = None

    def __init__(self, storage: FakeStorage, offset: int, size: tuple, stride: tuple) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def __reduce__(self):
        args = (self.storage, self.offset, self.size, self.stride, False, collections.OrderedDict())
        return (FakeTensor.rebuild, args)


def tensors_from_arrays(arrays: dict[str, np.ndarray]) -> collections.OrderedDict:
    """Wrap each array as a contiguous FakeTensor with its own storage."""
    out = collections.OrderedDict()
    for i, (name, array) in enumerate(arrays.items()):
        array = np.ascontiguousarray(array)
        stride = tuple(s // array.itemsize for s in array.strides)
        out[name] = FakeTensor(FakeStorage(str(i), array), 0, array.shape, stride)
    return out


def _storages(obj) -> dict[str, FakeStorage]:
    found = {}
    for value in obj.values() if isinstance(obj, dict) else []:
        if isinstance(value, FakeTensor):
            found[value.storage.key] = value.storage
    return found


def write_torch_legacy(path: Path, obj: dict, *, sys_info: dict | None = None) -> Path:
    """``torch.save(obj, path, _use_new_zipfile_serialization=False)`` for FakeTensors / arrays."""
    with _fake_torch() as fake, open(path, "wb") as file:
        FakeTensor.rebuild = fake["rebuild"]

        class _Pickler(pickle.Pickler):
            def persistent_id(self, value):
                if isinstance(value, FakeStorage):
                    cls = fake["classes"][value.storage_name]
                    return ("storage", cls, value.key, "cpu", value.data.size, None)
                return None

        pickle.dump(0x1950A86A20F9469CFC6C, file, protocol=2)
        pickle.dump(1001, file, protocol=2)
        if sys_info is None:
            sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4}}
        pickle.dump(sys_info, file, protocol=2)
        _Pickler(file, protocol=2).dump(obj)
        storages = _storages(obj)
        keys = sorted(storages)
        pickle.dump(keys, file, protocol=2)
        for key in keys:
            data = storages[key].data
            file.write(struct.pack("<q", data.size))
            file.write(data.astype(data.dtype.newbyteorder("<")).tobytes())
    return path


def write_torch_zip(path: Path, obj: dict, *, folder: str = "archive") -> Path:
    """``torch.save(obj, path)`` (zip container, stored members) for FakeTensors / arrays."""
    with _fake_torch() as fake:
        FakeTensor.rebuild = fake["rebuild"]

        class _Pickler(pickle.Pickler):
            def persistent_id(self, value):
                if isinstance(value, FakeStorage):
                    cls = fake["classes"][value.storage_name]
                    return ("storage", cls, value.key, "cpu", value.data.size)
                return None

        buffer = io.BytesIO()
        _Pickler(buffer, protocol=2).dump(obj)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{folder}/data.pkl", buffer.getvalue())
        archive.writestr(f"{folder}/byteorder", "little")
        for key, storage in sorted(_storages(obj).items()):
            archive.writestr(f"{folder}/data/{key}", storage.data.tobytes())
        archive.writestr(f"{folder}/version", "3\n")
    return path
