"""The ``serve`` and ``client`` commands: entry points, parsing, and the client against a real server."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from audioembed_server.client_command import COMMAND as CLIENT
from audioembed_server.serve_command import COMMAND as SERVE

from audioembed import cli
from audioembed.commands import Command
from audioembed.errors import InvalidOptionError
from tests.server.conftest import assert_same_result, wav_bytes

pytestmark = pytest.mark.timeout(120)
ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_entry_points_name_the_commands():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][
        "audioembed.commands"
    ]
    assert set(table) == {"serve", "client"}
    for name, target in table.items():
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        assert isinstance(command, Command) and command.name == name


def test_module_entry_point_lists_both_commands():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "server")])}
    completed = subprocess.run(
        [sys.executable, "-m", "audioembed_server", "serve", "--help"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert completed.returncode == 0, completed.stderr
    assert "--max-queue-delay-ms" in completed.stdout and "AUDIOEMBED_MAX_QUEUE_DELAY_MS" in completed.stdout


def test_serve_refuses_a_bad_configuration(monkeypatch):
    monkeypatch.setenv("AUDIOEMBED_PORT", "99999")
    args = cli.build_parser([SERVE, CLIENT]).parse_args(["serve"])
    with pytest.raises(InvalidOptionError, match=r"port must be an integer in 0\.\.65535, got 99999"):
        args._run(args)


def _client(address: str, *argv: str) -> int:
    args = cli.build_parser([SERVE, CLIENT]).parse_args(["client", "--address", address, *argv])
    return args._run(args)


def test_client_embeds_files_prints_summaries_and_writes_npz(served, embedder, tmp_path, capsys):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(wav_bytes(2.1, seed=40))
    out = tmp_path / "out"
    assert _client(served[1], str(clip), "-o", str(out), "--info") == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0]["synthetic"] is True and lines[0]["dimension"] == 128
    summary = lines[1]
    assert (summary["file"], summary["num_examples"], summary["short_clip"]) == (str(clip), 2, "none")
    saved = np.load(summary["npz"])
    expected = embedder.embed(clip)
    np.testing.assert_allclose(saved["embedding"], expected.embeddings, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(saved["timestamps"], expected.timestamps)
    assert str(saved["short_clip"]) == "none" and saved["quantized"].dtype == np.uint8


def test_client_stream_mode_equals_one_shot(served, embedder, tmp_path, capsys):
    from audioembed_server import EmbeddingClient

    clip = tmp_path / "long.wav"
    clip.write_bytes(wav_bytes(3.0, rate=44100, seed=41))
    with EmbeddingClient(served[1]) as client:
        assert_same_result(client.embed_file_stream(clip, chunk_bytes=50_000), embedder.embed(clip))
    assert _client(served[1], str(clip), "--stream", "--kind", "raw") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_examples"] == 3 and summary["raw"] is True and summary["quantized"] is False


def test_client_reports_bad_files_and_exits_1(served, tmp_path, capsys):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    good.write_bytes(wav_bytes(1.0))
    bad.write_bytes(b"not audio at all")
    assert _client(served[1], str(good), str(bad), str(tmp_path / "missing.wav")) == 1
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines()]
    assert lines[0]["num_examples"] == 1
    assert "INVALID_ARGUMENT" in lines[1]["error"] and "cannot decode audio" in lines[1]["error"]
    assert "missing.wav" in lines[2]["error"]
    assert "2 of 3 files failed" in captured.err


def test_serve_allow_download_offline_names_the_synthetic_alternative(tmp_path):
    # Offline for real: every HTTP(S) request goes to a proxy port nobody listens on (loopback only).
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    proxy = f"http://127.0.0.1:{closed_port}"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.upper().startswith("AUDIOEMBED_") and key.lower() != "no_proxy"
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "server")]),
        AUDIOEMBED_HOME=str(tmp_path / "home"),
        HTTPS_PROXY=proxy,
        https_proxy=proxy,
        HTTP_PROXY=proxy,
        http_proxy=proxy,
    )
    completed = subprocess.run(
        [sys.executable, "-m", "audioembed_server", "serve", "--allow-download", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
    )
    assert completed.returncode != 0
    cache = tmp_path / "home" / "vggish.safetensors"
    assert "could not reach https://storage.googleapis.com/audioset/vggish_model.ckpt" in completed.stderr
    assert f"`audioembed weights synth --seed 0 -o {cache}`" in completed.stderr, completed.stderr
    assert not cache.exists()
