"""LevelDB-style sorted tables, the container of TensorFlow V1 checkpoints (``docs/weight-formats.md`` §A).

``[data block][trailer] … [metaindex block][trailer] [index block][trailer] [footer]``: the footer
points at the index block, whose entries point at the data blocks; each block is a run of
prefix-compressed ``(key, value)`` entries followed by a restart array. Values come back as
``memoryview`` slices of the caller's (memory-mapped) buffer, never copied.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from audioembed import crc32c
from audioembed.errors import WeightsFormatError
from audioembed.vggish.weights.protobuf_wire import read_varint

logger = logging.getLogger(__name__)

FOOTER_SIZE = 48  # two padded block handles (40 bytes) + 8-byte magic
TABLE_MAGIC = bytes.fromhex("57fb808b247547db")  # 0xdb4775248b80fb57, low uint32 first
BLOCK_TRAILER_SIZE = 5  # compression type byte + masked CRC32C
NO_COMPRESSION = 0
SNAPPY_COMPRESSION = 1


@dataclass(frozen=True)
class BlockHandle:
    """Where a block is: its offset and size in bytes (the size excludes the 5-byte trailer)."""

    offset: int
    size: int


def read_handle(buffer: memoryview, pos: int) -> tuple[BlockHandle, int]:
    """Decode a handle (two varint64s: offset, size) at ``pos``; return it and the offset after it."""
    offset, pos = read_varint(buffer, pos)
    size, pos = read_varint(buffer, pos)
    return BlockHandle(offset, size), pos


def data_handles(data: memoryview, path: Path) -> list[BlockHandle]:
    """Check the footer and return the handles of the data blocks, in file order, from the index block."""
    footer = data[len(data) - FOOTER_SIZE :]
    if bytes(footer[40:]) != TABLE_MAGIC:
        raise WeightsFormatError(
            f"{path}: footer magic is {bytes(footer[40:]).hex()}, expected {TABLE_MAGIC.hex()}: "
            "the file is truncated or not a TensorFlow V1 checkpoint"
        )
    try:
        _metaindex, pos = read_handle(footer, 0)
        index, _ = read_handle(footer, pos)
    except WeightsFormatError as error:
        raise WeightsFormatError(f"{path}: corrupted footer: {error}") from error
    handles = []
    for _separator, value in iter_entries(read_block(data, index, path), path, index):
        handle, end = read_handle(value, 0)
        if end != len(value):
            raise WeightsFormatError(f"{path}: index entry of {len(value)} bytes is not a block handle")
        handles.append(handle)
    return handles


def read_block(data: memoryview, handle: BlockHandle, path: Path) -> memoryview:
    """The contents of one block, after checking its trailer (compression type and CRC32C).

    Small blocks are always checked; large ones only with the accelerated CRC (see :mod:`.crc32c`).
    """
    end = handle.offset + handle.size
    if end + BLOCK_TRAILER_SIZE > len(data) - FOOTER_SIZE:
        raise WeightsFormatError(
            f"{path}: bad block handle (offset {handle.offset}, size {handle.size}) past the end of "
            f"the {len(data)}-byte file: truncated or corrupted"
        )
    block = data[handle.offset : end]
    kind = data[end]
    if kind == SNAPPY_COMPRESSION:
        raise WeightsFormatError(
            f"{path}: block at offset {handle.offset} is Snappy-compressed, which TensorFlow's V1 "
            "checkpoint writer never produces; Snappy blocks are not supported"
        )
    if kind != NO_COMPRESSION:
        raise WeightsFormatError(f"{path}: block at offset {handle.offset} has unknown compression {kind}")
    stored = int.from_bytes(data[end + 1 : end + BLOCK_TRAILER_SIZE], "little")
    if crc32c.can_verify(handle.size):
        actual = crc32c.mask(crc32c.crc32c(data[end : end + 1], crc32c.crc32c(block)))
        if actual != stored:
            raise WeightsFormatError(
                f"{path}: CRC mismatch in the {handle.size}-byte block at offset {handle.offset} "
                f"(stored {stored:#010x}, computed {actual:#010x}): the file is corrupted"
            )
    else:
        logger.debug("%s: not verifying %d-byte block without google-crc32c", path, handle.size)
    return block


def iter_entries(block: memoryview, path: Path, handle: BlockHandle) -> Iterator[tuple[bytes, memoryview]]:
    """Yield ``(key, value)`` of each entry in a block; keys are rebuilt from their shared prefixes."""
    if len(block) < 4:
        raise WeightsFormatError(f"{path}: block at offset {handle.offset} is {len(block)} bytes")
    num_restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0:
        raise WeightsFormatError(
            f"{path}: block at offset {handle.offset} claims {num_restarts} restarts in {len(block)} bytes"
        )
    key = b""
    pos = 0
    while pos < limit:
        shared, pos = read_varint(block, pos)
        non_shared, pos = read_varint(block, pos)
        value_length, pos = read_varint(block, pos)
        if shared > len(key) or pos + non_shared + value_length > limit:
            raise WeightsFormatError(
                f"{path}: corrupted entry at offset {handle.offset + pos} (shared {shared}, "
                f"key {non_shared} bytes, value {value_length} bytes)"
            )
        key = key[:shared] + bytes(block[pos : pos + non_shared])
        pos += non_shared
        yield key, block[pos : pos + value_length]
        pos += value_length
