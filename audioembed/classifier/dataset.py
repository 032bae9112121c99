"""Labelled audio files for training and evaluation: a folder per label, or a CSV / JSONL manifest.

Layouts accepted by :func:`read_dataset`:

- a **folder** with one sub-folder per label, audio files anywhere below each (searched recursively);
  every file has exactly one label;
- a **CSV manifest** with a header naming a ``path`` column and a ``labels`` (or ``label``) column; several
  labels in one cell are separated by ``;`` or ``|`` (``dog;bark``), as AudioSet's lists are;
- a **JSONL manifest**, one object per line: ``{"path": "a.wav", "labels": ["dog", "bark"]}`` (or
  ``"label": "dog"``).

Relative paths in a manifest are relative to the manifest's folder. A data set is multi-label when some file
carries more than one label (or when the caller says so), which decides the head's output (softmax or
independent sigmoids) and the metrics.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from audioembed.bulk.inputs import AUDIO_EXTENSIONS
from audioembed.errors import DatasetError

_LABEL_SEPARATORS = re.compile(r"[;|]")


@dataclass(frozen=True)
class LabelledFile:
    """One audio file and its labels (one, or several in a multi-label set)."""

    path: Path
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Dataset:
    """Labelled files and the label vocabulary.

    Attributes
    ----------
    items : tuple of LabelledFile
        In a stable order (sorted by path), so a seeded run sees the same sequence on every machine.
    labels : tuple of str
        Sorted label names; a label's index is its class index.
    multi_label : bool
        Whether a file may carry several labels.
    source : str
        What was read (for messages).
    """

    items: tuple[LabelledFile, ...]
    labels: tuple[str, ...]
    multi_label: bool
    source: str

    def label_counts(self) -> dict[str, int]:
        """Number of files carrying each label."""
        counts = Counter(label for item in self.items for label in item.labels)
        return {label: counts.get(label, 0) for label in self.labels}

    def subset(self, indices: Sequence[int], source: str) -> Dataset:
        """The files at ``indices``, with the same label vocabulary."""
        return Dataset(tuple(self.items[i] for i in indices), self.labels, self.multi_label, source)


def read_dataset(
    path: str | Path,
    *,
    multi_label: bool | None = None,
    labels: Sequence[str] | None = None,
    min_files_per_label: int = 1,
) -> Dataset:
    """Read a labelled data set from a folder or a manifest.

    Parameters
    ----------
    path : str or Path
        A folder with one sub-folder per label, a ``.csv`` manifest, or a ``.jsonl`` manifest.
    multi_label : bool, optional
        Force a multi-label (True) or single-label (False) reading; default: multi-label iff some file
        has several labels.
    labels : sequence of str, optional
        A fixed vocabulary (a trained classifier's): files with other labels are an error, and labels
        with no file are allowed. Default: the labels found, which must be at least two.
    min_files_per_label : int
        Each found label needs at least this many files (training needs several per label to split).

    Returns
    -------
    Dataset

    Raises
    ------
    DatasetError
        Missing path, no audio files, a single label, a label with too few files, a malformed manifest,
        a listed file that does not exist, several labels in a set declared single-label.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"data set {str(path)!r} does not exist")
    if path.is_dir():
        items = _read_folder(path)
    elif path.suffix.lower() == ".csv":
        items = _read_csv(path)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        items = _read_jsonl(path)
    else:
        raise DatasetError(
            f"data set {str(path)!r} is neither a folder nor a .csv / .jsonl manifest "
            f"(suffix {path.suffix!r})"
        )
    if not items:
        raise DatasetError(f"data set {str(path)!r} holds no audio files")
    items.sort(key=lambda item: str(item.path))
    has_several = any(len(item.labels) > 1 for item in items)
    if multi_label is False and has_several:
        example = next(item for item in items if len(item.labels) > 1)
        raise DatasetError(
            f"{example.path} has several labels {list(example.labels)} but the data set is single-label"
        )
    is_multi = has_several if multi_label is None else multi_label
    found = sorted({label for item in items for label in item.labels})
    if labels is None:
        if len(found) < 2:
            raise DatasetError(
                f"data set {str(path)!r} has only one label {found!r}: a classifier needs at least two"
            )
        vocabulary = tuple(found)
    else:
        vocabulary = tuple(labels)
        unknown = sorted(set(found) - set(vocabulary))
        if unknown:
            raise DatasetError(
                f"data set {str(path)!r} has labels {unknown!r} that the classifier does not know "
                f"(it knows {list(vocabulary)!r})"
            )
    dataset = Dataset(tuple(items), vocabulary, is_multi, str(path))
    scarce = {label: n for label, n in dataset.label_counts().items() if 0 < n < min_files_per_label}
    if scarce and labels is None:
        raise DatasetError(
            f"labels with fewer than {min_files_per_label} files in {str(path)!r}: {scarce!r}; "
            "add files or remove the label"
        )
    return dataset


def _read_folder(root: Path) -> list[LabelledFile]:
    sub_folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not sub_folders:
        raise DatasetError(f"data set folder {str(root)!r} has no sub-folders: make one sub-folder per label")
    items = []
    for folder in sub_folders:
        for file in sorted(folder.rglob("*")):
            if file.is_file() and file.suffix.lower() in AUDIO_EXTENSIONS:
                items.append(LabelledFile(file, (folder.name,)))
    return items


def _split_labels(cell: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip() for part in _LABEL_SEPARATORS.split(cell) if part.strip()))


def _resolve(manifest: Path, value: object, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise DatasetError(f"{where}: path must be a non-empty string, got {value!r}")
    file = Path(value.strip())
    file = file if file.is_absolute() else manifest.parent / file
    if not file.is_file():
        raise DatasetError(f"{where}: listed file {value!r} does not exist")
    return file


def _read_csv(manifest: Path) -> list[LabelledFile]:
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = [name.strip().lower() for name in reader.fieldnames or []]
        label_field = "labels" if "labels" in fields else "label" if "label" in fields else None
        if "path" not in fields or label_field is None:
            raise DatasetError(
                f"{manifest}: the CSV header must name a 'path' and a 'labels' (or 'label') column, "
                f"got {reader.fieldnames!r}"
            )
        reader.fieldnames = fields
        items = []
        for row_number, row in enumerate(reader, start=2):
            where = f"{manifest}:{row_number}"
            labels = _split_labels(row.get(label_field) or "")
            if not labels:
                raise DatasetError(f"{where}: no label for {row.get('path')!r}")
            items.append(LabelledFile(_resolve(manifest, row.get("path"), where), labels))
    return items


def _read_jsonl(manifest: Path) -> list[LabelledFile]:
    items = []
    with open(manifest, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{manifest}:{line_number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{where}: not JSON: {error}") from error
            if not isinstance(record, dict):
                raise DatasetError(f"{where}: expected an object, got {record!r}")
            raw = record.get("labels", record.get("label"))
            if isinstance(raw, str):
                labels = _split_labels(raw)
            elif isinstance(raw, list) and all(isinstance(label, str) for label in raw):
                labels = tuple(dict.fromkeys(label.strip() for label in raw if label.strip()))
            else:
                raise DatasetError(f"{where}: 'labels' must be a string or a list of strings, got {raw!r}")
            if not labels:
                raise DatasetError(f"{where}: no label for {record.get('path')!r}")
            items.append(LabelledFile(_resolve(manifest, record.get("path"), where), labels))
    return items
