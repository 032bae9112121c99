"""The service contract only grows: everything main's ``.proto`` defined is still there, unchanged.

``data/embedding_service_v1_main.binpb`` is the ``FileDescriptorSet`` of main's
``proto/audioembed/v1/embedding_service.proto`` before the classification RPCs were added, made with
``python -m grpc_tools.protoc -I proto --descriptor_set_out=... audioembed/v1/embedding_service.proto``.
A deployed client built from it must keep working against today's server: same field numbers, types,
labels, oneofs and names; same enum values; same RPCs with the same message types and streaming.
"""

from __future__ import annotations

from pathlib import Path

from audioembed_server.proto import embedding_service_pb2 as pb
from google.protobuf import descriptor_pb2

FROZEN = Path(__file__).resolve().parent / "data" / "embedding_service_v1_main.binpb"


def _frozen() -> descriptor_pb2.FileDescriptorProto:
    files = descriptor_pb2.FileDescriptorSet.FromString(FROZEN.read_bytes())
    (file,) = [f for f in files.file if f.name == "audioembed/v1/embedding_service.proto"]
    return file


def _current() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(file)
    return file


def _messages(file: descriptor_pb2.FileDescriptorProto) -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(prefix: str, messages) -> None:
        for message in messages:
            name = f"{prefix}.{message.name}"
            found[name] = message
            walk(name, message.nested_type)

    walk(file.package, file.message_type)
    return found


def _field_signature(message: descriptor_pb2.DescriptorProto, field: descriptor_pb2.FieldDescriptorProto):
    oneof = message.oneof_decl[field.oneof_index].name if field.HasField("oneof_index") else None
    return (field.name, field.type, field.label, field.type_name, oneof, field.proto3_optional)


def _rpc_signature(method: descriptor_pb2.MethodDescriptorProto) -> tuple:
    return (method.input_type, method.output_type, method.client_streaming, method.server_streaming)


def incompatibilities(
    old: descriptor_pb2.FileDescriptorProto, new: descriptor_pb2.FileDescriptorProto
) -> list[str]:
    """What ``new`` changed or removed from ``old``, one line per problem (empty: only additions)."""
    problems = []
    if old.package != new.package:
        problems.append(f"package {old.package!r} became {new.package!r}")
    new_messages = _messages(new)
    for name, message in _messages(old).items():
        if name not in new_messages:
            problems.append(f"message {name} removed")
            continue
        now = {f.number: f for f in new_messages[name].field}
        for field in message.field:
            if field.number not in now:
                problems.append(f"{name} field {field.number} ({field.name}) removed")
            elif _field_signature(message, field) != _field_signature(new_messages[name], now[field.number]):
                problems.append(f"{name} field {field.number} ({field.name}) changed")
    new_enums = {e.name: {v.name: v.number for v in e.value} for e in new.enum_type}
    for enum in old.enum_type:
        for value in enum.value:
            if new_enums.get(enum.name, {}).get(value.name) != value.number:
                problems.append(f"enum {enum.name} value {value.name} = {value.number} changed or removed")
    new_services = {s.name: {m.name: m for m in s.method} for s in new.service}
    for service in old.service:
        for method in service.method:
            now_method = new_services.get(service.name, {}).get(method.name)
            if now_method is None or _rpc_signature(method) != _rpc_signature(now_method):
                problems.append(f"rpc {service.name}.{method.name} changed or removed")
    return problems


def test_current_proto_only_adds_to_mains():
    assert incompatibilities(_frozen(), _current()) == []


def test_the_classification_additions_are_there():
    current = _current()
    methods = {m.name for m in current.service[0].method}
    assert {"Classify", "ClassifyBatch"} <= methods
    messages = _messages(current)
    assert "audioembed.v1.ClassifyRequest" in messages and "audioembed.v1.ClassifierInfo" in messages
    stream_config = {f.name: f.number for f in messages["audioembed.v1.StreamConfig"].field}
    assert stream_config["classifier"] == 4 and stream_config["top_k"] == 5


def test_the_check_catches_a_renumbered_field_a_removed_value_and_a_changed_rpc():
    frozen = _frozen()
    edited = _current()
    embed_request = next(m for m in edited.message_type if m.name == "EmbedRequest")
    embed_request.field[0].number = 7  # audio: 1 -> 7
    output_kind = next(e for e in edited.enum_type if e.name == "OutputKind")
    del output_kind.value[-1]  # OUTPUT_KIND_QUANTIZED gone
    edited.service[0].method[0].server_streaming = True  # Embed becomes server-streaming
    problems = incompatibilities(frozen, edited)
    assert any("EmbedRequest field 1 (audio) removed" in p for p in problems), problems
    assert any("OUTPUT_KIND_QUANTIZED" in p for p in problems), problems
    assert any("rpc EmbeddingService.Embed changed" in p for p in problems), problems
    retyped = _current()
    result = next(m for m in retyped.message_type if m.name == "EmbeddingResult")
    result.field[0].type = descriptor_pb2.FieldDescriptorProto.TYPE_UINT64  # num_examples uint32 -> uint64
    assert incompatibilities(frozen, retyped) == [
        "audioembed.v1.EmbeddingResult field 1 (num_examples) changed"
    ]
