"""The evaluation report: text, JSON and a confusion-matrix PNG that is a real image."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image

from audioembed.classifier.metrics import single_label_metrics
from audioembed.classifier.report import format_confusion, write_report


def test_report_files_text_json_and_png(tmp_path):
    labels = ("cat", "dog", "bird")
    y_true = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    scores = np.eye(3)[[0, 0, 1, 1, 1, 2, 2, 0, 2]]
    metrics = single_label_metrics(y_true, scores, labels)
    written = write_report(metrics, tmp_path / "report", context={"classifier": "c.safetensors"})
    assert sorted(p.name for p in written) == ["confusion_matrix.png", "metrics.json", "report.txt"]

    text = (tmp_path / "report" / "report.txt").read_text()
    assert "accuracy:  0.7778" in text and "confusion matrix" in text
    assert format_confusion(metrics.confusion, labels).splitlines()[1].split() == ["cat", "2", "1", "0"]

    payload = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert payload["classifier"] == "c.safetensors" and payload["metrics"]["confusion"][2] == [1, 0, 3]

    with Image.open(tmp_path / "report" / "confusion_matrix.png") as image:
        assert image.format == "PNG"
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    assert 300 <= width <= 2000 and 300 <= height <= 2000 and width > height  # room for the colour bar
    # Not blank: many distinct colours (the blue scale, text, axes), dark ink and white background.
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50
    assert pixels.min() < 60 and pixels.max() == 255
    # The fully-correct class (dog, 2 of 2) gives a saturated blue cell: coloured area, not just ink.
    blue_heavy = (pixels[..., 2] - pixels[..., 0]) > 100
    assert blue_heavy.sum() > 0.01 * width * height
