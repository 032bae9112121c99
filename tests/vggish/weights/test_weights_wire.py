"""Protobuf wire decoding and CRC32C: the primitives under the TF checkpoint reader."""

from __future__ import annotations

import numpy as np
import pytest
from weights_writers import field_bytes, field_varint, varint

from audioembed import crc32c
from audioembed.errors import WeightsFormatError
from audioembed.vggish.weights.protobuf_wire import (
    decode_packed_varints,
    iter_fields,
    read_varint,
    to_signed64,
)


def _naive_packed(payload: bytes) -> list[int]:
    """Loop twin of decode_packed_varints."""
    values, pos = [], 0
    while pos < len(payload):
        value, pos = read_varint(memoryview(payload), pos)
        values.append(value)
    return values


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**32, 2**63 - 1, 2**64 - 1])
def test_varint_round_trip(value):
    encoded = varint(value)
    assert read_varint(memoryview(encoded), 0) == (value, len(encoded))


def test_negative_ints_are_ten_byte_twos_complement():
    encoded = varint(-8)
    assert len(encoded) == 10
    value, _ = read_varint(memoryview(encoded), 0)
    assert to_signed64(value) == -8


def test_packed_varints_match_the_loop_twin_on_random_values():
    rng = np.random.default_rng(0)
    values = [int(v) for v in rng.integers(-(2**62), 2**62, size=500)] + [0, 1, -1, 2**63 - 1, -(2**63)]
    payload = b"".join(varint(v) for v in values)
    decoded = decode_packed_varints(memoryview(payload))
    assert decoded.tolist() == _naive_packed(payload)
    assert decoded.view(np.int64).tolist() == values


def test_empty_packed_run_is_an_empty_array():
    assert decode_packed_varints(memoryview(b"")).size == 0


def test_packed_varints_ending_mid_value_are_an_error():
    with pytest.raises(WeightsFormatError, match="end mid-value"):
        decode_packed_varints(memoryview(b"\x05\x80"))


def test_truncated_varint_is_an_error():
    with pytest.raises(WeightsFormatError, match="truncated varint at offset 0"):
        read_varint(memoryview(b"\x80\x80"), 0)


def test_overlong_varint_is_an_error():
    with pytest.raises(WeightsFormatError, match="longer than 10 bytes"):
        read_varint(memoryview(b"\x80" * 11 + b"\x01"), 0)


def test_fields_of_every_wire_type():
    message = (
        field_varint(1, 150)
        + field_bytes(2, b"abc")
        + varint(3 << 3 | 5)
        + (7).to_bytes(4, "little")
        + varint(4 << 3 | 1)
        + (9).to_bytes(8, "little")
    )
    fields = [
        (f, w, bytes(v) if isinstance(v, memoryview) else v) for f, w, v in iter_fields(memoryview(message))
    ]
    assert fields == [(1, 0, 150), (2, 2, b"abc"), (3, 5, 7), (4, 1, 9)]


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (varint(1 << 3 | 3), "unsupported protobuf wire type 3"),
        (field_bytes(1, b"abcdef")[:-2], "claims 6 bytes"),
        (varint(2 << 3 | 5) + b"\x00", "truncated fixed32"),
        (b"\x00\x01", "field number 0"),
    ],
)
def test_malformed_messages_are_errors(message, error):
    with pytest.raises(WeightsFormatError, match=error):
        list(iter_fields(memoryview(message)))


def test_crc32c_check_value_in_both_implementations():
    assert crc32c.crc32c(b"123456789") == 0xE3069283
    assert crc32c.crc32c_python(b"123456789") == 0xE3069283


def test_crc32c_continues_across_pieces_and_matches_the_fallback():
    data = np.random.default_rng(1).integers(0, 256, size=20_000, dtype=np.uint8).tobytes()
    whole = crc32c.crc32c_python(data)
    assert crc32c.crc32c(memoryview(data)) == whole
    assert crc32c.crc32c(data[7000:], crc32c.crc32c(data[:7000])) == whole
    assert crc32c.crc32c_python(data[7000:], crc32c.crc32c_python(data[:7000])) == whole


def test_mask_round_trips_and_matches_leveldb():
    assert crc32c.unmask(crc32c.mask(0x12345678)) == 0x12345678
    # The doc's tiny fixture: its data block trailer stores CRC d7 91 84 16 (masked).
    assert crc32c.mask(0) == 0xA282EAD8


def test_without_the_accelerated_crc_only_small_blocks_are_verified(monkeypatch):
    monkeypatch.setattr(crc32c, "ACCELERATED", False)
    assert crc32c.can_verify(crc32c.PURE_PYTHON_LIMIT)
    assert not crc32c.can_verify(crc32c.PURE_PYTHON_LIMIT + 1)
    monkeypatch.setattr(crc32c, "ACCELERATED", True)
    assert crc32c.can_verify(300_000_000)
