"""The Classifier API and its file: load, score windows, pool, classify, and refusing what does not fit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audioembed import Embedder, cli
from audioembed.classifier import Classifier, ClassifierHead, HeadConfig, read_classifier, write_classifier
from audioembed.classifier.file import ClassifierFile, state_tensors
from audioembed.errors import ClassifierError, ClassifierMismatchError, InvalidOptionError, ShapeError
from audioembed.pipeline import FailedInput


@pytest.fixture(scope="module")
def classifier(random_classifier, embedder) -> Classifier:
    return Classifier.load(random_classifier, embedder)


def test_load_exposes_labels_config_and_provenance(classifier, embedder):
    assert classifier.labels == ("chirp", "clicks", "noise_burst", "tone")
    assert (
        not classifier.multi_label and classifier.config.model == "mlp" and classifier.config.pool == "mean"
    )
    assert classifier.vggish_sha256 == embedder.model_info.weights_sha256
    assert classifier.training == {"seed": 0}


def test_classify_is_window_scores_of_the_embeddings_pooled(classifier, embedder, sounds):
    path = sounds / "tone" / "tone_000.wav"
    result = classifier.classify(path, top_k=2)
    embedded = embedder.embed(path)
    expected = classifier.window_scores(embedded.embeddings, embedded.quantized)
    np.testing.assert_array_equal(result.window_scores, expected)
    assert result.window_scores.shape == (2, 4) and result.window_scores.dtype == np.float32
    np.testing.assert_allclose(result.window_scores.sum(axis=1), 1.0, rtol=1e-5)  # softmax
    np.testing.assert_allclose(result.clip_scores, expected.mean(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(result.timestamps, embedded.timestamps)
    best = np.argsort(-result.clip_scores)[:2]
    assert result.top_k == [(classifier.labels[i], pytest.approx(float(result.clip_scores[i]))) for i in best]
    assert result.label == result.top_k[0][0] and result.duration_seconds == pytest.approx(2.0)


def test_pool_mean_and_max():
    scores = np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)
    from audioembed.classifier.heads import pool_scores

    np.testing.assert_allclose(pool_scores(scores, "mean"), [0.4, 0.6])
    np.testing.assert_array_equal(pool_scores(scores, "max"), np.float32([0.6, 0.8]))
    np.testing.assert_array_equal(pool_scores(np.zeros((0, 2), np.float32), "max"), [0.0, 0.0])


def test_classify_many_keeps_order_and_returns_failures(classifier, sounds, tmp_path):
    bad = tmp_path / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    paths = [sounds / "chirp" / "chirp_000.wav", bad, sounds / "clicks" / "clicks_001.wav"]
    outcomes = list(classifier.classify_many(paths, top_k=1))
    assert (
        isinstance(outcomes[1], FailedInput)
        and outcomes[1].index == 1
        and "corrupt.wav" in outcomes[1].source
    )
    for path, outcome in zip([paths[0], paths[2]], [outcomes[0], outcomes[2]], strict=True):
        np.testing.assert_allclose(
            outcome.window_scores, classifier.classify(path).window_scores, rtol=1e-4, atol=1e-6
        )
        assert len(outcome.top_k) == 1


def test_bad_arguments_are_typed_errors(classifier):
    with pytest.raises(InvalidOptionError, match="top_k must be a positive integer, got 0"):
        classifier.classify((np.zeros(16000), 16000), top_k=0)
    with pytest.raises(ShapeError, match=r"\[N, 128\], got \[3, 7\]"):
        classifier.window_scores(np.zeros((3, 7), np.float32))
    with pytest.raises(InvalidOptionError, match="trained on raw embeddings, which were not given"):
        classifier.window_scores(None, np.zeros((3, 128), np.uint8))
    with pytest.raises(ShapeError, match=r"\[N, 4\]"):
        classifier.pool(np.zeros((3, 5), np.float32))


def test_classifier_from_other_vggish_weights_is_refused_with_both_sha256(tmp_path, embedder):
    head = ClassifierHead(HeadConfig(2), rng=np.random.default_rng(1))
    trained_on = "f" * 64  # as if trained on other weights: only the recorded sha256 matters
    contents = ClassifierFile(state_tensors(head.state_dict()), ("a", "b"), False, head.config, trained_on)
    path = write_classifier(tmp_path / "other.safetensors", contents)
    with pytest.raises(ClassifierMismatchError) as raised:
        Classifier.load(path, embedder)
    message = str(raised.value)
    assert trained_on in message and embedder.model_info.weights_sha256 in message
    assert "trained on VGGish weights" in message


def test_quantized_head_needs_the_same_pca(tmp_path, embedder, synthetic_weights):
    head = ClassifierHead(HeadConfig(2, features="quantized"), rng=np.random.default_rng(1))
    contents = ClassifierFile(
        state_tensors(head.state_dict()),
        ("a", "b"),
        False,
        head.config,
        embedder.model_info.weights_sha256,
        True,
        pca_sha256="0" * 64,
    )
    path = write_classifier(tmp_path / "q.safetensors", contents)
    with pytest.raises(ClassifierMismatchError, match="PCA parameters with sha256 0000"):
        Classifier.load(path, embedder)
    with pytest.raises(ClassifierMismatchError, match="produces none"):
        Classifier.load(path, Embedder(synthetic_weights, output="raw"))


def test_files_are_refused_with_the_reason(tmp_path, synthetic_weights, random_classifier):
    with pytest.raises(ClassifierError, match="does not exist"):
        read_classifier(tmp_path / "missing.safetensors")
    with pytest.raises(ClassifierError, match=r"not an audioembed classifier .* it holds VGGish weights"):
        read_classifier(synthetic_weights)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(ClassifierError, match="not a readable safetensors file"):
        read_classifier(garbage)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(random_classifier.read_bytes()[:-100])
    with pytest.raises(ClassifierError, match="not a readable safetensors file"):
        read_classifier(truncated)


def test_writing_is_deterministic_and_round_trips(tmp_path, random_classifier):
    contents = read_classifier(random_classifier)
    first = write_classifier(tmp_path / "a.safetensors", contents).read_bytes()
    assert (
        write_classifier(tmp_path / "b.safetensors", contents).read_bytes()
        == first
        == random_classifier.read_bytes()
    )
    again = read_classifier(tmp_path / "a.safetensors")
    assert again.labels == contents.labels and again.config == contents.config
    for name, array in contents.tensors.items():
        np.testing.assert_array_equal(again.tensors[name], array)


def test_weights_info_describes_a_classifier(random_classifier, capsys):
    assert cli.main(["weights", "info", str(random_classifier)]) == 0
    text = capsys.readouterr().out
    assert "audioembed-classifier" in text and "chirp, clicks, noise_burst, tone" in text
    assert "model=mlp" in text and "SYNTHETIC" in text and "seed: 0" in text
    assert cli.main(["weights", "info", "--json", str(random_classifier)]) == 0
    described = json.loads(capsys.readouterr().out)
    assert (
        described["labels"] == ["chirp", "clicks", "noise_burst", "tone"]
        and described["config"]["hidden"] == 16
    )


def test_heads_are_registered_models(random_classifier, classifier):
    import audioembed

    assert {"classifier_head_logistic", "classifier_head_mlp"} <= set(audioembed.list_models("classifier_*"))
    fresh = audioembed.create_model("classifier_head_mlp", num_classes=3, hidden=8, seed=0)
    assert fresh.training and fresh.layers[3].out_features == 3 and fresh.config.hidden == 8
    again = audioembed.create_model("classifier_head_mlp", num_classes=3, hidden=8, seed=0)
    np.testing.assert_array_equal(fresh.layers[0].weight.data, again.layers[0].weight.data)
    loaded = audioembed.create_model("classifier_head_mlp", weights=random_classifier)
    assert not loaded.training
    features = np.random.default_rng(0).standard_normal((3, 128)).astype(np.float32)
    np.testing.assert_array_equal(
        loaded(loaded.normalize(features)), classifier.head(classifier.head.normalize(features))
    )
    with pytest.raises(ClassifierError, match="holds a 'mlp' head, not a 'logistic' one"):
        audioembed.create_model("classifier_head_logistic", weights=random_classifier)
