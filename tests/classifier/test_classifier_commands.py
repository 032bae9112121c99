"""``audioembed evaluate`` and ``audioembed classify`` end to end, and the files they refuse."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from audioembed import cli
from audioembed.classifier import Classifier, ClassifierFile, read_classifier, write_classifier


def test_evaluate_prints_metrics_and_writes_the_report(
    random_classifier, heldout_sounds, synthetic_weights, tmp_path, capsys
):
    report = tmp_path / "report"
    args = [
        "evaluate",
        str(heldout_sounds),
        "--classifier",
        str(random_classifier),
        "--weights",
        str(synthetic_weights),
    ]
    assert cli.main([*args, "--report", str(report), "--no-cache", "-q"]) == 0
    out = capsys.readouterr().out
    assert "clips:     40" in out and "macro-F1:" in out and "true \\ predicted" in out
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["classifier"] == str(random_classifier) and metrics["synthetic_weights"] is True
    assert sum(map(sum, metrics["metrics"]["confusion"])) == 40
    assert (report / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_classify_writes_jsonl_and_csv_matching_the_api(
    random_classifier, sounds, synthetic_weights, embedder, tmp_path
):
    inputs = [sounds / "tone" / "tone_000.wav", sounds / "clicks" / "clicks_000.wav"]
    common = ["--classifier", str(random_classifier), "--weights", str(synthetic_weights), "--top-k", "2"]
    assert cli.main(["classify", *map(str, inputs), *common, "-o", str(tmp_path / "out.jsonl")]) == 0
    assert cli.main(["classify", *map(str, inputs), *common, "-o", str(tmp_path / "out.csv")]) == 0
    classifier = Classifier.load(random_classifier, embedder)
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert [r["path"] for r in records] == [str(p) for p in inputs] and len(rows) == 2 * 3  # 2 windows + clip
    for path, record in zip(inputs, records, strict=True):
        expected = classifier.classify(path, top_k=2)
        np.testing.assert_allclose(record["window_scores"], expected.window_scores, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(record["clip_scores"], expected.clip_scores, rtol=1e-4, atol=1e-6)
        assert [t["label"] for t in record["top_k"]] == [label for label, _ in expected.top_k]
        assert record["timestamps"] == [0.0, 0.96] and record["labels"] == list(classifier.labels)
        clip_row = next(r for r in rows if r["path"] == str(path) and r["kind"] == "clip")
        assert clip_row["top_k"].split(";")[0].split(":")[0] == expected.top_k[0][0]
        assert float(clip_row[expected.top_k[0][0]]) == pytest.approx(expected.top_k[0][1], rel=1e-4)


def test_classify_reports_a_bad_file_and_goes_on(
    random_classifier, sounds, synthetic_weights, tmp_path, capsys
):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all")
    good = sounds / "chirp" / "chirp_000.wav"
    args = [
        "classify",
        str(bad),
        str(good),
        "--classifier",
        str(random_classifier),
        "--weights",
        str(synthetic_weights),
    ]
    assert cli.main(args) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["path"] for line in captured.out.splitlines()] == [str(good)]
    assert "failed" in captured.err and "bad.wav" in captured.err


def test_wrong_classifier_files_are_refused_with_the_reason(
    random_classifier, synthetic_weights, sounds, tmp_path, capsys
):
    clip = str(sounds / "tone" / "tone_000.wav")
    weights = ["--weights", str(synthetic_weights)]
    assert cli.main(["classify", clip, "--classifier", str(synthetic_weights), *weights]) == 2
    assert "is not an audioembed classifier" in capsys.readouterr().err
    contents = read_classifier(random_classifier)
    other = tmp_path / "other.safetensors"
    write_classifier(other, ClassifierFile(**{**vars(contents), "vggish_sha256": "e" * 64}))
    assert cli.main(["evaluate", str(sounds), "--classifier", str(other), *weights]) == 2
    err = capsys.readouterr().err
    assert "was trained on VGGish weights with sha256 eeee" in err and "train it again" in err
    assert cli.main(["classify", clip, "--classifier", str(random_classifier), *weights, "-o", "x.npz"]) == 2
    assert "must end in .jsonl or .csv" in capsys.readouterr().err
