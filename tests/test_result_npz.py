"""``EmbeddingResult.save_npz``: the public way to write one result (the client command uses it)."""

from __future__ import annotations

import numpy as np

from audioembed import EmbeddingResult


def _result(quantized: bool) -> EmbeddingResult:
    rng = np.random.default_rng(0)
    return EmbeddingResult(
        embeddings=rng.standard_normal((3, 128)).astype(np.float32),
        quantized=rng.integers(0, 256, (3, 128), dtype=np.uint8) if quantized else None,
        timestamps=np.array([0.0, 0.96, 1.92]),
        window_seconds=0.96,
        hop_seconds=0.96,
        duration_seconds=3.0,
        sample_rate=44100,
        short_clip="none",
    )


def test_save_npz_round_trips_arrays_facts_and_provenance(tmp_path):
    result = _result(quantized=True)
    target = tmp_path / "new" / "dir" / "clip.npz"  # parents are created
    assert result.save_npz(target, provenance={"weights_sha256": "ab" * 32}) == target
    with np.load(target) as saved:
        np.testing.assert_array_equal(saved["embedding"], result.embeddings)
        np.testing.assert_array_equal(saved["quantized"], result.quantized)
        np.testing.assert_array_equal(saved["timestamps"], result.timestamps)
        assert float(saved["hop_seconds"]) == 0.96 and int(saved["sample_rate"]) == 44100
        assert str(saved["short_clip"]) == "none" and str(saved["weights_sha256"]) == "ab" * 32
    assert [p.name for p in target.parent.iterdir()] == ["clip.npz"]  # no temporary file left behind


def test_save_npz_leaves_out_what_the_result_lacks(tmp_path):
    target = _result(quantized=False).save_npz(str(tmp_path / "raw.npz"))
    with np.load(target) as saved:
        assert "quantized" not in saved.files and saved["embedding"].shape == (3, 128)
