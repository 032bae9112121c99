"""Served classifiers: ``serve --classifier``, ``Classify`` / ``ClassifyBatch``, stream classification,
``GetModelInfo``, the client and ``client --classify``, all against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest
from audioembed_server import EmbeddingClient, ServerConfig, create_server
from audioembed_server.client_command import COMMAND as CLIENT
from audioembed_server.config import add_arguments, config_from
from audioembed_server.proto import embedding_service_pb2 as pb
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from audioembed_server.serve_command import COMMAND as SERVE

from audioembed import cli
from audioembed.classifier import Classifier, ClassifierFile, ClassifierHead, HeadConfig, write_classifier
from audioembed.classifier.file import state_tensors
from audioembed.errors import ClassifierMismatchError, InvalidOptionError
from audioembed.vggish import load_vggish
from tests.server.conftest import READY_TIMEOUT, int16_tone, running_server, wav_bytes

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]
LABELS = ("chirp", "clicks", "noise_burst", "tone")
OTHER_SHA256 = "0" * 64  # the sha256 of weights that are not the served ones


def _write_head(path: Path, embedder, config: HeadConfig, *, seed: int, multi_label=False, training=None,
                vggish_sha256=None, vggish_tensors=None) -> Path:  # fmt: skip
    """A random (untrained) head for ``embedder``'s weights: scores are arbitrary but deterministic."""
    info = embedder.model_info
    head = ClassifierHead(config, rng=np.random.default_rng(seed))
    contents = ClassifierFile(
        tensors=state_tensors(head.state_dict()),
        labels=LABELS[: config.num_classes],
        multi_label=multi_label,
        config=config,
        vggish_sha256=vggish_sha256 or info.weights_sha256,
        vggish_synthetic=info.synthetic,
        pca_sha256=info.pca_sha256,
        training=training or {"seed": seed},
        vggish_tensors=vggish_tensors or {},
    )
    return write_classifier(path, contents)


@pytest.fixture(scope="module")
def heads(tmp_path_factory, embedder, synthetic_weights) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("heads")
    # A "fine-tuned" classifier: its file carries a VGGish layer that differs from the served weights'.
    fc2_bias = load_vggish(synthetic_weights).state_dict()["fc2.bias"]
    tuned = {"fc2.bias": (np.asarray(fc2_bias) + 0.5).astype(np.float32)}
    return {
        "tuned": _write_head(
            root / "tuned.safetensors", embedder, HeadConfig(4), seed=5, vggish_tensors=tuned
        ),
        "sounds": _write_head(
            root / "mlp.safetensors", embedder, HeadConfig(4, model="mlp", hidden=16), seed=1
        ),
        "sounds_q": _write_head(
            root / "q.safetensors",
            embedder,
            HeadConfig(4, features="quantized", pool="max"),
            seed=2,
            multi_label=True,
        ),
        "hop48": _write_head(
            root / "hop.safetensors",
            embedder,
            HeadConfig(3),
            seed=3,
            training={"embedding": {"hop_seconds": 0.48, "short_clip": "pad", "resampler": "reference"}},
        ),
    }


@pytest.fixture(scope="module")
def classifying(embedder, heads):
    specs = tuple((name, str(path)) for name, path in heads.items())
    with running_server(lambda: embedder, classifiers=specs, max_queue_delay_ms=5.0) as running:
        yield running


@pytest.fixture
def cclient(classifying):
    with EmbeddingClient(classifying[1], timeout=60.0) as c:
        yield c


def _in_process(heads, embedder, name: str) -> Classifier:
    return Classifier.load(heads[name], embedder)


def assert_same_classification(actual, expected) -> None:
    """Served scores equal in-process ones: same windows and labels, scores up to batching's float32 order."""
    assert actual.labels == expected.labels and actual.multi_label == expected.multi_label
    np.testing.assert_array_equal(actual.timestamps, expected.timestamps)
    assert (
        actual.window_scores.dtype == np.float32
        and actual.window_scores.shape == expected.window_scores.shape
    )
    np.testing.assert_allclose(actual.window_scores, expected.window_scores, rtol=0, atol=1e-5)
    np.testing.assert_allclose(actual.clip_scores, expected.clip_scores, rtol=0, atol=1e-5)
    assert [label for label, _ in actual.top_k] == [label for label, _ in expected.top_k]
    assert actual.duration_seconds == pytest.approx(expected.duration_seconds)
    assert actual.short_clip == expected.short_clip


@pytest.mark.parametrize("name", ["sounds", "sounds_q"])
def test_served_classify_equals_in_process_classify(cclient, heads, embedder, tmp_path, name):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(3.3, rate=22050, seed=60))
    served = cclient.classify(clip, name, top_k=2)
    expected = _in_process(heads, embedder, name).classify(clip, top_k=2)
    assert_same_classification(served, expected)
    assert served.window_scores.shape == (3, 4) and len(served.top_k) == 2
    if name == "sounds":  # softmax rows sum to 1; the multi-label head's sigmoids need not
        np.testing.assert_allclose(served.window_scores.sum(axis=1), 1.0, rtol=1e-5)


def test_a_fine_tuned_classifier_runs_its_own_vggish_layers(cclient, heads, embedder):
    clip = wav_bytes(2.4, seed=67)
    clf = _in_process(heads, embedder, "tuned")
    assert clf.fine_tuned and clf.embedder is not embedder
    served = cclient.classify(clip, "tuned", top_k=4)
    assert_same_classification(served, clf.classify(clip, top_k=4))
    on_served_weights = clf.window_scores(embedder.embed(clip).embeddings)
    assert np.abs(served.window_scores - on_served_weights).max() > 1e-3  # not the shared model's windows
    batch = cclient.classify_batch([clip, clip], "tuned", top_k=4)  # its own batcher, in a batch call too
    assert_same_classification(batch[1], served)
    parts = list(cclient.classify_stream([clip], "tuned", top_k=4))
    np.testing.assert_allclose(parts[-1].clip_scores, served.clip_scores, rtol=0, atol=1e-5)


def test_classify_pcm_and_the_trained_hop_unless_the_request_sets_one(cclient, heads, embedder):
    samples = int16_tone(2.5, rate=16000, seed=61)
    clf = _in_process(heads, embedder, "hop48")
    served = cclient.classify(samples, "hop48", 16000, top_k=3)
    expected = clf.result_from_embeddings(embedder.embed(samples, 16000, hop_seconds=0.48), top_k=3)
    assert_same_classification(served, expected)
    np.testing.assert_allclose(np.diff(served.timestamps), 0.48)  # as the head was trained
    asked = cclient.classify(samples, "hop48", 16000, hop_seconds=0.96, short_clip="drop")
    assert asked.timestamps.tolist() == [0.0, 0.96]


def test_classify_batch_gives_each_item_its_own_status(cclient, heads, embedder, tmp_path):
    good = [wav_bytes(1.5, seed=62), wav_bytes(2.2, seed=63)]
    outcomes = cclient.classify_batch([good[0], b"not audio", good[1]], "sounds", top_k=1)
    assert len(outcomes) == 3
    clf = _in_process(heads, embedder, "sounds")
    assert_same_classification(outcomes[0], clf.classify(good[0], top_k=1))
    assert_same_classification(outcomes[2], clf.classify(good[1], top_k=1))
    assert (
        outcomes[1].code == grpc.StatusCode.INVALID_ARGUMENT and "cannot decode audio" in outcomes[1].details
    )
    # An item naming an unknown classifier fails alone, with the served names (one call, mixed names).
    stub = pb_grpc.EmbeddingServiceStub(cclient._channel)
    request = pb.ClassifyBatchRequest(
        items=[
            pb.ClassifyRequest(audio=pb.Audio(encoded=good[0]), classifier="nope"),
            pb.ClassifyRequest(audio=pb.Audio(encoded=good[0]), classifier="sounds_q"),
        ]
    )
    response = stub.ClassifyBatch(request, timeout=60)
    assert response.items[0].WhichOneof("outcome") == "error"
    assert response.items[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "unknown classifier 'nope'" in response.items[0].error.message
    assert "'hop48', 'sounds', 'sounds_q'" in response.items[0].error.message
    assert len(response.items[1].result.top_k) == 4  # top_k unset (0): the default 5, capped by 4 labels


def test_stream_classification_parts_and_running_pool(cclient, heads, embedder):
    samples = int16_tone(4.2, rate=16000, seed=64)
    chunks = [samples[i : i + 12000] for i in range(0, samples.size, 12000)]  # 0.75 s each
    parts = list(cclient.classify_stream(chunks, "sounds", sample_rate=16000, top_k=2))
    clf = _in_process(heads, embedder, "sounds")
    expected = clf.classify(samples, 16000, top_k=2)
    assert len(parts) > 2  # windows come back as the audio arrives, not all at the end
    joined = np.concatenate([p.window_scores for p in parts])
    np.testing.assert_allclose(joined, expected.window_scores, rtol=0, atol=1e-5)
    np.testing.assert_array_equal(np.concatenate([p.timestamps for p in parts]), expected.timestamps)
    np.testing.assert_allclose(parts[-1].clip_scores, expected.clip_scores, rtol=0, atol=1e-5)
    assert [lab for lab, _ in parts[-1].top_k] == [lab for lab, _ in expected.top_k]
    seen = 0
    for part in parts:  # each part's clip scores pool every window so far
        seen += part.window_scores.shape[0]
        if seen:
            np.testing.assert_allclose(part.clip_scores, joined[:seen].mean(axis=0), rtol=0, atol=1e-6)


def test_stream_without_classifier_has_no_scores_and_a_file_stream_classifies(
    cclient, heads, embedder, tmp_path
):
    stub = pb_grpc.EmbeddingServiceStub(cclient._channel)
    clip = wav_bytes(2.0, seed=65)
    requests = [
        pb.EmbedStreamRequest(config=pb.StreamConfig(encoded=True)),
        pb.EmbedStreamRequest(chunk=clip),
    ]
    responses = list(stub.EmbedStream(iter(requests), timeout=60))
    assert responses and not any(r.HasField("classification") for r in responses)
    path = tmp_path / "clip.wav"
    path.write_bytes(clip)
    streamed = cclient.classify_file_stream(path, "sounds_q", chunk_bytes=10_000, top_k=3)
    assert_same_classification(streamed, _in_process(heads, embedder, "sounds_q").classify(path, top_k=3))


def test_model_info_lists_the_classifiers(cclient, embedder):
    info = cclient.model_info()
    assert [c.name for c in info.classifiers] == ["hop48", "sounds", "sounds_q", "tuned"]
    assert [c.fine_tuned for c in info.classifiers] == [False, False, False, True]
    by_name = {c.name: c for c in info.classifiers}
    assert by_name["sounds"].labels == LABELS and by_name["hop48"].labels == LABELS[:3]
    assert by_name["sounds_q"].multi_label and not by_name["sounds"].multi_label
    assert (by_name["sounds"].model, by_name["sounds"].features, by_name["sounds"].pool) == (
        "mlp",
        "raw",
        "mean",
    )
    assert (by_name["sounds_q"].features, by_name["sounds_q"].pool) == ("quantized", "max")
    assert {c.vggish_sha256 for c in info.classifiers} == {embedder.model_info.weights_sha256}


def test_unknown_classifier_is_invalid_argument_naming_the_served_ones(cclient, client):
    from audioembed_server import ServiceError

    with pytest.raises(
        ServiceError, match=r"unknown classifier 'birds': this server serves 'hop48', 'sounds'"
    ) as e:
        cclient.classify(wav_bytes(1.0), "birds")
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(ServiceError, match="unknown classifier 'birds'") as e:
        list(cclient.classify_stream([wav_bytes(1.0)], "birds"))
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT
    # A server without classifiers says how to get some.
    with pytest.raises(ServiceError, match=r"serves none \(start the server with --classifier\)"):
        client.classify(wav_bytes(1.0), "birds")
    assert client.model_info().classifiers == ()
    with pytest.raises(InvalidOptionError, match="top_k must be a positive integer, got 0"):
        cclient.classify(wav_bytes(1.0), "sounds", top_k=0)


def test_a_classifier_of_other_weights_is_refused_at_start_up(embedder, heads, tmp_path):
    bad = _write_head(
        tmp_path / "other.safetensors", embedder, HeadConfig(4), seed=4, vggish_sha256=OTHER_SHA256
    )
    config = ServerConfig(
        host="127.0.0.1", port=0, classifiers=(("ok", str(heads["sounds"])), ("other", str(bad)))
    )
    server, _ = create_server(config, lambda: embedder)
    try:
        with pytest.raises(ClassifierMismatchError) as e:
            server.wait_ready(READY_TIMEOUT)
        assert OTHER_SHA256 in str(e.value) and embedder.model_info.weights_sha256 in str(e.value)
        assert not server.ready
    finally:
        server.stop(grace=0)


def test_serve_exits_2_naming_both_sha256_for_a_mismatched_classifier(synthetic_weights, embedder, tmp_path):
    bad = _write_head(
        tmp_path / "other.safetensors", embedder, HeadConfig(4), seed=5, vggish_sha256=OTHER_SHA256
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("AUDIOEMBED_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "server")]), AUDIOEMBED_CLASSIFIERS=f"x={bad}"
    )
    command = [sys.executable, "-m", "audioembed_server", "serve", "--host", "127.0.0.1", "--port", "0"]
    completed = subprocess.run(
        [*command, "--weights", str(synthetic_weights)], capture_output=True, text=True, env=env, timeout=120
    )
    assert completed.returncode == 2, completed.stderr
    assert OTHER_SHA256 in completed.stderr and embedder.model_info.weights_sha256 in completed.stderr
    assert "trained on VGGish weights" in completed.stderr


def test_classifier_flags_and_environment(tmp_path):
    import argparse

    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"x")
    b.write_bytes(b"x")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--classifier", f"birds={a}", "--classifier", f"faults={b}"])
    assert config_from(args, env={}).classifiers == (("birds", str(a)), ("faults", str(b)))
    from_env = config_from(parser.parse_args([]), env={"AUDIOEMBED_CLASSIFIERS": f"birds={a}, faults={b}"})
    assert from_env.classifiers == (("birds", str(a)), ("faults", str(b)))
    flag_wins = config_from(args, env={"AUDIOEMBED_CLASSIFIERS": f"other={a}"})
    assert [name for name, _ in flag_wins.classifiers] == ["birds", "faults"]
    bad = {
        "birds": r"--classifier takes NAME=PATH, got 'birds'",
        f"birds={a}|birds={b}": r"classifier name 'birds' is given twice",
        f"birds={tmp_path / 'missing'}": r"classifier 'birds': file does not exist: .*missing",
        f"-x={a}": r"classifier name '-x' must start with a letter or digit",
    }
    for given, message in bad.items():
        argv = [f"--classifier={spec}" for spec in given.split("|")]
        with pytest.raises(InvalidOptionError, match=message):
            config_from(parser.parse_args(argv), env={})
    with pytest.raises(InvalidOptionError, match="AUDIOEMBED_CLASSIFIERS takes NAME=PATH"):
        config_from(parser.parse_args([]), env={"AUDIOEMBED_CLASSIFIERS": "nonsense"})


def _client(address: str, *argv: str) -> int:
    args = cli.build_parser([SERVE, CLIENT]).parse_args(["client", "--address", address, *argv])
    return args._run(args)


def test_client_command_classifies_files(classifying, heads, embedder, tmp_path, capsys):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    good.write_bytes(wav_bytes(2.4, seed=66))
    bad.write_bytes(b"not audio")
    assert _client(classifying[1], str(good), "--classify", "sounds", "--top-k", "2") == 0
    line = json.loads(capsys.readouterr().out)
    expected = _in_process(heads, embedder, "sounds").classify(good, top_k=2)
    assert (line["file"], line["classifier"], line["label"]) == (str(good), "sounds", expected.label)
    assert [item["label"] for item in line["top_k"]] == [label for label, _ in expected.top_k]
    np.testing.assert_allclose(line["window_scores"], expected.window_scores, rtol=0, atol=1e-5)
    assert line["labels"] == list(LABELS) and line["timestamps"] == expected.timestamps.tolist()
    assert _client(classifying[1], str(good), str(bad), "--classify", "sounds", "--stream") == 1
    lines = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    np.testing.assert_allclose(lines[0]["window_scores"], expected.window_scores, rtol=0, atol=1e-5)
    assert "INVALID_ARGUMENT" in lines[1]["error"]
    assert _client(classifying[1], str(good), "--classify", "nope") == 1
    assert "unknown classifier 'nope'" in json.loads(capsys.readouterr().out)["error"]
    with pytest.raises(InvalidOptionError, match="with --classify the results are the JSON lines"):
        _client(classifying[1], str(good), "--classify", "sounds", "-o", str(tmp_path / "out"))


def test_classifier_errors_map_to_failed_precondition():
    from audioembed_server.status import status_for

    mapped = status_for(ClassifierMismatchError("trained on other weights"))
    assert (mapped.code, mapped.message) == (grpc.StatusCode.FAILED_PRECONDITION, "trained on other weights")
