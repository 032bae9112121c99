"""``audioembed smoke-test`` passes on sound weights and fails, saying why, on broken ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from audioembed import cli, smoke_test
from audioembed.result import EmbeddingResult, ModelInfo


def test_passes_with_synthetic_weights(synthetic_weights, capsys):
    assert cli.main(["smoke-test", "--weights", str(synthetic_weights)]) == 0
    out = capsys.readouterr().out
    assert "Looks Good To Me" in out and "SYNTHETIC" in out
    assert "batch independent" in out and "deterministic" in out and "FAIL" not in out


def test_fails_when_the_model_produces_non_finite_values(synthetic_weights, tmp_path, capsys):
    broken = tmp_path / "broken.safetensors"
    tensors = load_file(synthetic_weights)
    with safe_open(synthetic_weights, framework="numpy") as handle:
        metadata = handle.metadata()
    tensors["vggish/fc2/biases"] = np.full_like(tensors["vggish/fc2/biases"], np.nan)
    save_file(tensors, broken, metadata=metadata)
    assert cli.main(["smoke-test", "--weights", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] in-process: embed the test signal: InvalidInputError" in out and "non-finite" in out
    assert "Smoke test FAILED" in out


def test_reference_statistics_are_checked_for_official_weights():
    info = ModelInfo(
        weights_sha256="0" * 64,
        weights_source="vggish_model.ckpt",
        weights_format="native",
        synthetic=False,
        pca_loaded=True,
        pca_sha256=None,
        sample_rate=16000,
        window_seconds=0.96,
        hop_seconds=0.96,
    )
    assert smoke_test.expects_reference_statistics(info)
    rng = np.random.default_rng(0)
    result = EmbeddingResult(
        embeddings=(rng.standard_normal((3, 128)) * 0.343 + 0.000657).astype(np.float32),
        quantized=rng.integers(0, 256, (3, 128), dtype=np.uint8),
        timestamps=np.array([0.0, 0.96, 1.92]),
        window_seconds=0.96,
        hop_seconds=0.96,
        duration_seconds=3.0,
        sample_rate=16000,
        short_clip="none",
    )
    checks = {c.name: c for c in smoke_test.check_result(result, info, label="x")}
    assert checks["x: raw std"].passed  # drawn with the reference std
    assert not checks["x: postprocessed std"].passed  # uniform bytes have std ~74, not 89.3


def test_signal_is_the_reference_sine():
    x = smoke_test.sine_signal()
    assert x.shape == (48000,) and x[0] == 0.0 and np.isclose(x[4], np.sin(2 * np.pi * 1000 * 4 / 16000))


def test_without_weights_it_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AUDIOEMBED_HOME", str(tmp_path))
    monkeypatch.delenv("AUDIOEMBED_WEIGHTS", raising=False)
    assert cli.main(["smoke-test"]) == cli.EXIT_USAGE
    assert "audioembed weights download" in capsys.readouterr().err


def test_runs_as_a_module(synthetic_weights):
    root = Path(__file__).resolve().parents[1]
    completed = subprocess.run(
        [sys.executable, "-m", "audioembed.smoke_test", "--weights", str(synthetic_weights)],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "Looks Good To Me" in completed.stdout
