"""Reader of TensorFlow V1 checkpoints (``vggish_model.ckpt``) without TensorFlow.

A V1 checkpoint is a LevelDB-style sorted table (``docs/weight-formats.md`` §A): data blocks, an
empty metaindex block, an index block of handles, a 48-byte footer. The first record (key ``""``)
lists every tensor's name, shape and dtype; each other record holds one tensor slice as a protobuf
``SavedSlice`` whose ``TensorProto`` packs the values. The file is memory-mapped, records are walked
with :mod:`.protobuf_wire`, and each tensor's payload becomes one NumPy array (one copy), so the
288 MB file reads in well under a second.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np

from audioembed.errors import WeightsFormatError
from audioembed.vggish.weights.leveldb_table import (
    FOOTER_SIZE,
    data_handles,
    iter_entries,
    read_block,
)
from audioembed.vggish.weights.protobuf_wire import (
    FIXED32,
    FIXED64,
    LENGTH_DELIMITED,
    VARINT,
    decode_packed_varints,
    iter_fields,
    to_signed64,
)

logger = logging.getLogger(__name__)


# TensorFlow DataType enum -> (numpy dtype of the result, TensorProto field holding the values,
# how that field stores them). "fixed" fields are packed little-endian words; "varint" fields packed
# varints; half and bfloat16 are varints of their 16-bit patterns.
_DTYPES: dict[int, tuple[str, np.dtype, int, str]] = {
    1: ("float32", np.dtype("<f4"), 5, "fixed"),
    2: ("float64", np.dtype("<f8"), 6, "fixed"),
    3: ("int32", np.dtype("<i4"), 7, "varint"),
    4: ("uint8", np.dtype("u1"), 7, "varint"),
    5: ("int16", np.dtype("<i2"), 7, "varint"),
    6: ("int8", np.dtype("i1"), 7, "varint"),
    9: ("int64", np.dtype("<i8"), 10, "varint"),
    10: ("bool", np.dtype("?"), 11, "varint"),
    14: ("bfloat16", np.dtype("<f4"), 13, "bfloat16"),  # widened to float32: NumPy has no bfloat16
    19: ("float16", np.dtype("<f2"), 13, "half"),
}
_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
                9: "int64", 10: "bool", 14: "bfloat16", 19: "float16"}  # fmt: skip

TENSOR_CONTENT_FIELD = 4  # raw little-endian bytes; V1 writers use the *_val fields instead


@dataclass(frozen=True)
class TensorEntry:
    """What the checkpoint's metadata record says about one tensor.

    Attributes
    ----------
    name : str
        Variable name, e.g. ``"vggish/conv1/weights"``.
    shape : tuple of int
        Full shape (``()`` for scalars).
    dtype : str
        TensorFlow dtype name (``"float32"``, ``"int64"``, ``"string"``, ...).
    """

    name: str
    shape: tuple[int, ...]
    dtype: str


def read_tf_checkpoint(
    path: str | PathLike[str], *, names: Collection[str] | None = None
) -> dict[str, np.ndarray]:
    """Read tensors from a TensorFlow V1 checkpoint file.

    Parameters
    ----------
    path : str or PathLike
        The single checkpoint file (``vggish_model.ckpt``).
    names : collection of str, optional
        Tensors to decode; others are listed in the debug log and skipped. ``None`` decodes all
        tensors of a supported dtype.

    Returns
    -------
    tensors : dict of str to np.ndarray
        By TF name, each shaped as the metadata says, C-contiguous, owning its memory.

    Raises
    ------
    WeightsFormatError
        Not a V1 table (bad footer magic, a V2 ``.index``), a compressed or corrupted block (CRC),
        bad handles, truncated records, a requested name that is absent, or a count/shape mismatch.
    """
    path = Path(path)
    with _mapped(path) as data:
        return _read_tensors(data, path, names)


def list_tf_checkpoint(path: str | PathLike[str]) -> list[TensorEntry]:
    """List the tensors a V1 checkpoint declares (name, shape, dtype) without decoding any values."""
    path = Path(path)
    with _mapped(path) as data:
        meta, _ = _scan(data, path, want_records=False)
    return list(meta.values())


def is_v2_index(path: str | PathLike[str]) -> bool:
    """Whether a table file is a V2 checkpoint's ``.index`` (its header record is a bundle header)."""
    path = Path(path)
    with _mapped(path) as data:
        for handle in data_handles(data, path):
            for key, value in iter_entries(read_block(data, handle, path), path, handle):
                # V1's header is SavedTensorSlices.meta (field 1, length-delimited: tag 0x0a); a V2
                # BundleHeaderProto starts with num_shards (field 1, varint: tag 0x08) or is empty.
                return key == b"" and (len(value) == 0 or value[0] != 0x0A)
    return False


@contextlib.contextmanager
def _mapped(path: Path) -> Iterator[memoryview]:
    """The file, memory-mapped read-only, as a memoryview."""
    size = path.stat().st_size
    if size < FOOTER_SIZE:
        raise WeightsFormatError(
            f"{path} is {size} bytes, too short for a TensorFlow checkpoint "
            f"(a {FOOTER_SIZE}-byte footer at least)"
        )
    with open(path, "rb") as file:
        mapping = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield memoryview(mapping)
    finally:
        # If a traceback still holds a view into the mapping, close() refuses; the GC unmaps it later.
        with contextlib.suppress(BufferError):
            mapping.close()


def _read_tensors(data: memoryview, path: Path, names: Collection[str] | None) -> dict[str, np.ndarray]:
    meta, records = _scan(data, path, want_records=True)
    wanted = list(meta) if names is None else list(names)
    missing = [name for name in wanted if name not in meta]
    if missing:
        raise WeightsFormatError(
            f"{path} has no tensor named {missing[0]!r} ({len(missing)} missing); it holds "
            f"{sorted(meta)[:8]}{' ...' if len(meta) > 8 else ''}"
        )
    skipped = sorted(set(meta) - set(wanted))
    if skipped:
        logger.debug("%s: ignoring %d other tensors: %s", path, len(skipped), ", ".join(skipped))
    tensors: dict[str, np.ndarray] = {}
    for name in wanted:
        entry = meta[name]
        if entry.dtype not in {spec[0] for spec in _DTYPES.values()}:
            if names is None:
                logger.info("%s: skipping %r of unsupported dtype %s", path, name, entry.dtype)
                continue
            raise WeightsFormatError(f"{path}: tensor {name!r} has unsupported dtype {entry.dtype!r}")
        slices = records.get(name, [])
        if len(slices) != 1:
            raise WeightsFormatError(
                f"{path}: tensor {name!r} is stored in {len(slices)} slices; only whole (unpartitioned) "
                "variables are supported"
            )
        extents, proto = slices[0]
        _check_full_slice(extents, entry, path)
        tensors[name] = _decode_tensor(proto, entry, path)
    return tensors


def _scan(
    data: memoryview, path: Path, *, want_records: bool
) -> tuple[dict[str, TensorEntry], dict[str, list[tuple[list[tuple[int, int | None]], memoryview]]]]:
    """Walk every record: the metadata of each tensor, and (optionally) its slices' TensorProtos."""
    meta: dict[str, TensorEntry] | None = None
    records: dict[str, list[tuple[list[tuple[int, int | None]], memoryview]]] = {}
    for handle in data_handles(data, path):
        for key, value in iter_entries(read_block(data, handle, path), path, handle):
            if key == b"":
                meta = _parse_header(value, path)
            elif want_records:
                name, extents, proto = _parse_slice_record(value, path)
                records.setdefault(name, []).append((extents, proto))
            elif meta is not None:
                return meta, records  # the header record sorts first: nothing more to learn
    if meta is None:
        raise WeightsFormatError(f"{path} has no metadata record (key ''): not a TensorFlow V1 checkpoint")
    return meta, records


# --- the records: protobuf messages ---------------------------------------------------------------


def _parse_header(value: memoryview, path: Path) -> dict[str, TensorEntry]:
    """Decode ``SavedTensorSlices.meta``: each tensor's name, shape and dtype."""
    if len(value) and value[0] == 0x08:
        raise WeightsFormatError(
            f"{path} is the .index file of a TensorFlow V2 checkpoint (.index + .data-*), which is not "
            "supported: use the official V1 file (`audioembed weights download`) or re-save with "
            "tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V1)"
        )
    meta: dict[str, TensorEntry] = {}
    for field, wire, payload in iter_fields(value):
        if field != 1 or wire != LENGTH_DELIMITED:
            continue
        for meta_field, meta_wire, tensor in iter_fields(payload):
            if meta_field != 1 or meta_wire != LENGTH_DELIMITED:
                continue  # versions (VersionDef)
            name, shape, dtype = "", (), 0
            for f, w, v in iter_fields(tensor):
                if f == 1 and w == LENGTH_DELIMITED:
                    name = _utf8(v, path)
                elif f == 2 and w == LENGTH_DELIMITED:
                    shape = _parse_shape(v, path)
                elif f == 3 and w == VARINT:
                    dtype = v
            meta[name] = TensorEntry(name, shape, _DTYPE_NAMES.get(dtype, f"DataType({dtype})"))
    return meta


def _parse_shape(value: memoryview, path: Path) -> tuple[int, ...]:
    dims = []
    for field, wire, dim in iter_fields(value):
        if field == 2 and wire == LENGTH_DELIMITED:
            size = 0
            for f, w, v in iter_fields(dim):
                if f == 1 and w == VARINT:
                    size = to_signed64(v)
            if size < 0:
                raise WeightsFormatError(f"{path}: a tensor has an unknown dimension ({size})")
            dims.append(size)
        elif field == 3 and wire == VARINT and value:
            raise WeightsFormatError(f"{path}: a tensor has unknown rank")
    return tuple(dims)


def _parse_slice_record(
    value: memoryview, path: Path
) -> tuple[str, list[tuple[int, int | None]], memoryview]:
    """Decode ``SavedTensorSlices.data``: name, extents ``(start, length or None)``, TensorProto bytes."""
    saved = None
    for field, wire, payload in iter_fields(value):
        if field == 2 and wire == LENGTH_DELIMITED:
            saved = payload
    if saved is None:
        raise WeightsFormatError(f"{path}: a record holds no SavedSlice")
    name, extents, proto = None, [], memoryview(b"")
    for field, wire, payload in iter_fields(saved):
        if field == 1 and wire == LENGTH_DELIMITED:
            name = _utf8(payload, path)
        elif field == 2 and wire == LENGTH_DELIMITED:
            extents = [_parse_extent(extent) for f, w, extent in iter_fields(payload) if f == 1 and w == 2]
        elif field == 3 and wire == LENGTH_DELIMITED:
            proto = payload
    if name is None:
        raise WeightsFormatError(f"{path}: a SavedSlice record has no name")
    return name, extents, proto


def _parse_extent(extent: memoryview) -> tuple[int, int | None]:
    start, length = 0, None  # absent length = the full dimension
    for field, wire, value in iter_fields(extent):
        if field == 1 and wire == VARINT:
            start = to_signed64(value)
        elif field == 2 and wire == VARINT:
            length = to_signed64(value)
    return start, None if length == -1 else length  # old writers spell "full" as -1


def _check_full_slice(extents: list[tuple[int, int | None]], entry: TensorEntry, path: Path) -> None:
    if not extents:
        return  # scalars (and whole tensors of old writers) carry an empty slice
    if len(extents) != len(entry.shape):
        raise WeightsFormatError(
            f"{path}: tensor {entry.name!r} of shape {list(entry.shape)} has a slice of rank {len(extents)}"
        )
    for (start, length), dim in zip(extents, entry.shape, strict=True):
        if start != 0 or length not in (None, dim):
            raise WeightsFormatError(
                f"{path}: tensor {entry.name!r} is stored as a partial slice ({extents}); only whole "
                "(unpartitioned) variables are supported"
            )


def _decode_tensor(proto: memoryview, entry: TensorEntry, path: Path) -> np.ndarray:
    """Turn a slice's TensorProto into an array of the entry's dtype and shape (one copy)."""
    dtype_code = next(code for code, spec in _DTYPES.items() if spec[0] == entry.dtype)
    _, dtype, value_field, encoding = _DTYPES[dtype_code]
    count = int(np.prod(entry.shape, dtype=np.int64))
    pieces: list[np.ndarray] = []
    for field, wire, payload in iter_fields(proto):
        if field == TENSOR_CONTENT_FIELD and wire == LENGTH_DELIMITED and encoding == "fixed":
            pieces.append(np.frombuffer(payload, dtype=dtype))
        elif field != value_field:
            continue  # dtype, shape and other *_val fields are absent or irrelevant in V1 records
        elif encoding == "fixed":
            if wire == LENGTH_DELIMITED:  # packed
                if len(payload) % dtype.itemsize:
                    raise WeightsFormatError(
                        f"{path}: {entry.name!r} holds {len(payload)} bytes of {entry.dtype}, not a "
                        "whole number of values"
                    )
                pieces.append(np.frombuffer(payload, dtype=dtype))
            elif wire in (FIXED32, FIXED64):  # one unpacked value
                word = np.array([payload], dtype="<u4" if wire == FIXED32 else "<u8")
                pieces.append(word.view(dtype))
        elif wire == LENGTH_DELIMITED:  # packed varints
            pieces.append(decode_packed_varints(payload))
        elif wire == VARINT:
            pieces.append(np.array([payload], dtype=np.uint64))
    values = np.concatenate(pieces) if pieces else np.zeros(0, dtype=dtype)
    if values.size != count:
        raise WeightsFormatError(
            f"{path}: tensor {entry.name!r} of shape {list(entry.shape)} needs {count} values, "
            f"the record holds {values.size}: truncated or corrupted"
        )
    if encoding == "varint":
        # Negative ints are 64-bit two's complement: reinterpret, then narrow (TF wrote them in range).
        values = values.view(np.int64).astype(dtype)
    elif encoding == "half":
        values = values.astype(np.uint16).view(np.float16)
    elif encoding == "bfloat16":
        values = (values.astype(np.uint32) << np.uint32(16)).view(np.float32)
    # np.concatenate copied the pieces out of the mmap, so the result owns its memory.
    return values.astype(dtype, copy=False).reshape(entry.shape)  # (count,) -> checkpoint shape, C order


def _utf8(value: memoryview, path: Path) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError as error:
        raise WeightsFormatError(f"{path}: a tensor name is not UTF-8: {bytes(value)[:40]!r}") from error
