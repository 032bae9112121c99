"""``audioembed embed`` end to end: outputs, resume, bad files, fail-fast, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from audioembed import Embedder, cli
from audioembed.bulk.tfrecord import read_audioset_tfrecord
from tests.assertions import assert_close_embeddings, assert_close_quantized
from tests.audio_files import write_tone

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def folder(tmp_path) -> Path:
    root = tmp_path / "in"
    write_tone(root / "a.wav", seconds=2.0)
    write_tone(root / "speech" / "b.flac", seconds=1.2, rate=44100, channels=2)
    write_tone(root / "speech" / "c.ogg", seconds=0.5, rate=22050, subtype="VORBIS")
    return root


def embed(*args: str) -> int:
    return cli.main(["embed", *args])


def test_directory_output_mirrors_the_tree_and_matches_the_api(folder, tmp_path, synthetic_weights):
    out = tmp_path / "out"
    assert embed(str(folder), "-o", str(out), "--weights", str(synthetic_weights), "-q") == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz")) == [
        "a.npz",
        "speech/b.npz",
        "speech/c.npz",
    ]
    saved = np.load(out / "speech" / "b.npz")
    expected = Embedder(synthetic_weights).embed(folder / "speech" / "b.flac")
    assert_close_embeddings(saved["embedding"], expected.embeddings)
    assert_close_quantized(saved["quantized"], expected.quantized)
    np.testing.assert_array_equal(saved["timestamps"], expected.timestamps)
    assert str(np.load(out / "speech" / "c.npz")["short_clip"]) == "pad"
    info = Embedder(synthetic_weights).model_info
    assert str(saved["synthetic"]) == "true" and str(saved["weights_sha256"]) == info.weights_sha256


def test_existing_outputs_are_skipped_unless_overwrite(folder, tmp_path, synthetic_weights, capsys):
    out = tmp_path / "out"
    args = [str(folder), "-o", str(out), "--weights", str(synthetic_weights)]
    assert embed(*args) == 0
    first = (out / "a.npz").stat().st_mtime_ns
    (out / "speech" / "b.npz").unlink()  # as if the first run was interrupted before b
    capsys.readouterr()
    assert embed(*args) == 0
    err = capsys.readouterr().err
    assert "embedded 1 file(s)" in err and "skipped 2 already done" in err
    assert (out / "a.npz").stat().st_mtime_ns == first and (out / "speech" / "b.npz").exists()
    time.sleep(0.01)
    assert embed(*args, "--overwrite") == 0
    assert (out / "a.npz").stat().st_mtime_ns != first


def test_resume_redoes_outputs_made_with_other_weights_or_options(
    folder, tmp_path, synthetic_weights, capsys
):
    out = tmp_path / "out"
    args = [str(folder), "-o", str(out), "--weights", str(synthetic_weights)]
    assert embed(*args) == 0
    assert str(np.load(out / "a.npz")["short_clip"]) == "none"  # the outcome, not the option
    capsys.readouterr()
    assert embed(*args) == 0
    assert "embedded 0 file(s)" in capsys.readouterr().err  # same weights and options: all skipped
    assert embed(*args, "--hop", "0.48") == 0
    assert "embedded 3 file(s)" in capsys.readouterr().err  # another hop: every output is redone
    assert np.load(out / "a.npz")["timestamps"].tolist() == pytest.approx([0.0, 0.48, 0.96])


def test_jsonl_output_one_line_per_input(folder, tmp_path, synthetic_weights):
    out = tmp_path / "all.jsonl"
    assert embed(str(folder), "-o", str(out), "--weights", str(synthetic_weights), "-q", "--kind", "raw") == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["a", "speech/b", "speech/c"]
    assert np.asarray(lines[0]["embedding"]).shape == (2, 128) and "quantized" not in lines[0]
    assert lines[0]["synthetic"] == "true" and len(lines[0]["weights_sha256"]) == 64
    assert embed(str(folder), "-o", str(out), "--weights", str(synthetic_weights)) == cli.EXIT_USAGE  # exists


def test_tfrecord_output_in_audioset_layout(folder, tmp_path, synthetic_weights):
    out = tmp_path / "emb.tfrecord"
    assert embed(str(folder), "-o", str(out), "--weights", str(synthetic_weights), "-q") == 0
    records = read_audioset_tfrecord(str(out))
    assert [r.video_id for r in records] == ["a", "speech/b", "speech/c"]
    expected = Embedder(synthetic_weights).embed(folder / "a.wav")
    assert_close_quantized(records[0].embeddings, expected.quantized)
    assert records[0].end_time_seconds == pytest.approx(2.0)


def test_raw_only_tfrecord_is_refused(folder, tmp_path, synthetic_weights, capsys):
    out = tmp_path / "emb.tfrecord"
    code = embed(str(folder), "-o", str(out), "--weights", str(synthetic_weights), "--kind", "raw")
    assert code == cli.EXIT_USAGE and "quantized" in capsys.readouterr().err and not out.exists()


def test_a_corrupted_file_is_reported_and_skipped(folder, tmp_path, synthetic_weights, capsys):
    (folder / "speech" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk")
    out = tmp_path / "out"
    assert embed(str(folder), "-o", str(out), "--weights", str(synthetic_weights)) == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "1 failed" in err and "embedded 3 file(s)" in err
    assert sorted(p.name for p in out.rglob("*.npz")) == ["a.npz", "b.npz", "c.npz"]


def test_fail_fast_stops_at_the_first_failure(folder, tmp_path, synthetic_weights, capsys):
    (folder / "0-broken.wav").write_bytes(b"garbage")
    out = tmp_path / "out.jsonl"
    assert embed(str(folder), "-o", str(out), "--weights", str(synthetic_weights), "--fail-fast") == 1
    assert "--fail-fast" in capsys.readouterr().err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 1 and "error" in lines[0]


def test_plain_progress_lines_when_not_a_terminal(folder, tmp_path, synthetic_weights, capsys):
    assert embed(str(folder / "a.wav"), "-o", str(tmp_path / "o"), "--weights", str(synthetic_weights)) == 0
    err = capsys.readouterr().err
    assert "[1/1]" in err and "× real time" in err
    assert "SYNTHETIC" in err  # synthetic weights are labelled wherever results are reported


def test_ctrl_c_leaves_no_partial_output(tmp_path, synthetic_weights):
    inputs = tmp_path / "many"
    for i in range(40):
        write_tone(inputs / f"clip{i:02d}.wav", seconds=4.0, frequency=100.0 + i)
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "server")])}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "audioembed.cli",
            "embed",
            str(inputs),
            "-o",
            str(out),
            "--weights",
            str(synthetic_weights),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    for line in process.stderr:  # wait until work is under way (after the synthetic-weights warning)
        if line.startswith("[1/40]"):
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == cli.EXIT_INTERRUPTED, err
    assert "interrupted" in err
    assert list(tmp_path.glob("*.jsonl*")) == [] and list(tmp_path.glob(".*partial")) == []
