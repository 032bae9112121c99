"""TFRecord framing and AudioSet SequenceExamples, written and read without TensorFlow."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from audioembed.bulk import tfrecord
from audioembed.crc32c import crc32c
from audioembed.errors import InvalidInputError


def test_masked_crc_follows_the_tfrecord_formula():
    crc = crc32c(b"abc")
    expected = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
    assert tfrecord.masked_crc32c(b"abc") == expected


def test_record_framing_layout():
    stream = io.BytesIO()
    tfrecord.write_record(stream, b"hello")
    raw = stream.getvalue()
    assert struct.unpack("<Q", raw[:8]) == (5,)
    assert raw[12:17] == b"hello" and len(raw) == 8 + 4 + 5 + 4


def test_sequence_example_round_trip_in_audioset_layout():
    rng = np.random.default_rng(0)
    embeddings = rng.integers(0, 256, size=(4, 128), dtype=np.uint8)
    stream = io.BytesIO()
    for clip_id, rows in (("clips/one", embeddings), ("two", embeddings[:0])):
        payload = tfrecord.encode_sequence_example(
            video_id=clip_id, start_time_seconds=0.0, end_time_seconds=3.84, embeddings=rows
        )
        tfrecord.write_record(stream, payload)
    stream.seek(0)
    records = [tfrecord.decode_sequence_example(data) for data in tfrecord.read_records(stream)]
    assert [r.video_id for r in records] == ["clips/one", "two"]
    np.testing.assert_array_equal(records[0].embeddings, embeddings)
    assert records[1].embeddings.shape == (0, 128)
    assert records[0].end_time_seconds == pytest.approx(3.84)


def test_corruption_and_truncation_are_detected():
    stream = io.BytesIO()
    tfrecord.write_record(stream, b"payload-bytes")
    data = bytearray(stream.getvalue())
    flipped = bytes(data[:14]) + bytes([data[14] ^ 1]) + bytes(data[15:])
    with pytest.raises(InvalidInputError, match="data CRC mismatch"):
        list(tfrecord.read_records(io.BytesIO(flipped)))
    with pytest.raises(InvalidInputError, match="truncated in record 0"):
        list(tfrecord.read_records(io.BytesIO(bytes(data[:-3]))))
    with pytest.raises(InvalidInputError, match="length CRC mismatch"):
        list(tfrecord.read_records(io.BytesIO(b"\x05" + bytes(data[1:]))))


def test_embeddings_must_be_uint8_rows():
    with pytest.raises(InvalidInputError, match="uint8"):
        tfrecord.encode_sequence_example(
            video_id="x", start_time_seconds=0, end_time_seconds=1, embeddings=np.zeros((2, 128))
        )
