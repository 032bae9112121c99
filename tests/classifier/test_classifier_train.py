"""``audioembed train``: a head learns generated sounds, reproducibly, from cached embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed import Embedder, cli
from audioembed.classifier import Classifier, read_classifier
from audioembed.classifier.cache import EmbeddingCache
from audioembed.classifier.dataset import read_dataset
from audioembed.classifier.evaluation import evaluate_clips
from audioembed.classifier.windows import embed_dataset

CHANCE = 0.25  # four balanced classes
# Measured with synthetic weights: 0.9 held-out accuracy; a broken loss, gradient or optimiser stays near
# chance, and so does a head that ignores its input.
MIN_HELDOUT_ACCURACY = 0.7


def train(data, output, weights, cache, *extra: str) -> int:
    return cli.main(
        [
            "train",
            str(data),
            "-o",
            str(output),
            "--weights",
            str(weights),
            "--cache",
            str(cache),
            "-q",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory, sounds, synthetic_weights, embedding_cache):
    path = tmp_path_factory.mktemp("trained") / "sounds.safetensors"
    assert train(sounds, path, synthetic_weights, embedding_cache, "--seed", "3") == 0
    return path


def test_trained_head_is_well_above_chance_on_heldout_clips(
    trained, heldout_sounds, embedder, embedding_cache
):
    classifier = Classifier.load(trained, embedder)
    dataset = read_dataset(heldout_sounds, labels=classifier.labels)
    clips, _ = embed_dataset(dataset, EmbeddingCache(embedding_cache, embedder), features="raw")
    metrics = evaluate_clips(classifier.head, clips, multi_label=False)
    assert metrics.clips == 40
    assert metrics.accuracy >= MIN_HELDOUT_ACCURACY > 2 * CHANCE
    # The file records what was trained and how.
    contents = read_classifier(trained)
    assert contents.labels == ("chirp", "clicks", "noise_burst", "tone") and not contents.multi_label
    assert contents.vggish_sha256 == embedder.model_info.weights_sha256 and contents.vggish_synthetic
    assert contents.training["options"]["seed"] == 3 and contents.training["train_clips"] == 64
    assert (
        contents.training["val_clips"] == 16
        and 1 <= contents.training["best_epoch"] <= contents.training["epochs_run"]
    )


def test_same_seed_gives_a_bit_identical_file_and_reuses_the_cache(
    trained, tmp_path, sounds, synthetic_weights, embedding_cache, monkeypatch, capsys
):
    def refuse(self, *args, **kwargs):
        raise AssertionError("VGGish ran although every embedding is cached")

    monkeypatch.setattr(Embedder, "run_model", refuse)  # a re-run must not embed anything
    again = tmp_path / "again.safetensors"
    assert train(sounds, again, synthetic_weights, embedding_cache, "--seed", "3") == 0
    assert again.read_bytes() == trained.read_bytes()
    other = tmp_path / "other.safetensors"
    assert train(sounds, other, synthetic_weights, embedding_cache, "--seed", "4") == 0
    assert other.read_bytes() != trained.read_bytes()
    assert "from the cache" not in capsys.readouterr().err  # -q: quiet


def test_mlp_on_quantized_features_with_max_pooling_and_a_separate_validation_set(
    tmp_path, sounds, heldout_sounds, synthetic_weights, embedding_cache, embedder
):
    path = tmp_path / "mlp.safetensors"
    args = ["--model", "mlp", "--features", "quantized", "--pool", "max", "--val", str(heldout_sounds)]
    assert train(sounds, path, synthetic_weights, embedding_cache, *args, "--hidden", "32") == 0
    classifier = Classifier.load(path, embedder)
    assert (classifier.config.model, classifier.config.features, classifier.config.pool) == (
        "mlp",
        "quantized",
        "max",
    )
    assert classifier.training["val_accuracy"] >= MIN_HELDOUT_ACCURACY
    result = classifier.classify(heldout_sounds / "tone" / "tone_000.wav")
    np.testing.assert_array_equal(result.clip_scores, result.window_scores.max(axis=0))


def test_multi_label_manifest_trains_sigmoid_outputs(
    tmp_path, sounds, synthetic_weights, embedding_cache, embedder
):
    rows = ["path,labels"]
    for label in ("chirp", "clicks", "tone"):
        for index in range(12):
            extra = ";tonal" if label in ("chirp", "tone") else ""
            rows.append(f"{sounds / label / f'{label}_{index:03d}.wav'},{label}{extra}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    path = tmp_path / "multi.safetensors"
    assert train(tmp_path / "m.csv", path, synthetic_weights, embedding_cache, "--epochs", "30") == 0
    classifier = Classifier.load(path, embedder)
    assert classifier.multi_label and classifier.labels == ("chirp", "clicks", "tonal", "tone")
    assert classifier.training["val_map"] > 0.6
    scores = classifier.classify(sounds / "tone" / "tone_019.wav").window_scores
    assert not np.allclose(scores.sum(axis=1), 1.0)  # independent sigmoids, not a softmax


def test_unreadable_file_is_reported_and_skipped(
    tmp_path, sounds, synthetic_weights, embedding_cache, capsys
):
    data = tmp_path / "data"
    for label in ("chirp", "tone"):
        (data / label).mkdir(parents=True)
        for index in range(4):
            name = f"{label}_{index:03d}.wav"
            (data / label / name).write_bytes((sounds / label / name).read_bytes())
    (data / "tone" / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage")
    output = tmp_path / "c.safetensors"
    assert train(data, output, synthetic_weights, embedding_cache, "--epochs", "5") == 0
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "corrupt.wav" in captured.err
    assert "1 unreadable file(s) skipped" in captured.out
    assert read_classifier(output).training["skipped_files"] == 1


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ({}, "has no sub-folders"),
        ({"tone": 3}, "only one label ['tone']"),
        ({"tone": 3, "chirp": 1}, "fewer than 2 files"),
    ],
    ids=["empty-folder", "one-label", "too-few-files"],
)
def test_unusable_data_sets_fail_with_the_reason(
    tmp_path, sounds, synthetic_weights, layout, message, capsys
):
    data = tmp_path / "data"
    data.mkdir()
    for label, count in layout.items():
        (data / label).mkdir()
        for index in range(count):
            name = f"{label}_{index:03d}.wav"
            (data / label / name).write_bytes((sounds / label / name).read_bytes())
    assert train(data, tmp_path / "c.safetensors", synthetic_weights, tmp_path / "cache") == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c.safetensors").exists()


def test_option_errors(tmp_path, sounds, synthetic_weights, capsys):
    assert train(sounds, tmp_path / "c.safetensors", synthetic_weights, tmp_path, "--lr", "0") == 2
    assert "learning_rate must be positive, got 0.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train(sounds, tmp_path / "c.safetensors", synthetic_weights, tmp_path, "--model", "forest")
