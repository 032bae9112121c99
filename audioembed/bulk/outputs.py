"""Where ``audioembed embed`` writes: a directory of ``.npz`` files, one ``.jsonl``, or one ``.tfrecord``.

All writers share one small interface so the run loop does not care which is in use. Single-file writers
build their file under a temporary name and rename it only when the run completes; the directory writer
writes each ``.npz`` atomically, so an interrupted run resumes by skipping the files already written.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np

from audioembed.bulk import atomic
from audioembed.bulk.inputs import InputFile
from audioembed.bulk.tfrecord import encode_sequence_example, write_record
from audioembed.errors import AudioEmbedError, InvalidOptionError
from audioembed.result import EmbeddingResult


class OutputWriter(Protocol):
    """What the run loop needs from an output."""

    def is_done(self, file: InputFile) -> bool:
        """Whether ``file``'s output already exists and may be skipped."""

    def write(self, file: InputFile, result: EmbeddingResult) -> None:
        """Record one input's embeddings."""

    def write_failure(self, file: InputFile, error: AudioEmbedError) -> None:
        """Record that one input failed (writers without a place for it ignore this)."""

    def close(self) -> None:
        """Make everything written final."""

    def abort(self) -> None:
        """Discard anything not yet final (the run was interrupted or failed fast)."""


def open_writer(
    destination: str,
    *,
    overwrite: bool,
    needs_quantized: bool,
    provenance: dict[str, str] | None = None,
    parquet_rows: str = "per-input",
) -> OutputWriter:
    """Pick the writer from the destination's suffix: ``.jsonl``, ``.tfrecord``, ``.parquet`` (a directory
    of Parquet files, one row per input or per window: ``parquet_rows``), otherwise a directory of ``.npz``.

    ``provenance`` (weights sha256, source, synthetic flag) is stored with every ``.npz`` and ``.jsonl``
    record, so outputs made with synthetic or different weights can always be told apart.

    Raises
    ------
    InvalidOptionError
        A single-file destination exists and ``overwrite`` is false, or a TFRecord is asked for without
        quantized embeddings (the AudioSet layout stores only those).
    """
    path = Path(destination)
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".tfrecord"):
        if path.exists() and not overwrite:
            raise InvalidOptionError(f"output {destination!r} exists; pass --overwrite to replace it")
        if path.is_dir():
            raise InvalidOptionError(f"output {destination!r} is a directory, expected a {suffix} file path")
        if suffix == ".tfrecord":
            if not needs_quantized:
                raise InvalidOptionError(
                    "a .tfrecord output holds quantized embeddings (the AudioSet layout): "
                    "load PCA parameters (--pca) and do not use --output raw"
                )
            return TFRecordWriter(path)
        return JsonLinesWriter(path, provenance=provenance)
    if path.exists() and not path.is_dir():
        raise InvalidOptionError(
            f"output {destination!r} is a file; give a directory, .parquet directory, .jsonl or .tfrecord"
        )
    if suffix == ".parquet":
        from audioembed.bulk.parquet import ParquetDirectoryWriter  # needs pyarrow: only when asked for

        return ParquetDirectoryWriter(path, rows=parquet_rows, overwrite=overwrite, provenance=provenance)
    return NpzDirectoryWriter(path, overwrite=overwrite, provenance=provenance)


def write_result_npz(path: Path, result: EmbeddingResult, provenance: dict[str, str] | None = None) -> None:
    """Write one result atomically as ``.npz``.

    Arrays ``embedding`` and ``quantized`` (each when present) and ``timestamps``; scalars
    ``window_seconds``, ``hop_seconds``, ``duration_seconds``, ``sample_rate`` and ``short_clip``; plus
    one string scalar per ``provenance`` entry (e.g. ``weights_sha256``, ``synthetic``).
    """
    arrays: dict[str, np.ndarray] = {
        "timestamps": result.timestamps,
        "window_seconds": np.float64(result.window_seconds),
        "hop_seconds": np.float64(result.hop_seconds),
        "duration_seconds": np.float64(result.duration_seconds),
        "sample_rate": np.int64(result.sample_rate),
        "short_clip": np.str_(result.short_clip),
    }
    arrays.update({key: np.str_(value) for key, value in (provenance or {}).items()})
    if result.embeddings is not None:
        arrays["embedding"] = result.embeddings
    if result.quantized is not None:
        arrays["quantized"] = result.quantized
    with atomic.atomic_file(path) as handle:
        np.savez(handle, **arrays)


class NpzDirectoryWriter:
    """One ``.npz`` per input, mirroring the input tree: ``embedding``, ``quantized``, ``timestamps``, ..."""

    def __init__(self, root: Path, *, overwrite: bool, provenance: dict[str, str] | None = None) -> None:
        self.root = root
        self.overwrite = overwrite
        self.provenance = provenance

    def output_path(self, file: InputFile) -> Path:
        return self.root / f"{file.relative_name}.npz"

    def is_done(self, file: InputFile) -> bool:
        """An existing output counts as done only if it was made with the same weights and options."""
        path = self.output_path(file)
        if self.overwrite or not path.exists():
            return False
        if not self.provenance:
            return True
        try:
            with np.load(path, allow_pickle=False) as stored:
                return all(
                    key in stored and str(stored[key]) == value for key, value in self.provenance.items()
                )
        except (OSError, ValueError):  # unreadable: make it again
            return False

    def write(self, file: InputFile, result: EmbeddingResult) -> None:
        write_result_npz(self.output_path(file), result, self.provenance)

    def write_failure(self, file: InputFile, error: AudioEmbedError) -> None:
        """Failures are reported by the run loop; a directory output has no place for them."""

    def close(self) -> None:
        """Every ``.npz`` is final as soon as it is written."""

    def abort(self) -> None:
        """Nothing partial exists: each ``.npz`` was renamed into place only when complete."""


class _SingleFileWriter:
    """Shared by the one-file outputs: everything goes to a temporary file, renamed on :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self._context = atomic.atomic_file(path)
        self._handle: BinaryIO = self._context.__enter__()

    def is_done(self, file: InputFile) -> bool:
        return False  # a single file is rewritten whole: there is nothing to resume

    def close(self) -> None:
        self._context.__exit__(None, None, None)

    def abort(self) -> None:
        with contextlib.suppress(KeyboardInterrupt):
            self._context.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)


class JsonLinesWriter(_SingleFileWriter):
    """One JSON object per line and input: its path and matrices, or the error that stopped it."""

    def __init__(self, path: Path, *, provenance: dict[str, str] | None = None) -> None:
        super().__init__(path)
        self.provenance = provenance or {}

    def write(self, file: InputFile, result: EmbeddingResult) -> None:
        record = {
            "path": str(file.path),
            "name": str(file.relative_name),
            "timestamps": result.timestamps.tolist(),
            "window_seconds": result.window_seconds,
            "hop_seconds": result.hop_seconds,
            "duration_seconds": result.duration_seconds,
            "sample_rate": result.sample_rate,
            "short_clip": result.short_clip,
            **self.provenance,
        }
        if result.embeddings is not None:
            record["embedding"] = result.embeddings.tolist()
        if result.quantized is not None:
            record["quantized"] = result.quantized.tolist()
        self._write_line(record)

    def write_failure(self, file: InputFile, error: AudioEmbedError) -> None:
        self._write_line({"path": str(file.path), "name": str(file.relative_name), "error": str(error)})

    def _write_line(self, record: dict) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n")


class TFRecordWriter(_SingleFileWriter):
    """``tf.train.SequenceExample`` records in the AudioSet release layout, written without TensorFlow."""

    def write(self, file: InputFile, result: EmbeddingResult) -> None:
        if result.quantized is None:
            raise InvalidOptionError("a .tfrecord output needs quantized embeddings; load PCA parameters")
        payload = encode_sequence_example(
            video_id=str(file.relative_name),
            start_time_seconds=0.0,
            end_time_seconds=result.duration_seconds,
            embeddings=result.quantized,
        )
        buffer = io.BytesIO()
        write_record(buffer, payload)
        self._handle.write(buffer.getvalue())

    def write_failure(self, file: InputFile, error: AudioEmbedError) -> None:
        """The AudioSet layout has no error records; the run loop reports failures."""
