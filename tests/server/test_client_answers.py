"""Malformed server answers reach the caller as a typed ``MalformedResponseError`` naming the bad field.

The conversion functions are fed hand-broken and randomly mutated ``EmbedResponse`` / ``EmbedBatchResponse``
messages (no server needed); one end-to-end test runs a real gRPC server on loopback that answers badly.
"""

from __future__ import annotations

import dataclasses
import random
from concurrent import futures

import grpc
import numpy as np
import pytest
from audioembed_server import EmbeddingClient
from audioembed_server.client import ServiceError, concatenate_results
from audioembed_server.client_results import batch_results, to_result
from audioembed_server.convert import result_to_proto
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from google.protobuf.message import DecodeError

from audioembed import EmbeddingResult
from audioembed.errors import MalformedResponseError, ShapeError

FUZZ_CASES = 3000  # a few hundred ms; every mutation kind is hit hundreds of times


def _result(n: int = 3, *, quantized: bool = True, start: float = 0.0) -> EmbeddingResult:
    rng = np.random.default_rng(n)
    return EmbeddingResult(
        embeddings=rng.standard_normal((n, 128)).astype(np.float32),
        quantized=rng.integers(0, 256, (n, 128), dtype=np.uint8) if quantized else None,
        timestamps=start + 0.96 * np.arange(n),
        window_seconds=0.96,
        hop_seconds=0.96,
        duration_seconds=start + 0.96 * n,
        sample_rate=16000,
        short_clip="none",
    )


def _message(n: int = 3, output: str = "both") -> pb.EmbeddingResult:
    return result_to_proto(_result(n), output=output)


def test_a_well_formed_answer_round_trips():
    original = _result(4)
    back = to_result(_message(4))
    np.testing.assert_array_equal(back.embeddings, original.embeddings)
    np.testing.assert_array_equal(back.quantized, original.quantized)
    np.testing.assert_array_equal(back.timestamps, original.timestamps)
    assert to_result(_message(0)).num_examples == 0
    assert to_result(_message(2, "raw")).quantized is None
    assert to_result(_message(2, "quantized")).embeddings is None


def _broken(edit) -> pb.EmbeddingResult:
    message = _message(3)
    edit(message)
    return message


BROKEN = {
    "raw too short": (
        lambda m: setattr(m, "raw", m.raw[:-4]),
        r"result\.raw holds 1532 bytes, expected 3 x 128",
    ),
    "raw not whole floats": (lambda m: setattr(m, "raw", m.raw + b"\0"), r"result\.raw holds 1537 bytes"),
    "quantized too long": (
        lambda m: setattr(m, "quantized", m.quantized + b"\0"),
        r"result\.quantized holds 385 bytes, expected 3 x 128",
    ),
    "raw without has_raw": (
        lambda m: setattr(m, "has_raw", False),
        r"result\.raw holds 1536 bytes but has_raw",
    ),
    "num_examples off": (lambda m: setattr(m, "num_examples", 4), r"3 timestamps for num_examples=4"),
    "timestamp missing": (lambda m: m.timestamps.pop(), r"2 timestamps for num_examples=3"),
    "dimension not 128": (
        lambda m: (setattr(m, "dimension", 64), setattr(m, "num_examples", 6), m.timestamps.extend([3] * 3)),
        r"result: embeddings must be float32 \[6, 128\].*got float32 \[6, 64\]",
    ),
    "unknown short_clip": (lambda m: setattr(m, "short_clip", 17), r"result\.short_clip is 17, not one of"),
    "zero hop": (
        lambda m: setattr(m, "hop_seconds", 0.0),
        r"result\.hop_seconds must be a positive number, got 0",
    ),
    "nan window": (
        lambda m: setattr(m, "window_seconds", float("nan")),
        r"result\.window_seconds .* got nan",
    ),
    "negative duration": (lambda m: setattr(m, "duration_seconds", -1.0), r"duration_seconds must be >= 0"),
    "infinite timestamp": (
        lambda m: m.timestamps.__setitem__(1, float("inf")),
        r"result\.timestamps holds non-finite values",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_malformed_result_names_the_bad_field(case):
    edit, match = BROKEN[case]
    with pytest.raises(MalformedResponseError, match=match):
        to_result(_broken(edit))


def _batch(*outcomes: pb.EmbedBatchItemResult) -> pb.EmbedBatchResponse:
    return pb.EmbedBatchResponse(items=list(outcomes))


def _ok(n: int = 2) -> pb.EmbedBatchItemResult:
    return pb.EmbedBatchItemResult(result=_message(n))


def _error(code: int, text: str = "bad clip") -> pb.EmbedBatchItemResult:
    return pb.EmbedBatchItemResult(error=pb.Status(code=code, message=text))


def _bad_item() -> pb.EmbedBatchItemResult:
    return pb.EmbedBatchItemResult(result=_broken(lambda m: m.timestamps.pop()))


def test_a_well_formed_batch_keeps_results_and_errors_in_order():
    results = batch_results(_batch(_ok(), _error(grpc.StatusCode.INVALID_ARGUMENT.value[0]), _ok(1)), 3)
    assert [type(r).__name__ for r in results] == ["EmbeddingResult", "ServiceError", "EmbeddingResult"]
    assert results[1].code == grpc.StatusCode.INVALID_ARGUMENT and results[1].details == "bad clip"
    assert results[2].num_examples == 1


@pytest.mark.parametrize(
    ("response", "sent", "match"),
    [
        (_batch(_ok()), 2, "EmbedBatch answered 1 items for 2 clips sent"),
        (_batch(_ok(), _ok()), 1, "EmbedBatch answered 2 items for 1 clips sent"),
        (_batch(_ok(), pb.EmbedBatchItemResult()), 2, r"items\[1\] carries neither a result nor an error"),
        (_batch(_error(0, "fine?")), 1, r"items\[0\]\.error has code 0 \(OK\): 'fine\?'"),
        (_batch(_ok(), _bad_item()), 2, r"items\[1\]\.result has 2 timestamps for num_examples=3"),
    ],
    ids=["fewer", "more", "empty item", "error OK", "bad result"],
)
def test_a_malformed_batch_names_the_bad_item(response, sent, match):
    with pytest.raises(MalformedResponseError, match=match):
        batch_results(response, sent)


def test_an_unknown_error_code_is_unknown_not_a_crash():
    (error,) = batch_results(_batch(_error(999)), 1)
    assert isinstance(error, ServiceError) and error.code == grpc.StatusCode.UNKNOWN


def test_stream_parts_join_and_inconsistent_parts_are_named():
    first, second = _result(2), _result(3, start=1.92)
    whole = concatenate_results([first, second])
    assert whole.num_examples == 5 and whole.duration_seconds == second.duration_seconds
    np.testing.assert_array_equal(whole.embeddings, np.concatenate([first.embeddings, second.embeddings]))
    with pytest.raises(MalformedResponseError, match="the stream returned no results"):
        concatenate_results([])
    with pytest.raises(MalformedResponseError, match="stream part 1 lacks quantized, part 0 has it"):
        concatenate_results([first, _result(1, quantized=False)])
    with pytest.raises(MalformedResponseError, match="stream part 1 has quantized, part 0 lacks it"):
        concatenate_results([_result(1, quantized=False), first])
    other_rate = dataclasses.replace(second, sample_rate=44100)
    with pytest.raises(MalformedResponseError, match="part 0 has sample_rate=16000, the last part 44100"):
        concatenate_results([first, other_rate])


def test_the_result_itself_refuses_bad_shapes_with_a_typed_error():
    good = _result(2)
    with pytest.raises(ShapeError, match=r"embeddings must be float32 \[2, 128\]"):
        EmbeddingResult(**{**vars(good), "embeddings": good.embeddings[:, :64]})
    with pytest.raises(ShapeError, match="timestamps must be a 1-D array"):
        EmbeddingResult(**{**vars(good), "timestamps": [0.0, 0.96]})
    with pytest.raises(ShapeError, match="quantized must be a NumPy array or None, got list"):
        EmbeddingResult(**{**vars(good), "quantized": [[0] * 128] * 2})


def _mutate(data: bytes, rng: random.Random) -> bytes:
    """One random corruption of a serialized message: flip, drop, duplicate or insert bytes, or truncate."""
    buffer = bytearray(data)
    kind = rng.randrange(5)
    at = rng.randrange(len(buffer) + 1)
    if kind == 0 and buffer:
        buffer[min(at, len(buffer) - 1)] ^= 1 << rng.randrange(8)
    elif kind == 1:
        del buffer[at : at + rng.randrange(1, 16)]
    elif kind == 2:
        buffer[at:at] = buffer[at : at + rng.randrange(1, 16)]
    elif kind == 3:
        buffer[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    else:
        del buffer[at:]
    return bytes(buffer)


_ODD_FLOATS = (0.0, -1.0, 0.96, 1e300, float("nan"), float("inf"))


def _mutate_result(m: pb.EmbeddingResult, rng: random.Random) -> None:
    """One random edit of a result's fields, within what protobuf can carry."""
    kind = rng.randrange(9)
    if kind == 0:
        m.num_examples = rng.choice((0, 1, 3, 4, 2**32 - 1))
    elif kind == 1:
        m.dimension = rng.choice((0, 1, 64, 127, 129, 2**31))
    elif kind == 2:
        cut = rng.randrange(len(m.raw) + 1)
        m.raw = m.raw[:cut] if rng.random() < 0.5 else m.raw + b"\x7f" * rng.randrange(9)
    elif kind == 3:
        m.quantized = m.quantized[: rng.randrange(len(m.quantized) + 1)] + b"\0" * rng.randrange(3)
    elif kind == 4:
        field = rng.choice(("has_raw", "has_quantized"))
        setattr(m, field, not getattr(m, field))
    elif kind == 5:
        if m.timestamps and rng.random() < 0.5:
            m.timestamps[rng.randrange(len(m.timestamps))] = rng.choice(_ODD_FLOATS)
        else:
            m.timestamps.append(rng.choice(_ODD_FLOATS))
    elif kind == 6:
        setattr(m, rng.choice(("window_seconds", "hop_seconds", "duration_seconds")), rng.choice(_ODD_FLOATS))
    elif kind == 7:
        m.short_clip = rng.randrange(-2, 8)
    else:
        m.sample_rate = rng.choice((0, 1, 8000, 2**32 - 1))


def _mutate_batch(response: pb.EmbedBatchResponse, rng: random.Random) -> None:
    """One random edit of a batch answer: its items, or one item's result or error."""
    kind = rng.randrange(6)
    index = rng.randrange(len(response.items)) if response.items else 0
    if kind == 0 and response.items:
        del response.items[index]
    elif kind == 1 and response.items:
        response.items.append(response.items[index])
    elif kind == 2 and response.items:
        response.items[index].ClearField("result")
        response.items[index].ClearField("error")
    elif kind == 3 and response.items:
        response.items[index].error.code = rng.choice((0, 3, 14, 999, -1))
    elif response.items and response.items[index].WhichOneof("outcome") == "result":
        _mutate_result(response.items[index].result, rng)


def _consistent(result: EmbeddingResult) -> None:
    """What a converted answer promises the caller, whatever bytes it came from."""
    n = result.num_examples
    assert result.timestamps.shape == (n,) and np.all(np.isfinite(result.timestamps))
    for matrix, dtype in ((result.embeddings, np.float32), (result.quantized, np.uint8)):
        assert matrix is None or (matrix.shape == (n, 128) and matrix.dtype == dtype)
    assert result.hop_seconds > 0 and result.window_seconds > 0 and result.duration_seconds >= 0
    assert result.short_clip in ("none", "pad", "drop")


def _fuzzed(case: int, rng: random.Random) -> tuple[bool, bytes]:
    """A mutated answer: ``(is_batch, serialized bytes)``; a third byte-level, the rest field-level edits."""
    is_batch = case % 2 == 1
    message = _batch(_ok(1), _error(3), _ok(2)) if is_batch else pb.EmbedResponse(result=_message(2))
    if case % 3 == 0:
        return is_batch, _mutate(message.SerializeToString(), rng)
    for _ in range(rng.randrange(1, 4)):
        if is_batch:
            _mutate_batch(message, rng)
        else:
            _mutate_result(message.result, rng)
    return is_batch, message.SerializeToString()


def test_fuzz_mutated_answers_convert_or_raise_the_typed_error():
    rng = random.Random(20261207)
    outcomes = {"converted": 0, "malformed": 0, "undecodable": 0}
    for case in range(FUZZ_CASES):
        is_batch, data = _fuzzed(case, rng)
        try:
            message = (pb.EmbedBatchResponse if is_batch else pb.EmbedResponse).FromString(data)
        except DecodeError:  # gRPC itself refuses these before the client sees them
            outcomes["undecodable"] += 1
            continue
        try:
            if is_batch:
                converted = [r for r in batch_results(message, 3) if not isinstance(r, ServiceError)]
            else:
                converted = [to_result(message.result)]
        except MalformedResponseError:
            outcomes["malformed"] += 1
            continue
        for result in converted:
            _consistent(result)
        outcomes["converted"] += 1
    # The corpus really exercised all three paths (a fuzz that never reaches the checks proves nothing).
    assert min(outcomes.values()) > FUZZ_CASES // 20, outcomes


class _BadService(pb_grpc.EmbeddingServiceServicer):
    """A real gRPC service whose answers are malformed: a timestamp short, and one batch item too few."""

    def Embed(self, request, context):  # noqa: N802 (the RPC's name)
        return pb.EmbedResponse(result=_broken(lambda m: m.timestamps.pop()))

    def EmbedBatch(self, request, context):  # noqa: N802
        return _batch(*[_ok() for _ in request.items[1:]])


def test_a_real_client_raises_the_typed_error_for_a_real_bad_server():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_EmbeddingServiceServicer_to_server(_BadService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with EmbeddingClient(f"127.0.0.1:{port}", timeout=10) as client:
            with pytest.raises(MalformedResponseError, match="2 timestamps for num_examples=3"):
                client.embed(b"RIFF not really a file")
            with pytest.raises(MalformedResponseError, match="EmbedBatch answered 1 items for 2 clips sent"):
                client.embed_batch([b"one", b"two"])
    finally:
        server.stop(grace=None)


def test_a_malformed_classification_names_the_bad_field():
    from audioembed_server.classify_client import classification_from_proto

    good = pb.ClassificationResult(
        num_windows=2,
        num_classes=3,
        labels=["a", "b", "c"],
        window_scores=np.zeros(6, "<f4").tobytes(),
        clip_scores=[0.1, 0.2, 0.7],
        timestamps=[0.0, 0.96],
        window_seconds=0.96,
        duration_seconds=2.0,
        short_clip=pb.SHORT_CLIP_POLICY_NONE,
    )
    assert classification_from_proto(good).window_scores.shape == (2, 3)
    for edit, match in (
        (lambda m: setattr(m, "window_scores", m.window_scores[:-1]), "window_scores holds 23 bytes"),
        (lambda m: m.labels.pop(), "holds 24 bytes and 2 labels, for 2 x 3"),
        (lambda m: setattr(m, "short_clip", 9), "short_clip is 9: unknown policy"),
    ):
        bad = pb.ClassificationResult()
        bad.CopyFrom(good)
        edit(bad)
        with pytest.raises(MalformedResponseError, match=match):
            classification_from_proto(bad)
