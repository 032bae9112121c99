"""Parquet directory output of ``audioembed embed`` (local engine): schema, both layouts, resume, errors."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from audioembed import Embedder
from audioembed.bulk.inputs import expand_inputs
from audioembed.bulk.parquet import METADATA_KEY, ParquetDirectoryWriter, as_matrix, read_parquet_directory
from audioembed.errors import InvalidOptionError, MissingDependencyError
from tests.ray_engine.ray_corpus import BROKEN, CLIPS, embed, make_corpus

pq = pytest.importorskip("pyarrow.parquet")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def expected(corpus, synthetic_weights):
    """What the local engine computes for each clip, unit by unit (the default unit holds all 10 files)."""
    files = [file for file in expand_inputs([str(corpus)]) if file.path.name != BROKEN]
    results = Embedder(synthetic_weights).embed_many([file.path for file in files])
    return {str(file.relative_name): result for file, result in zip(files, results, strict=True)}


def test_per_input_rows_hold_every_input_once_with_provenance(corpus, expected, tmp_path, synthetic_weights):
    out = tmp_path / "emb.parquet"
    assert embed(str(corpus), "-o", str(out), "--weights", str(synthetic_weights), "-q") == 1  # one broken
    table = read_parquet_directory(out)
    names = table.column("name").to_pylist()
    assert names == sorted(["0-broken", *(name.rsplit(".", 1)[0] for name, *_ in CLIPS)])
    rows = {row["name"]: row for row in table.to_pylist()}
    assert BROKEN in rows["0-broken"]["path"] and rows["0-broken"]["error"]
    assert rows["0-broken"]["embedding"] is None and rows["0-broken"]["num_examples"] == 0
    for name, result in expected.items():
        row = rows[name]
        assert row["error"] is None and row["num_examples"] == result.num_examples
        np.testing.assert_array_equal(as_matrix(row["embedding"], np.float32), result.embeddings)
        np.testing.assert_array_equal(as_matrix(row["quantized"], np.uint8), result.quantized)
        np.testing.assert_array_equal(row["timestamps"], result.timestamps)
        assert (row["sample_rate"], row["short_clip"]) == (result.sample_rate, result.short_clip)
    metadata = json.loads(pq.read_schema(next(out.glob("part-*.parquet"))).metadata[METADATA_KEY])
    info = Embedder(synthetic_weights).model_info
    assert metadata["weights_sha256"] == info.weights_sha256 == rows["a"]["weights_sha256"]
    assert metadata["layout"] == "per-input" and metadata["synthetic"] == "true"
    assert metadata["option_hop_seconds"] == "0.96" and metadata["option_resampler"] == "reference"


def test_per_window_rows_and_raw_kind(corpus, expected, tmp_path, synthetic_weights):
    out = tmp_path / "win.parquet"
    args = ["--parquet-rows", "per-window", "--kind", "raw", "--weights", str(synthetic_weights), "-q"]
    assert embed(str(corpus), "-o", str(out), *args) == 1
    table = read_parquet_directory(out)
    assert table.num_rows == sum(r.num_examples for r in expected.values()) + 1  # + the broken file's row
    for name, result in expected.items():
        rows = [row for row in table.to_pylist() if row["name"] == name]
        assert [row["example_index"] for row in rows] == list(range(result.num_examples))
        np.testing.assert_array_equal(
            as_matrix([r["embedding"] for r in rows], np.float32), result.embeddings
        )
        np.testing.assert_array_equal([r["timestamp"] for r in rows], result.timestamps)
        assert all(row["quantized"] is None for row in rows)  # --kind raw
    broken = [row for row in table.to_pylist() if row["name"] == "0-broken"]
    assert len(broken) == 1 and broken[0]["example_index"] is None and broken[0]["error"]


def test_resume_skips_inputs_in_part_files_and_refuses_other_options(
    corpus, tmp_path, synthetic_weights, capsys
):
    out = tmp_path / "r.parquet"
    args = [str(corpus), "-o", str(out), "--weights", str(synthetic_weights)]
    embed(*args)
    first = sorted(out.glob("part-*.parquet"))
    capsys.readouterr()
    assert embed(*args) == 0
    assert "embedded 0 file(s)" in (err := capsys.readouterr().err) and "skipped 10 already done" in err
    assert sorted(out.glob("part-*.parquet")) == first  # nothing rewritten
    assert embed(*args, "--hop", "0.48") == 2  # other options: resuming would mix them
    assert "option_hop_seconds" in capsys.readouterr().err
    assert embed(*args, "--hop", "0.48", "--overwrite", "-q") == 1
    assert read_parquet_directory(out).num_rows == len(CLIPS) + 1


def test_writer_flushes_parts_as_it_goes_and_keeps_buffered_rows_on_abort(corpus, tmp_path, embedder):
    files = expand_inputs([str(corpus)])[1:4]
    writer = ParquetDirectoryWriter(tmp_path / "p.parquet", inputs_per_file=2, provenance={"k": "v"})
    for file in files:
        writer.write(file, embedder.embed(file.path))
    assert len(list((tmp_path / "p.parquet").glob("part-*.parquet"))) == 1  # two inputs: one part
    writer.abort()  # the third input is a whole result: kept, so a resumed run skips it
    resumed = ParquetDirectoryWriter(tmp_path / "p.parquet", provenance={"k": "v"})
    assert all(resumed.is_done(file) for file in files)
    with pytest.raises(InvalidOptionError, match="made with k='v', this run has k='other'"):
        ParquetDirectoryWriter(tmp_path / "p.parquet", provenance={"k": "other"})
    with pytest.raises(InvalidOptionError, match="per-row"):
        ParquetDirectoryWriter(tmp_path / "q.parquet", rows="per-row")


def test_unreadable_part_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.parquet").mkdir()
    (tmp_path / "x.parquet" / "part-00000-deadbeef.parquet").write_bytes(b"not parquet")
    with pytest.raises(InvalidOptionError, match="not a readable Parquet part"):
        ParquetDirectoryWriter(tmp_path / "x.parquet")


def test_missing_pyarrow_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"audioembed\[ray\]"):
        ParquetDirectoryWriter(tmp_path / "x.parquet")
