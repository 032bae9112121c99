"""TFRecord files of ``tf.train.SequenceExample`` in the AudioSet release layout, without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 LE length | uint32 LE masked CRC32C(length bytes) | data | uint32 LE masked CRC32C(data)

with mask(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2**32). AudioSet's released embeddings put one
``SequenceExample`` per clip: context features ``video_id`` (bytes), ``start_time_seconds`` and
``end_time_seconds`` (float), and the feature list ``audio_embedding``, one 128-byte quantized vector per
0.96 s example. The messages are declared here from the published field numbers of
``tensorflow/core/example/{example,feature}.proto`` and encoded by the ``protobuf`` runtime.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from audioembed.crc32c import crc32c, mask
from audioembed.errors import InvalidInputError

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC32C: the same masking LevelDB tables use (so CRCs of CRCs differ)."""
    return mask(crc32c(data))


def write_record(stream: BinaryIO, data: bytes) -> None:
    """Append one framed record to ``stream``."""
    length = _LENGTH.pack(len(data))
    stream.write(length + _CRC.pack(masked_crc32c(length)) + data + _CRC.pack(masked_crc32c(data)))


def read_records(stream: BinaryIO) -> Iterator[bytes]:
    """Yield the payload of every record, checking both CRCs.

    Raises
    ------
    InvalidInputError
        A truncated record or a CRC mismatch, naming the record's index.
    """
    index = 0
    while header := stream.read(_LENGTH.size + _CRC.size):
        if len(header) < _LENGTH.size + _CRC.size:
            raise InvalidInputError(f"TFRecord truncated in the header of record {index}")
        length_bytes, (length_crc,) = header[: _LENGTH.size], _CRC.unpack(header[_LENGTH.size :])
        if masked_crc32c(length_bytes) != length_crc:
            raise InvalidInputError(f"TFRecord record {index}: length CRC mismatch (corrupted file)")
        (length,) = _LENGTH.unpack(length_bytes)
        body = stream.read(length + _CRC.size)
        if len(body) < length + _CRC.size:
            raise InvalidInputError(f"TFRecord truncated in record {index}: expected {length} bytes of data")
        data, (data_crc,) = body[:length], _CRC.unpack(body[length:])
        if masked_crc32c(data) != data_crc:
            raise InvalidInputError(f"TFRecord record {index}: data CRC mismatch (corrupted file)")
        yield data
        index += 1


def _build_messages() -> tuple[type, type]:
    """Declare Feature, Features, FeatureList(s) and SequenceExample; return (SequenceExample, Feature)."""
    file = descriptor_pb2.FileDescriptorProto(name="audioembed_tf_example.proto", package="tensorflow")
    label, optional, repeated = descriptor_pb2.FieldDescriptorProto, 1, 3
    string_type, bytes_type, message_type = label.TYPE_STRING, label.TYPE_BYTES, label.TYPE_MESSAGE

    def message(name: str, *fields: tuple[str, int, int, int, str]) -> descriptor_pb2.DescriptorProto:
        proto = file.message_type.add(name=name)
        for field_name, number, field_label, field_type, type_name in fields:
            field = proto.field.add(name=field_name, number=number, label=field_label, type=field_type)
            if type_name:
                field.type_name = f".tensorflow.{type_name}"
        return proto

    packed = descriptor_pb2.FieldOptions(packed=True)
    message("BytesList", ("value", 1, repeated, bytes_type, ""))
    message("FloatList", ("value", 1, repeated, label.TYPE_FLOAT, "")).field[0].options.CopyFrom(packed)
    message("Int64List", ("value", 1, repeated, label.TYPE_INT64, "")).field[0].options.CopyFrom(packed)
    feature = message(
        "Feature",
        ("bytes_list", 1, optional, message_type, "BytesList"),
        ("float_list", 2, optional, message_type, "FloatList"),
        ("int64_list", 3, optional, message_type, "Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    for map_name, container, value_type in (
        ("feature", "Features", "Feature"),
        ("feature_list", "FeatureLists", "FeatureList"),
    ):
        if value_type == "FeatureList":
            message("FeatureList", ("feature", 1, repeated, message_type, "Feature"))
        holder = message(container, (map_name, 1, repeated, message_type, f"{container}.{value_type}Entry"))
        entry = holder.nested_type.add(name=f"{value_type}Entry")
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, label=optional, type=string_type)
        entry.field.add(
            name="value", number=2, label=optional, type=message_type, type_name=f".tensorflow.{value_type}"
        )
    message(
        "SequenceExample",
        ("context", 1, optional, message_type, "Features"),
        ("feature_lists", 2, optional, message_type, "FeatureLists"),
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    classes = message_factory.GetMessageClassesForFiles([file.name], pool)
    return classes["tensorflow.SequenceExample"], classes["tensorflow.Feature"]


SequenceExample, Feature = _build_messages()


def encode_sequence_example(
    *, video_id: str, start_time_seconds: float, end_time_seconds: float, embeddings: np.ndarray
) -> bytes:
    """Serialise one clip in the AudioSet layout.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(N, 128), uint8]
        Quantized embeddings, one per example.
    """
    embeddings = np.asarray(embeddings)
    if embeddings.ndim != 2 or embeddings.dtype != np.uint8:
        raise InvalidInputError(
            f"embeddings must be uint8 [N, 128], got {embeddings.dtype} {list(embeddings.shape)}"
        )
    example = SequenceExample()
    context = example.context.feature
    context["video_id"].bytes_list.value.append(video_id.encode("utf-8"))
    context["start_time_seconds"].float_list.value.append(start_time_seconds)
    context["end_time_seconds"].float_list.value.append(end_time_seconds)
    feature_list = example.feature_lists.feature_list["audio_embedding"].feature
    for row in embeddings:
        feature_list.add().bytes_list.value.append(row.tobytes())
    return example.SerializeToString(deterministic=True)


@dataclass(frozen=True)
class AudioSetRecord:
    """One decoded clip: ``embeddings`` uint8 [N, 128]."""

    video_id: str
    start_time_seconds: float
    end_time_seconds: float
    embeddings: np.ndarray


def decode_sequence_example(data: bytes) -> AudioSetRecord:
    """Parse one AudioSet-layout ``SequenceExample``; the inverse of :func:`encode_sequence_example`."""
    example = SequenceExample()
    try:
        example.ParseFromString(data)
    except Exception as error:  # protobuf raises its own DecodeError type
        raise InvalidInputError(f"not a SequenceExample: {error}") from error
    context = example.context.feature
    rows = [
        feature.bytes_list.value[0]
        for feature in example.feature_lists.feature_list["audio_embedding"].feature
    ]
    embeddings = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), -1) if rows else None
    return AudioSetRecord(
        video_id=context["video_id"].bytes_list.value[0].decode("utf-8"),
        start_time_seconds=float(context["start_time_seconds"].float_list.value[0]),
        end_time_seconds=float(context["end_time_seconds"].float_list.value[0]),
        embeddings=embeddings if embeddings is not None else np.zeros((0, 128), dtype=np.uint8),
    )


def read_audioset_tfrecord(path: str) -> list[AudioSetRecord]:
    """Read every clip of an AudioSet-layout TFRecord file."""
    with open(path, "rb") as stream:
        return [decode_sequence_example(record) for record in read_records(stream)]
