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

from audioembed.vggish.weights import crc32c

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


def _tensor_values(array: np.ndarray) -> bytes:
    dtype_name = array.dtype.name
    _, value_field = TF_DTYPES[dtype_name]
    if dtype_name in ("float32", "float64"):
        payload = array.astype(array.dtype.newbyteorder("<")).tobytes()
    else:
        payload = b"".join(varint(int(v)) for v in array.ravel())
    return field_bytes(value_field, payload)


def _header_record(tensors: dict[str, np.ndarray]) -> bytes:
    metas = b""
    for name, array in sorted(tensors.items()):
        shape = b"".join(field_bytes(2, field_varint(1, dim)) for dim in array.shape)
        full_slice = b"".join(field_bytes(1, b"") for _ in array.shape)
        meta = (
            field_bytes(1, name.encode())
            + field_bytes(2, shape)
            + field_varint(3, TF_DTYPES[array.dtype.name][0])
            + field_bytes(4, full_slice)
        )
        metas += field_bytes(1, meta)
    versions = field_bytes(2, field_varint(1, 1))
    return field_bytes(1, metas + versions)


def _slice_record(name: str, array: np.ndarray) -> bytes:
    full_slice = b"".join(field_bytes(1, b"") for _ in array.shape)
    saved = field_bytes(1, name.encode()) + field_bytes(2, full_slice) + field_bytes(3, _tensor_values(array))
    return field_bytes(2, saved)


class _BlockBuilder:
    def __init__(self, restart_interval: int = 16) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.restarts = [0]
        self.count = 0
        self.last_key = b""
        self.restart_interval = restart_interval

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.count % self.restart_interval == 0 and self.count:
            self.restarts.append(self.size)
        elif self.count:
            while shared < min(len(key), len(self.last_key)) and key[shared] == self.last_key[shared]:
                shared += 1
        entry = varint(shared) + varint(len(key) - shared) + varint(len(value)) + key[shared:]
        self.parts += [entry, value]
        self.size += len(entry) + len(value)
        self.count += 1
        self.last_key = key

    def finish(self) -> bytes:
        tail = b"".join(struct.pack("<I", r) for r in self.restarts) + struct.pack("<I", len(self.restarts))
        return b"".join(self.parts) + tail


def write_tf_v1(
    path: Path, tensors: dict[str, np.ndarray], *, block_size: int = 262_144, extra_header: bytes = b""
) -> Path:
    """Write ``tensors`` as a TensorFlow V1 checkpoint table (keys: the names, not OrderedCode)."""
    offset = 0
    index = _BlockBuilder(restart_interval=1)
    with open(path, "wb") as file:

        def emit(block: bytes) -> tuple[int, int]:
            nonlocal offset
            kind = b"\x00"
            crc = crc32c.mask(crc32c.crc32c(kind, crc32c.crc32c(block)))
            file.write(block)
            file.write(kind + struct.pack("<I", crc))
            handle = (offset, len(block))
            offset += len(block) + 5
            return handle

        block = _BlockBuilder()
        records = [(b"", extra_header + _header_record(tensors))]
        records += [(name.encode(), _slice_record(name, tensors[name])) for name in sorted(tensors)]
        for key, value in records:
            block.add(key, value)
            if block.size >= block_size:
                handle = emit(block.finish())
                index.add(block.last_key, varint(handle[0]) + varint(handle[1]))
                block = _BlockBuilder()
        if block.count:
            handle = emit(block.finish())
            index.add(block.last_key + b"\xff", varint(handle[0]) + varint(handle[1]))
        metaindex_handle = emit(_BlockBuilder().finish())
        index_handle = emit(index.finish())
        handles = b"".join(varint(v) for v in (*metaindex_handle, *index_handle))
        file.write(handles.ljust(40, b"\x00") + TABLE_MAGIC)
    return path


# --- torch.save, legacy and zip --------------------------------------------------------------------

_STORAGE_NAMES = {"float32": "FloatStorage", "float64": "DoubleStorage", "int64": "LongStorage"}


@contextlib.contextmanager
def _fake_torch() -> Iterator[dict[str, type]]:
    """Stand-in ``torch`` modules so ``pickle`` writes the same global names ``torch.save`` does."""
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    classes = {}
    for name in _STORAGE_NAMES.values():
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
    def __init__(self, key: str, data: np.ndarray) -> None:
        self.key = key
        self.data = np.ascontiguousarray(data).ravel()


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
    for value in obj.values():
        if isinstance(value, FakeTensor):
            found[value.storage.key] = value.storage
    return found


def write_torch_legacy(path: Path, obj: dict) -> Path:
    """``torch.save(obj, path, _use_new_zipfile_serialization=False)`` for FakeTensors / arrays."""
    with _fake_torch() as fake, open(path, "wb") as file:
        FakeTensor.rebuild = fake["rebuild"]

        class _Pickler(pickle.Pickler):
            def persistent_id(self, value):
                if isinstance(value, FakeStorage):
                    cls = fake["classes"][_STORAGE_NAMES[value.data.dtype.name]]
                    return ("storage", cls, value.key, "cpu", value.data.size, None)
                return None

        pickle.dump(0x1950A86A20F9469CFC6C, file, protocol=2)
        pickle.dump(1001, file, protocol=2)
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
                    cls = fake["classes"][_STORAGE_NAMES[value.data.dtype.name]]
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
