"""Reading labelled data sets: folders, CSV and JSONL manifests, and every way they can be unusable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audioembed.classifier.dataset import read_dataset
from audioembed.errors import DatasetError
from tests.audio_files import write_tone


def _folder(root: Path, counts: dict[str, int]) -> Path:
    for label, count in counts.items():
        for index in range(count):
            write_tone(root / label / f"{index}.wav", seconds=0.2)
    return root


def test_folder_has_one_label_per_sub_folder_sorted(tmp_path):
    root = _folder(tmp_path / "data", {"dog": 2, "cat": 3})
    write_tone(root / "cat" / "deeper" / "x.flac", seconds=0.2)  # searched recursively
    (root / "cat" / "notes.txt").write_text("not audio")  # ignored
    dataset = read_dataset(root)
    assert dataset.labels == ("cat", "dog") and not dataset.multi_label
    assert dataset.label_counts() == {"cat": 4, "dog": 2}
    assert [item.path for item in dataset.items] == sorted(item.path for item in dataset.items)


def test_csv_manifest_with_several_labels_is_multi_label(tmp_path):
    _folder(tmp_path, {"a": 3})
    (tmp_path / "m.csv").write_text("path,labels\na/0.wav,dog;bark\na/1.wav,dog\na/2.wav, cat | dog \n")
    dataset = read_dataset(tmp_path / "m.csv")
    assert dataset.multi_label and dataset.labels == ("bark", "cat", "dog")
    assert [item.labels for item in dataset.items] == [("dog", "bark"), ("dog",), ("cat", "dog")]
    assert dataset.items[0].path == tmp_path / "a" / "0.wav"  # relative to the manifest


def test_jsonl_manifest_and_forced_multi_label(tmp_path):
    _folder(tmp_path, {"a": 2})
    lines = [{"path": "a/0.wav", "labels": ["x"]}, {"path": str(tmp_path / "a" / "1.wav"), "label": "y"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    assert not read_dataset(tmp_path / "m.jsonl").multi_label
    assert read_dataset(tmp_path / "m.jsonl", multi_label=True).multi_label


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root.mkdir(), "no sub-folders"),
        (lambda root: (root / "empty_label").mkdir(parents=True), "holds no audio files"),
        (lambda root: _folder(root, {"only": 3}), "only one label ['only']"),
        (lambda root: _folder(root, {"big": 3, "small": 1}), "{'small': 1}"),
    ],
    ids=["empty-folder", "no-audio", "one-label", "too-few-files"],
)
def test_unusable_folders_are_refused_with_the_reason(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DatasetError, match=message.replace("[", r"\[").replace("{", r"\{")):
        read_dataset(root, min_files_per_label=2)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.csv", "file,labels\nx.wav,a\n", "must name a 'path'"),
        ("m.csv", "path,labels\nmissing.wav,a\n", "'missing.wav' does not exist"),
        ("m.csv", "path,labels\na/0.wav,\n", "no label"),
        ("m.jsonl", "{not json\n", "not JSON"),
        ("m.jsonl", '{"path": "a/0.wav", "labels": 3}\n', "must be a string or a list"),
        ("m.txt", "", "neither a folder nor"),
    ],
)
def test_malformed_manifests_are_refused_naming_the_line(tmp_path, name, text, message):
    _folder(tmp_path, {"a": 1})
    (tmp_path / name).write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_dataset(tmp_path / name)


def test_missing_path_single_label_conflict_and_unknown_labels(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nowhere")
    _folder(tmp_path, {"a": 2})
    (tmp_path / "m.csv").write_text("path,labels\na/0.wav,x;y\na/1.wav,z\n")
    with pytest.raises(DatasetError, match="several labels"):
        read_dataset(tmp_path / "m.csv", multi_label=False)
    with pytest.raises(DatasetError, match=r"labels \['y', 'z'\] that the classifier does not know"):
        read_dataset(tmp_path / "m.csv", labels=("x",))
    # A fixed vocabulary (evaluation) accepts a set where some labels have no file.
    assert read_dataset(tmp_path / "m.csv", labels=("x", "y", "z", "w")).labels == ("x", "y", "z", "w")
