"""A directory of Parquet files: one row per input or one row per window, provenance in every file.

The directory holds ``part-NNNNN-XXXXXXXX.parquet`` files, each written atomically once it holds
``inputs_per_file`` inputs (and the rest on close or interruption), so an interrupted run leaves only whole
files and resumes by skipping the inputs they name. Every file carries, in its schema metadata under the
key ``audioembed``, a JSON object: the layout, the package version, the weights' sha256, source and synthetic
flag, and the embedding options. Columns (``name`` is the output key: the input's path below its directory
argument, without extension):

per-input (``--parquet-rows per-input``)
    name string, path string, error string (null unless the input failed), num_examples int32,
    timestamps list<float64>, embedding list<fixed_size_list<float32, 128>>,
    quantized list<fixed_size_list<uint8, 128>>, window_seconds, hop_seconds, duration_seconds float64,
    sample_rate int32, short_clip string, weights_sha256 string.
per-window (``--parquet-rows per-window``)
    the same, with example_index int32, timestamp float64, embedding fixed_size_list<float32, 128> and
    quantized fixed_size_list<uint8, 128> in place of the lists; an input without windows (it failed, or
    ``--short-clip drop`` on a short clip) has one row whose example_index is null.

A matrix the options do not produce (``--kind raw`` has no quantized) is null.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from audioembed._version import __version__
from audioembed.bulk import atomic
from audioembed.bulk.inputs import InputFile
from audioembed.errors import AudioEmbedError, InvalidOptionError, MissingDependencyError
from audioembed.result import EmbeddingResult
from audioembed.vggish.params import EMBEDDING_SIZE

PARQUET_ROWS = ("per-input", "per-window")
METADATA_KEY = b"audioembed"
PART_GLOB = "part-*.parquet"


def import_pyarrow() -> Any:
    """``pyarrow`` and ``pyarrow.parquet``, or a clear error naming the extra that installs them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as error:
        raise MissingDependencyError(
            'Parquet output needs pyarrow: pip install "audioembed[ray]" (or pip install pyarrow)'
        ) from error
    return pyarrow


class ParquetDirectoryWriter:
    """Rows of every input into Parquet part files in ``root`` (see the module docstring for the schema).

    Parameters
    ----------
    root : Path
        The directory (created if missing).
    rows : {"per-input", "per-window"}
    overwrite : bool
        Delete existing part files first instead of resuming from them.
    provenance : dict of str to str
        Weights and options; stored in every file and compared on resume.
    inputs_per_file : int
        Inputs buffered before a part file is written.

    Raises
    ------
    InvalidOptionError
        ``rows`` is not a layout, or existing part files were made with other weights, options or layout
        (resuming would mix them).
    """

    def __init__(
        self,
        root: Path,
        *,
        rows: str = "per-input",
        overwrite: bool = False,
        provenance: dict[str, str] | None = None,
        inputs_per_file: int = 256,
    ) -> None:
        if rows not in PARQUET_ROWS:
            raise InvalidOptionError(f"parquet rows must be one of {PARQUET_ROWS}, got {rows!r}")
        self.pa = import_pyarrow()
        self.root = root
        self.rows = rows
        self.inputs_per_file = inputs_per_file
        self.metadata = {"layout": rows, "audioembed_version": __version__, **(provenance or {})}
        self._buffer: list[dict[str, Any]] = []
        self._buffered_inputs = 0
        self._done: set[str] = set()
        root.mkdir(parents=True, exist_ok=True)
        for part in sorted(root.glob(PART_GLOB)):
            if overwrite:
                part.unlink()
            else:
                self._done.update(self._names_in(part))

    def _names_in(self, part: Path) -> list[str]:
        pq = self.pa.parquet
        try:
            stored = json.loads((pq.read_schema(part).metadata or {}).get(METADATA_KEY, b"{}"))
            names = pq.read_table(part, columns=["name"]).column("name").to_pylist()
        except (OSError, ValueError, self.pa.ArrowException) as error:
            raise InvalidOptionError(
                f"{str(part)!r} is not a readable Parquet part ({error}); remove it or pass --overwrite"
            ) from error
        keys = [key for key in self.metadata if key != "audioembed_version"]
        differing = [key for key in keys if stored.get(key) != self.metadata[key]]
        if differing:
            raise InvalidOptionError(
                f"{str(part)!r} was made with "
                + ", ".join(f"{key}={stored.get(key)!r}" for key in differing)
                + ", this run has "
                + ", ".join(f"{key}={self.metadata[key]!r}" for key in differing)
                + ": resuming would mix them; pass --overwrite or another output directory"
            )
        return names

    def is_done(self, file: InputFile) -> bool:
        """Whether a part file holds a row of ``file`` (a failed input counts too: --overwrite retries it)."""
        return str(file.relative_name) in self._done

    def write(self, file: InputFile, result: EmbeddingResult) -> None:
        base = self._base(file) | {
            "error": None,
            "window_seconds": result.window_seconds,
            "hop_seconds": result.hop_seconds,
            "duration_seconds": result.duration_seconds,
            "sample_rate": result.sample_rate,
            "short_clip": result.short_clip,
        }
        count = result.num_examples
        if self.rows == "per-input":
            self._buffer.append(
                base
                | {
                    "num_examples": count,
                    "timestamps": result.timestamps,
                    "embedding": result.embeddings,
                    "quantized": result.quantized,
                }
            )
        elif count == 0:
            self._buffer.append(base | {"num_examples": 0})
        else:
            for index in range(count):
                self._buffer.append(
                    base
                    | {
                        "num_examples": count,
                        "example_index": index,
                        "timestamp": result.timestamps[index],
                        "embedding": None if result.embeddings is None else result.embeddings[index],
                        "quantized": None if result.quantized is None else result.quantized[index],
                    }
                )
        self._input_added()

    def write_failure(self, file: InputFile, error: AudioEmbedError) -> None:
        self._buffer.append(self._base(file) | {"error": str(error), "num_examples": 0})
        self._input_added()

    def close(self) -> None:
        self._flush()

    def abort(self) -> None:
        """Buffered rows are whole results: keep them, so a resumed run need not redo them."""
        self._flush()

    def _base(self, file: InputFile) -> dict[str, Any]:
        return {
            "name": str(file.relative_name),
            "path": str(file.path),
            "weights_sha256": self.metadata.get("weights_sha256"),
        }

    def _input_added(self) -> None:
        self._buffered_inputs += 1
        if self._buffered_inputs >= self.inputs_per_file:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        table = self._table()
        part = self.root / f"part-{self._next_index():05d}-{uuid.uuid4().hex[:8]}.parquet"
        with atomic.atomic_file(part) as handle:
            self.pa.parquet.write_table(table, handle)
        self._done.update(row["name"] for row in self._buffer)
        self._buffer, self._buffered_inputs = [], 0

    def _table(self) -> Any:
        """The buffered rows as a table; matrices go in as NumPy buffers (no Python floats: this is the
        driver's hot path on a cluster, and float32 values must round-trip exactly)."""
        pa, schema = self.pa, self._schema()
        columns = []
        for field in schema:
            cells = [row.get(field.name) for row in self._buffer]
            if field.name in ("embedding", "quantized", "timestamps"):
                columns.append(_nested_array(pa, field.type, cells))
            else:
                columns.append(pa.array(cells, type=field.type))
        return pa.Table.from_arrays(columns, schema=schema)

    def _next_index(self) -> int:
        indices = [int(part.name.split("-")[1]) for part in self.root.glob(PART_GLOB)]
        return max(indices, default=-1) + 1

    def _schema(self) -> Any:
        pa = self.pa
        vector_f32 = pa.list_(pa.float32(), EMBEDDING_SIZE)
        vector_u8 = pa.list_(pa.uint8(), EMBEDDING_SIZE)
        if self.rows == "per-input":
            per_row = [
                ("timestamps", pa.list_(pa.float64())),
                ("embedding", pa.list_(vector_f32)),
                ("quantized", pa.list_(vector_u8)),
            ]
        else:
            per_row = [
                ("example_index", pa.int32()),
                ("timestamp", pa.float64()),
                ("embedding", vector_f32),
                ("quantized", vector_u8),
            ]
        fields = [
            ("name", pa.string()),
            ("path", pa.string()),
            ("error", pa.string()),
            ("num_examples", pa.int32()),
            *per_row,
            ("window_seconds", pa.float64()),
            ("hop_seconds", pa.float64()),
            ("duration_seconds", pa.float64()),
            ("sample_rate", pa.int32()),
            ("short_clip", pa.string()),
            ("weights_sha256", pa.string()),
        ]
        return pa.schema(fields, metadata={METADATA_KEY: json.dumps(self.metadata, sort_keys=True)})


def _nested_array(pa: Any, kind: Any, cells: list[np.ndarray | None]) -> Any:
    """A list or fixed-size-list column from per-row arrays (None = null), built from one flat buffer."""
    mask = np.array([cell is None for cell in cells], dtype=bool)
    if pa.types.is_fixed_size_list(kind):  # per-window vectors: one [128] array per row
        dtype = kind.value_type.to_pandas_dtype()
        flat = np.zeros((len(cells), kind.list_size), dtype=dtype)
        for index, cell in enumerate(cells):
            if cell is not None:
                flat[index] = cell
        values = pa.array(flat.reshape(-1), type=kind.value_type)
        return pa.FixedSizeListArray.from_arrays(values, kind.list_size, mask=pa.array(mask))
    # per-input: one [N] or [N, 128] array per row, as a list (of vectors)
    present = [cell for cell in cells if cell is not None]
    lengths = np.array([0 if cell is None else len(cell) for cell in cells], dtype=np.int32)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    inner = kind.value_type
    if pa.types.is_fixed_size_list(inner):
        dtype = inner.value_type.to_pandas_dtype()
        flat = np.concatenate([np.asarray(c, dtype=dtype).reshape(-1) for c in present]) if present else []
        values = pa.FixedSizeListArray.from_arrays(
            pa.array(np.asarray(flat, dtype=dtype), type=inner.value_type), inner.list_size
        )
    else:
        dtype = inner.to_pandas_dtype()
        flat = np.concatenate([np.asarray(c, dtype=dtype) for c in present]) if present else []
        values = pa.array(np.asarray(flat, dtype=dtype), type=inner)
    return pa.ListArray.from_arrays(offsets, values, type=kind, mask=pa.array(mask))


def read_parquet_directory(root: str | Path) -> Any:
    """Every part file of ``root`` as one ``pyarrow.Table``, rows sorted by name (and example_index)."""
    pa = import_pyarrow()
    parts = sorted(Path(root).glob(PART_GLOB))
    if not parts:
        raise InvalidOptionError(f"{str(root)!r} holds no Parquet part files ({PART_GLOB})")
    table = pa.concat_tables([pa.parquet.read_table(part) for part in parts])
    keys = [("name", "ascending")]
    if "example_index" in table.column_names:
        keys.append(("example_index", "ascending"))
    return table.sort_by(keys)


def as_matrix(rows: Any, dtype: type) -> np.ndarray:
    """A list of 128-vectors (one per-input cell, or a per-window column) as an [N, 128] array."""
    return np.asarray([list(row) for row in rows], dtype=dtype).reshape(-1, EMBEDDING_SIZE)
