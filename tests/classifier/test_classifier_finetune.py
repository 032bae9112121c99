"""``audioembed train --fine-tune``: VGGish layers trained with the head, stored with it, used to classify."""

from __future__ import annotations

import numpy as np
import pytest

from audioembed import cli
from audioembed.classifier import Classifier, read_classifier
from audioembed.vggish import load_vggish


@pytest.fixture(scope="module")
def small(tmp_path_factory, sounds):
    """Two labels, four clips each: enough to take a few optimiser steps."""
    root = tmp_path_factory.mktemp("small")
    for label in ("chirp", "clicks"):
        (root / label).mkdir()
        for index in range(4):
            name = f"{label}_{index:03d}.wav"
            (root / label / name).write_bytes((sounds / label / name).read_bytes())
    return root


def fine_tune(data, output, weights, mode: str) -> int:
    args = ["train", str(data), "-o", str(output), "--weights", str(weights), "--fine-tune", mode]
    return cli.main([*args, "--epochs", "2", "--patience", "2", "--val-fraction", "0.25", "--no-cache", "-q"])


@pytest.mark.slow
def test_fine_tune_fc_stores_the_dense_layers_and_classifies_with_them(
    small, tmp_path, synthetic_weights, embedder
):
    path = tmp_path / "fc.safetensors"
    assert fine_tune(small, path, synthetic_weights, "fc") == 0
    contents = read_classifier(path)
    assert contents.training["mode"] == "fine-tune fc"
    assert sorted(contents.vggish_tensors) == [
        "fc1_1.bias",
        "fc1_1.weight",
        "fc1_2.bias",
        "fc1_2.weight",
        "fc2.bias",
        "fc2.weight",
    ]
    base = load_vggish(synthetic_weights).state_dict()
    assert not np.array_equal(contents.vggish_tensors["fc2.weight"], base["fc2.weight"])  # it trained

    classifier = Classifier.load(path, embedder)
    assert classifier.fine_tuned and classifier.embedder is not embedder
    clip = small / "chirp" / "chirp_000.wav"
    tuned = classifier.embedder.embed(clip).embeddings
    assert not np.allclose(tuned, embedder.embed(clip).embeddings)  # its own VGGish
    expected = classifier.window_scores(tuned)
    np.testing.assert_allclose(classifier.classify(clip).window_scores, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
def test_fine_tune_all_trains_the_conv_layers_too(small, tmp_path, synthetic_weights):
    path = tmp_path / "all.safetensors"
    assert fine_tune(small, path, synthetic_weights, "all") == 0
    tuned = read_classifier(path).vggish_tensors
    base = load_vggish(synthetic_weights).state_dict()
    assert set(tuned) == set(base)
    assert not np.array_equal(tuned["conv1.weight"], base["conv1.weight"])


def test_fine_tune_refuses_quantized_features(small, tmp_path, synthetic_weights, capsys):
    args = ["train", str(small), "-o", str(tmp_path / "q.safetensors"), "--weights", str(synthetic_weights)]
    assert cli.main([*args, "--fine-tune", "fc", "--features", "quantized", "-q"]) == 2
    assert "--fine-tune trains on raw embeddings" in capsys.readouterr().err
