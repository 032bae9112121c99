"""Just enough of the protobuf wire format to read TensorFlow checkpoint records, without protobuf.

Messages are walked field by field; length-delimited payloads come back as ``memoryview`` slices of
the caller's buffer, so a 200 MB ``float_val`` is never copied before NumPy views it. Packed varints
are decoded with NumPy, not one Python call per number.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from audioembed.errors import WeightsFormatError

# Wire types (the low three bits of a tag).
VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

_MAX_VARINT_BYTES = 10  # 64 bits at 7 bits per byte


def read_varint(buffer: memoryview, pos: int) -> tuple[int, int]:
    """Decode one unsigned LEB128 varint (up to 64 bits).

    Parameters
    ----------
    buffer : memoryview
        Bytes holding the varint (format ``"B"``).
    pos : int
        Offset of its first byte.

    Returns
    -------
    value : int
        The decoded unsigned value.
    end : int
        Offset just after its last byte.
    """
    result = 0
    shift = 0
    end = len(buffer)
    for index in range(pos, min(pos + _MAX_VARINT_BYTES, end)):
        byte = buffer[index]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, index + 1
        shift += 7
    if pos + _MAX_VARINT_BYTES > end:
        raise WeightsFormatError(f"truncated varint at offset {pos} (buffer of {end} bytes)")
    raise WeightsFormatError(f"varint longer than 10 bytes at offset {pos}")


def to_signed64(value: int) -> int:
    """Reinterpret an unsigned 64-bit varint as two's complement (how protobuf stores negative ints)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def iter_fields(buffer: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Walk the top-level fields of one serialized message.

    Parameters
    ----------
    buffer : memoryview
        The message bytes (format ``"B"``).

    Yields
    ------
    field : int
        Field number.
    wire_type : int
        One of :data:`VARINT`, :data:`FIXED64`, :data:`LENGTH_DELIMITED`, :data:`FIXED32`.
    value : int or memoryview
        The integer for varint and fixed fields (unsigned), the payload slice for length-delimited ones.
    """
    pos = 0
    end = len(buffer)
    while pos < end:
        tag, pos = read_varint(buffer, pos)
        field, wire_type = tag >> 3, tag & 7
        if field == 0:
            raise WeightsFormatError(f"invalid protobuf field number 0 at offset {pos}")
        if wire_type == VARINT:
            value, pos = read_varint(buffer, pos)
            yield field, wire_type, value
        elif wire_type == LENGTH_DELIMITED:
            length, pos = read_varint(buffer, pos)
            if pos + length > end:
                raise WeightsFormatError(
                    f"protobuf field {field} claims {length} bytes at offset {pos}, "
                    f"but only {end - pos} remain"
                )
            yield field, wire_type, buffer[pos : pos + length]
            pos += length
        elif wire_type in (FIXED32, FIXED64):
            size = 4 if wire_type == FIXED32 else 8
            if pos + size > end:
                raise WeightsFormatError(f"truncated fixed{size * 8} protobuf field {field} at offset {pos}")
            yield field, wire_type, int.from_bytes(buffer[pos : pos + size], "little")
            pos += size
        else:
            # Groups (3, 4) are deprecated and never written by TensorFlow; anything else is garbage.
            raise WeightsFormatError(f"unsupported protobuf wire type {wire_type} for field {field}")


def decode_packed_varints(payload: memoryview) -> np.ndarray:
    """Decode a packed run of varints at NumPy speed.

    Parameters
    ----------
    payload : memoryview
        Concatenated varints, nothing else.

    Returns
    -------
    values : np.ndarray [shape=(n,), uint64]
        The unsigned values; view as int64 for two's-complement negatives.
    """
    data = np.frombuffer(payload, dtype=np.uint8)
    if data.size == 0:
        return np.zeros(0, dtype=np.uint64)
    is_last = data < 0x80
    if not is_last[-1]:
        raise WeightsFormatError(f"packed varints end mid-value ({data.size} bytes)")
    ends = np.flatnonzero(is_last)
    starts = np.concatenate(([0], ends[:-1] + 1))
    if np.any(ends - starts >= _MAX_VARINT_BYTES):
        raise WeightsFormatError("packed varint longer than 10 bytes")
    # Position of each byte inside its varint: 0 for the first byte, 1 for the next, ...
    position = np.arange(data.size) - np.repeat(starts, ends - starts + 1)
    # Shifts of 63 keep only the lowest bit of a 10th byte, which is what a 64-bit varint means.
    parts = (data & 0x7F).astype(np.uint64) << (7 * position).astype(np.uint64)
    return np.bitwise_or.reduceat(parts, starts)
