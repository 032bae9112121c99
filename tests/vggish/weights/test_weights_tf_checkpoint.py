"""The TensorFlow V1 checkpoint reader: real TF bytes, encodings, and every kind of damage."""

from __future__ import annotations

import hashlib
import logging
import struct

import numpy as np
import pytest
from weights_writers import field_bytes, field_varint, full_slice, slice_record, varint, write_tf_v1

from audioembed import crc32c
from audioembed.errors import WeightsFormatError
from audioembed.vggish.weights import detect_format, read_weights
from audioembed.vggish.weights.tf_checkpoint import (
    TensorEntry,
    is_v2_index,
    list_tf_checkpoint,
    read_tf_checkpoint,
)

SMALL = {
    "a": np.arange(-10, 10, dtype=np.float32).reshape(4, 5) / 4,
    "scope/b": np.array([1.0, -2.0, 3.25, 1e-300], dtype=np.float64),
    "scope/c": np.array([[7, -8], [2**31 - 1, -(2**31)]], dtype=np.int32),
    "step": np.array(-42, dtype=np.int64),
}


@pytest.fixture
def small_checkpoint(tmp_path):
    return write_tf_v1(tmp_path / "small.ckpt", SMALL)


def test_tiny_tensorflow_fixture_decodes_to_the_documented_values(tiny_checkpoint):
    data = tiny_checkpoint.read_bytes()
    assert len(data) == 403
    assert (
        hashlib.sha256(data).hexdigest() == "e764cc2a10782400f67023d2da6c68168a4ccdb476b6caa1d7fce31adaefe5c6"
    )
    tensors = read_tf_checkpoint(tiny_checkpoint)
    assert sorted(tensors) == ["a", "global_step", "scope/b", "scope/c"]
    np.testing.assert_array_equal(tensors["a"], np.array([[-2.5, -1.5, -0.5], [0.5, 1.5, 2.5]], np.float32))
    np.testing.assert_array_equal(tensors["scope/b"], np.array([1.0, -2.0, 3.25, 0.001]))
    np.testing.assert_array_equal(tensors["scope/c"], np.array([[7, -8], [9, 10]], np.int32))
    assert tensors["global_step"].shape == () and int(tensors["global_step"]) == 42
    assert [t.dtype for t in tensors.values()] == [np.float32, np.int64, np.float64, np.int32]


def test_tiny_fixture_is_listed_without_decoding(tiny_checkpoint):
    assert list_tf_checkpoint(tiny_checkpoint) == [
        TensorEntry("a", (2, 3), "float32"),
        TensorEntry("global_step", (), "int64"),
        TensorEntry("scope/b", (4,), "float64"),
        TensorEntry("scope/c", (2, 2), "int32"),
    ]
    assert detect_format(tiny_checkpoint) == "tf-checkpoint"
    assert not is_v2_index(tiny_checkpoint)


def test_written_checkpoint_round_trips(small_checkpoint):
    tensors = read_tf_checkpoint(small_checkpoint)
    assert sorted(tensors) == sorted(SMALL)
    for name, expected in SMALL.items():
        assert tensors[name].dtype == expected.dtype
        np.testing.assert_array_equal(tensors[name], expected)
        assert tensors[name].flags.c_contiguous


def test_arrays_outlive_the_file(tmp_path):
    path = write_tf_v1(tmp_path / "gone.ckpt", SMALL)
    tensors = read_tf_checkpoint(path)
    path.unlink()
    np.testing.assert_array_equal(tensors["a"], SMALL["a"])


def test_selecting_names_skips_the_rest_and_logs_them(small_checkpoint, caplog):
    with caplog.at_level(logging.DEBUG, logger="audioembed.vggish.weights.tf_checkpoint"):
        tensors = read_tf_checkpoint(small_checkpoint, names=["scope/b"])
    assert list(tensors) == ["scope/b"]
    assert "ignoring 3 other tensors" in caplog.text


def test_a_missing_name_is_an_error(small_checkpoint):
    with pytest.raises(WeightsFormatError, match="no tensor named 'nope'"):
        read_tf_checkpoint(small_checkpoint, names=["nope"])


def test_many_small_blocks_and_shared_key_prefixes(tmp_path):
    # A tiny block size forces one record per block and many index entries; similar names share prefixes.
    tensors = {f"scope/layer_{i:03d}/weights": np.full((3, i + 1), i, np.float32) for i in range(40)}
    path = write_tf_v1(tmp_path / "blocks.ckpt", tensors, block_size=64)
    read = read_tf_checkpoint(path)
    for name, expected in tensors.items():
        np.testing.assert_array_equal(read[name], expected)


def _raw(name: str, dtype_enum: int, shape: tuple[int, ...], tensor_proto: bytes, slice_proto=None):
    record = slice_record(name, full_slice(len(shape)) if slice_proto is None else slice_proto, tensor_proto)
    return {name: (dtype_enum, shape, record)}


@pytest.mark.parametrize(
    ("dtype_enum", "proto", "expected"),
    [
        # unpacked float_val: one fixed32 field per value
        (
            1,
            b"".join(varint(5 << 3 | 5) + struct.pack("<f", v) for v in (1.5, -2.0)),
            np.array([1.5, -2.0], "f4"),
        ),
        # unpacked double_val
        (2, b"".join(varint(6 << 3 | 1) + struct.pack("<d", v) for v in (0.1, 3.0)), np.array([0.1, 3.0])),
        # unpacked int_val (varints, negative as 10 bytes)
        (3, field_varint(7, 5) + field_varint(7, -3 & (2**64 - 1)), np.array([5, -3], "i4")),
        # tensor_content: raw little-endian bytes
        (1, field_bytes(4, np.array([7.0, 8.0], "<f4").tobytes()), np.array([7.0, 8.0], "f4")),
        # half_val: varints of float16 bit patterns
        (19, field_bytes(13, varint(0x3C00) + varint(0xC000)), np.array([1.0, -2.0], "f2")),
        # bfloat16 in half_val, widened to float32
        (14, field_bytes(13, varint(0x3F80) + varint(0xC040)), np.array([1.0, -3.0], "f4")),
        # bool_val, uint8 (int_val), int8 (int_val)
        (10, field_bytes(11, varint(1) + varint(0)), np.array([True, False])),
        (4, field_bytes(7, varint(255) + varint(0)), np.array([255, 0], "u1")),
        (6, field_bytes(7, varint(-128) + varint(127)), np.array([-128, 127], "i1")),
        (5, field_bytes(7, varint(-300) + varint(300)), np.array([-300, 300], "i2")),
    ],
)
def test_value_encodings(tmp_path, dtype_enum, proto, expected):
    path = write_tf_v1(tmp_path / "enc.ckpt", {}, raw=_raw("t", dtype_enum, (2,), proto))
    value = read_tf_checkpoint(path)["t"]
    assert value.dtype == expected.dtype
    np.testing.assert_array_equal(value, expected)


def test_old_writers_full_length_minus_one_is_a_full_slice(tmp_path):
    slice_proto = field_bytes(1, field_varint(2, -1 & (2**64 - 1)))
    proto = field_bytes(5, np.array([1, 2, 3], "<f4").tobytes())
    path = write_tf_v1(tmp_path / "m1.ckpt", {}, raw=_raw("t", 1, (3,), proto, slice_proto))
    np.testing.assert_array_equal(read_tf_checkpoint(path)["t"], [1, 2, 3])


def test_a_partitioned_variable_is_refused(tmp_path):
    slice_proto = field_bytes(1, field_varint(1, 0) + field_varint(2, 2))  # elements 0..1 of 4
    proto = field_bytes(5, np.array([1, 2], "<f4").tobytes())
    path = write_tf_v1(tmp_path / "part.ckpt", {}, raw=_raw("t", 1, (4,), proto, slice_proto))
    with pytest.raises(WeightsFormatError, match="partial slice"):
        read_tf_checkpoint(path)


def test_a_value_count_that_does_not_match_the_shape_is_an_error(tmp_path):
    proto = field_bytes(5, np.array([1, 2, 3], "<f4").tobytes())
    path = write_tf_v1(tmp_path / "count.ckpt", {}, raw=_raw("t", 1, (2, 2), proto))
    with pytest.raises(WeightsFormatError, match=r"'t' of shape \[2, 2\] needs 4 values, the record holds 3"):
        read_tf_checkpoint(path)


def test_string_tensors_are_skipped_unless_asked_for(tmp_path):
    raw = _raw("names", 7, (1,), field_bytes(8, b"hello"))
    path = write_tf_v1(tmp_path / "str.ckpt", {"a": SMALL["a"]}, raw=raw)
    assert list(read_tf_checkpoint(path)) == ["a"]
    with pytest.raises(WeightsFormatError, match="'names' has unsupported dtype 'string'"):
        read_tf_checkpoint(path, names=["names"])


# --- damage -------------------------------------------------------------------------------------


def _damaged(path, offset, value: bytes):
    data = bytearray(path.read_bytes())
    data[offset : offset + len(value)] = value
    path.write_bytes(bytes(data))
    return path


def test_bad_footer_magic(small_checkpoint):
    _damaged(small_checkpoint, small_checkpoint.stat().st_size - 1, b"\x00")
    with pytest.raises(WeightsFormatError, match=r"footer magic .* truncated or not a TensorFlow V1"):
        read_tf_checkpoint(small_checkpoint)


def test_truncated_file(small_checkpoint):
    small_checkpoint.write_bytes(small_checkpoint.read_bytes()[:-100])
    with pytest.raises(WeightsFormatError, match="footer magic"):
        read_tf_checkpoint(small_checkpoint)


def test_file_shorter_than_a_footer(tmp_path):
    path = tmp_path / "short.ckpt"
    path.write_bytes(b"\x00" * 20)
    with pytest.raises(WeightsFormatError, match="20 bytes, too short"):
        read_tf_checkpoint(path)


def test_flipped_byte_fails_the_block_crc(small_checkpoint):
    _damaged(small_checkpoint, 30, bytes([small_checkpoint.read_bytes()[30] ^ 0x01]))
    with pytest.raises(WeightsFormatError, match=r"CRC mismatch in the .*-byte block at offset 0"):
        read_tf_checkpoint(small_checkpoint)


def test_flipped_byte_is_caught_by_the_pure_python_crc_too(small_checkpoint, monkeypatch):
    monkeypatch.setattr(crc32c, "_google_crc32c", None)
    monkeypatch.setattr(crc32c, "ACCELERATED", False)
    assert read_tf_checkpoint(small_checkpoint)["a"].shape == (4, 5)  # intact: verifies and reads
    _damaged(small_checkpoint, 30, bytes([small_checkpoint.read_bytes()[30] ^ 0x01]))
    with pytest.raises(WeightsFormatError, match="CRC mismatch"):
        read_tf_checkpoint(small_checkpoint)


def test_large_blocks_are_not_verified_without_the_accelerated_crc(tmp_path, monkeypatch):
    big = {"big": np.zeros(3000, np.float32)}
    path = write_tf_v1(tmp_path / "big.ckpt", big, block_size=1024)
    monkeypatch.setattr(crc32c, "_google_crc32c", None)
    monkeypatch.setattr(crc32c, "ACCELERATED", False)
    monkeypatch.setattr(crc32c, "PURE_PYTHON_LIMIT", 4096)  # the 12 KB block now counts as large
    data = path.read_bytes()
    offset = data.index(b"\x00" * 64) + 4  # inside the float payload
    _damaged(path, offset, b"\x01")
    # Skipped, so the damage goes unnoticed here; with google-crc32c it is caught.
    assert read_tf_checkpoint(path)["big"].any()
    monkeypatch.undo()
    with pytest.raises(WeightsFormatError, match="CRC mismatch"):
        read_tf_checkpoint(path)


def test_snappy_block_is_refused_clearly(small_checkpoint):
    tensors = read_tf_checkpoint(small_checkpoint)  # intact first
    assert tensors
    data = small_checkpoint.read_bytes()
    # The footer's index handle → the index block → the first data block's handle: offset 0, size n.
    size, _ = _first_block_size(data)
    _damaged(small_checkpoint, size, b"\x01")
    with pytest.raises(WeightsFormatError, match="Snappy-compressed"):
        read_tf_checkpoint(small_checkpoint)


def _first_block_size(data: bytes) -> tuple[int, int]:
    from audioembed.vggish.weights.protobuf_wire import read_varint

    footer = memoryview(data[-48:])
    _, pos = read_varint(footer, 0)
    _, pos = read_varint(footer, pos)
    index_offset, pos = read_varint(footer, pos)
    index_size, _ = read_varint(footer, pos)
    index = memoryview(data[index_offset : index_offset + index_size])
    # First entry: shared 0, key length k, value length v, key, value = handle(offset, size).
    _, pos = read_varint(index, 0)
    key_length, pos = read_varint(index, pos)
    _, pos = read_varint(index, pos)
    offset, pos = read_varint(index, pos + key_length)
    size, _ = read_varint(index, pos)
    assert offset == 0
    return size, index_offset


def test_block_handle_past_the_end(small_checkpoint):
    data = small_checkpoint.read_bytes()
    footer = (varint(0) + varint(8) + varint(10**9) + varint(50)).ljust(40, b"\x00") + data[-8:]
    small_checkpoint.write_bytes(data[:-48] + footer)
    with pytest.raises(WeightsFormatError, match=r"bad block handle .* truncated or corrupted"):
        read_tf_checkpoint(small_checkpoint)


def test_no_metadata_record(tmp_path):
    path = write_tf_v1(tmp_path / "nometa.ckpt", {}, header=b"")
    path.write_bytes(path.read_bytes())
    # An empty header record (key "") is a V2 bundle header as far as the bytes tell.
    assert is_v2_index(path)


def test_v2_index_is_detected_and_refused(tmp_path):
    # A V2 .index is the same table format; its "" record is a BundleHeaderProto (num_shards varint).
    path = write_tf_v1(tmp_path / "model.ckpt.index", {}, header=field_varint(1, 1) + field_varint(2, 0))
    assert is_v2_index(path)
    with pytest.raises(WeightsFormatError, match=r"TensorFlow V2 checkpoint.*not supported"):
        detect_format(path)
    with pytest.raises(WeightsFormatError, match="V2 checkpoint"):
        read_tf_checkpoint(path)
    # The prefix users pass to TF, and the data shard, are recognised too.
    with pytest.raises(WeightsFormatError, match="prefix of a TensorFlow V2 checkpoint"):
        detect_format(tmp_path / "model.ckpt")
    shard = tmp_path / "model.ckpt.data-00000-of-00001"
    shard.write_bytes(np.ones(100, np.float32).tobytes())
    with pytest.raises(WeightsFormatError, match="data shard of a TensorFlow V2 checkpoint"):
        detect_format(shard)


def test_full_size_checkpoint_reads_identically_and_ignores_extras(full_files, synthetic_tensors, caplog):
    with caplog.at_level(logging.INFO, logger="audioembed.vggish.weights.files"):
        weights = read_weights(full_files["tf-checkpoint"])
    assert weights.format == "tf-checkpoint"
    assert list(weights.tensors) == list(synthetic_tensors)
    for name, expected in synthetic_tensors.items():
        np.testing.assert_array_equal(weights.tensors[name], expected)
    assert "ignoring 2 tensors" in caplog.text and "global_step" in caplog.text


def test_checkpoint_of_another_model_is_named_as_such(small_checkpoint):
    with pytest.raises(WeightsFormatError, match=r"TensorFlow checkpoint but not of VGGish.*\(18 of 18\)"):
        read_weights(small_checkpoint)
