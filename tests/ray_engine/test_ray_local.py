"""``embed --engine ray`` and ``audioembed.ray`` on a real local Ray (``ray.init(num_cpus=2)``).

The reference for every output is the local engine with the same options, in this process: the Ray engine
must reproduce it bit for bit, survive a killed actor, and resume an interrupted run.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from audioembed import Embedder
from audioembed.bulk.inputs import expand_inputs
from audioembed.bulk.outputs import open_writer
from audioembed.bulk.parquet import read_parquet_directory
from audioembed.errors import InvalidOptionError
from audioembed.ray import embed_dataset, model_spec, run_ray_bulk
from tests.ray_engine.ray_corpus import BROKEN, CLIPS, assert_same_npz_trees, embed


def both_engines(corpus, tmp_path, suffix, weights, *extra):
    """Run the local and the Ray engine into ``local{suffix}`` and ``ray{suffix}``; return both paths."""
    common = ["--weights", str(weights), "--unit-files", "4", "-q", *extra]
    local, remote = tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}"
    assert embed(str(corpus), "-o", str(local), *common) == 1  # 1: the broken file failed
    assert embed(str(corpus), "-o", str(remote), *common, "--engine", "ray", "--actors", "2") == 1
    return local, remote


def test_npz_outputs_are_bit_for_bit_the_local_engines(
    local_ray, corpus, tmp_path, synthetic_weights, capsys
):
    local, remote = both_engines(corpus, tmp_path, "", synthetic_weights)
    assert_same_npz_trees(local, remote)
    report = capsys.readouterr().err
    assert report.count(f"failed: {corpus / BROKEN}") == 2  # the error row was reported by both engines


def test_jsonl_and_tfrecord_are_byte_for_byte_the_local_engines(
    local_ray, corpus, tmp_path, synthetic_weights
):
    for suffix in (".jsonl", ".tfrecord"):
        local, remote = both_engines(corpus, tmp_path, suffix, synthetic_weights)
        assert local.read_bytes() == remote.read_bytes() and local.stat().st_size > 0


def test_parquet_per_window_matches_the_local_engine_with_two_cpu_actors(
    local_ray, corpus, tmp_path, synthetic_weights
):
    before = set(all_embed_actors())
    common = ["--weights", str(synthetic_weights), "--unit-files", "4", "-q", "--parquet-rows", "per-window"]
    local, remote = tmp_path / "local.parquet", tmp_path / "ray.parquet"
    assert embed(str(corpus), "-o", str(local), *common) == 1
    assert embed(str(corpus), "-o", str(remote), *common, "--engine", "ray", "--actor-cpus", "2") == 1
    assert len(set(all_embed_actors()) - before) == 1  # 2 CPUs / 2 per actor: one actor
    assert read_parquet_directory(local).equals(read_parquet_directory(remote))


def test_api_on_bytes_with_weights_from_the_object_store(local_ray, corpus, tmp_path, synthetic_weights):
    """Error rows, the Embedder's bits, and weights that reach the actors with no file on the node."""
    paths = sorted(str(path) for path in corpus.rglob("*") if path.is_file())
    dataset = local_ray.data.read_binary_files(paths, include_paths=True)
    copy = tmp_path / "shipped.safetensors"
    copy.write_bytes(synthetic_weights.read_bytes())
    out = embed_dataset(dataset, copy, inputs_per_call=1, weights_via="object-store")
    copy.unlink()  # the driver has put the bytes into the object store; actors start only now
    rows = {row["path"]: row for row in out.take_all()}
    by_name = {os.path.basename(path): row for path, row in rows.items()}
    assert sorted(by_name) == sorted(os.path.basename(path) for path in paths)  # each input once
    broken = by_name[BROKEN]
    assert broken["error_type"] == "AudioDecodeError" and broken["embedding"].shape == (0, 128)
    embedder = Embedder(synthetic_weights)
    for name, *_ in CLIPS:
        row = by_name[os.path.basename(name)]
        expected = embedder.embed(corpus / name)  # one input alone: what inputs_per_call=1 computes
        assert row["error"] is None or row["error"] != row["error"]  # null (None, or NaN from pandas)
        np.testing.assert_array_equal(row["embedding"], expected.embeddings)
        np.testing.assert_array_equal(row["quantized"], expected.quantized)
        np.testing.assert_array_equal(row["timestamps"], expected.timestamps)
        assert row["num_examples"] == expected.num_examples and row["sample_rate"] == expected.sample_rate
        assert row["node_id"] == local_ray.get_runtime_context().get_node_id()


def test_api_refuses_bad_datasets_and_options(local_ray, synthetic_weights):
    with pytest.raises(InvalidOptionError, match=r"expected a ray\.data\.Dataset, got list"):
        embed_dataset(["a.wav"], synthetic_weights)
    no_source = local_ray.data.from_items([{"file": "a.wav"}])
    with pytest.raises(InvalidOptionError, match=r"'path' or 'bytes' column, got columns \['file'\]"):
        embed_dataset(no_source, synthetic_weights)
    paths = local_ray.data.from_items([{"path": "a.wav"}])
    with pytest.raises(InvalidOptionError, match="weights_via must be one of"):
        embed_dataset(paths, synthetic_weights, weights_via="nfs")
    with pytest.raises(InvalidOptionError, match="actors must be a positive integer, got 0"):
        embed_dataset(paths, synthetic_weights, actors=0)
    with pytest.raises(InvalidOptionError, match="hop"):
        embed_dataset(paths, synthetic_weights, hop_seconds=0.005)
    with pytest.raises(InvalidOptionError, match="either a ModelSpec"):
        embed_dataset(paths, model_spec(synthetic_weights), output="raw")


def all_embed_actors() -> dict[str, dict]:
    """Every EmbedActor this cluster has had, from Ray's control store (works without a dashboard)."""
    from ray._private import state

    return {key: actor for key, actor in state.actors().items() if "EmbedActor" in actor["ActorClassName"]}


def embed_actors(ray) -> dict[str, dict]:
    """The live EmbedActor processes."""
    return {key: actor for key, actor in all_embed_actors().items() if actor["State"] == "ALIVE"}


def command_provenance(weights) -> dict[str, str]:
    """What ``audioembed embed`` stores with default options, so its outputs and resume accept ours."""
    info = Embedder(weights).model_info
    return {
        "weights_sha256": info.weights_sha256,
        "weights_source": info.weights_source,
        "synthetic": "true",
        "option_kind": "both",
        "option_hop_seconds": "0.96",
        "option_short_clip": "pad",
        "option_resampler": "reference",
    }


class Interrupting:
    """A writer that runs ``action`` once, after its ``after``-th write (a kill, or a Ctrl-C)."""

    def __init__(self, writer, after, action):
        self.writer, self.after, self.action, self.writes = writer, after, action, 0

    def is_done(self, file):
        return self.writer.is_done(file)

    def write(self, file, result):
        self.writer.write(file, result)
        self.writes += 1
        if self.writes == self.after:
            self.action()

    def write_failure(self, file, error):
        self.writer.write_failure(file, error)

    def close(self):
        self.writer.close()

    def abort(self):
        self.writer.abort()


@pytest.mark.slow
def test_actors_killed_mid_run_are_restarted_and_every_input_is_written_once(
    local_ray, corpus, tmp_path, synthetic_weights
):
    files = expand_inputs([str(corpus)])
    spec = model_spec(synthetic_weights)
    killed: dict[str, int] = {}

    def kill_every_actor():  # whichever is mid-call has its call retried on the restarted actor
        for actor_id, actor in embed_actors(local_ray).items():
            os.kill(actor["Pid"], signal.SIGKILL)
            killed[actor_id] = actor["Pid"]

    writer = Interrupting(
        open_writer(
            str(tmp_path / "r.parquet"),
            overwrite=False,
            needs_quantized=True,
            provenance=command_provenance(synthetic_weights),
        ),
        1,
        kill_every_actor,
    )
    summary = run_ray_bulk(files, writer, spec, pca_loaded=True, actors=2, unit_files=1)
    assert killed, "no EmbedActor process was found to kill"
    from ray._private import state

    assert all(state.actors()[actor_id]["NumRestarts"] >= 1 for actor_id in killed)
    assert summary.embedded == len(CLIPS) and len(summary.failures) == 1
    table = read_parquet_directory(tmp_path / "r.parquet")
    assert table.column("name").to_pylist() == sorted(str(file.relative_name) for file in files)  # once each
    local = tmp_path / "local.parquet"
    assert (
        embed(str(corpus), "-o", str(local), "--weights", str(synthetic_weights), "--unit-files", "1", "-q")
        == 1
    )
    assert table.equals(read_parquet_directory(local))


@pytest.mark.slow
def test_an_interrupted_run_resumes_without_redoing_finished_inputs(
    local_ray, corpus, tmp_path, synthetic_weights, capsys
):
    out = tmp_path / "out"
    args = [
        str(corpus),
        "-o",
        str(out),
        "--weights",
        str(synthetic_weights),
        "--engine",
        "ray",
        "--actors",
        "2",
    ]
    files = expand_inputs([str(corpus)])

    def ctrl_c():
        raise KeyboardInterrupt

    writer = Interrupting(
        open_writer(
            str(out), overwrite=False, needs_quantized=True, provenance=command_provenance(synthetic_weights)
        ),
        3,
        ctrl_c,
    )
    with pytest.raises(KeyboardInterrupt):
        run_ray_bulk(files, writer, model_spec(synthetic_weights), pca_loaded=True, actors=2, unit_files=2)
    finished = {path: path.stat().st_mtime_ns for path in out.rglob("*.npz")}
    assert len(finished) == 3
    capsys.readouterr()
    assert embed(*args) == 1  # the broken file
    assert "skipped 3 already done" in capsys.readouterr().err
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # not redone
    assert len(list(out.rglob("*.npz"))) == len(CLIPS)
