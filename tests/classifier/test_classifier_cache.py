"""The embedding cache: a re-run reads every embedding back without calling the model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from audioembed import Embedder
from audioembed.classifier.cache import EmbeddingCache, options_key


@pytest.fixture
def counting(embedder, monkeypatch):
    """The shared Embedder, counting the inputs ``embed_many`` is asked to embed (patched on the class,
    so nothing is left on the shared instance afterwards)."""
    calls = []
    original = Embedder.embed_many

    def embed_many(self, sources, **kwargs):
        sources = list(sources)
        calls.extend(sources)
        return original(self, sources, **kwargs)

    monkeypatch.setattr(Embedder, "embed_many", embed_many)
    return embedder, calls


@pytest.fixture
def files(sounds, tmp_path):
    root = tmp_path / "files"
    shutil.copytree(sounds / "tone", root)
    return sorted(root.iterdir())[:4]


def test_second_run_reads_the_cache_and_never_calls_the_model(files, tmp_path, counting, monkeypatch):
    embedder, calls = counting
    first, stats = EmbeddingCache(tmp_path / "cache", embedder).embed_files(files)
    assert (stats.hits, stats.embedded, len(calls)) == (0, 4, 4)

    def refuse(self, *args, **kwargs):
        raise AssertionError("the model ran although every embedding is cached")

    monkeypatch.setattr(Embedder, "run_model", refuse)  # the layer below, however it would be reached
    second, stats = EmbeddingCache(tmp_path / "cache", embedder).embed_files(files)
    assert (stats.hits, stats.embedded, len(calls)) == (4, 0, 4)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a.embeddings, b.embeddings)
        np.testing.assert_array_equal(a.quantized, b.quantized)
        np.testing.assert_array_equal(a.timestamps, b.timestamps)
        assert (a.duration_seconds, a.short_clip, a.sample_rate) == (
            b.duration_seconds,
            b.short_clip,
            b.sample_rate,
        )


def test_keys_follow_content_weights_and_options(files, tmp_path, synthetic_weights, embedder):
    cache = EmbeddingCache(tmp_path / "cache", embedder)
    cache.embed_files(files)
    renamed = files[0].with_name("renamed.wav")
    files[0].rename(renamed)  # same bytes under another name: a hit
    files[1].write_bytes(files[2].read_bytes()[:-200] + files[1].read_bytes()[-200:])  # edited: a miss
    _, stats = cache.embed_files([renamed, files[1]])
    assert (stats.hits, stats.embedded) == (1, 1)
    other_hop = Embedder(synthetic_weights, hop_seconds=0.48)
    assert options_key(other_hop) != options_key(embedder)
    _, stats = EmbeddingCache(tmp_path / "cache", other_hop).embed_files([renamed])
    assert (stats.hits, stats.embedded) == (0, 1)


def test_damaged_entries_are_recomputed_and_failures_reported(files, tmp_path, embedder):
    cache = EmbeddingCache(tmp_path / "cache", embedder)
    cache.embed_files(files[:1])
    (entry,) = (tmp_path / "cache").rglob("*.npz")
    entry.write_bytes(b"not a zip file")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"garbage")
    results, stats = cache.embed_files([files[0], bad])
    assert results[0] is not None and results[1] is None
    assert (stats.hits, stats.embedded) == (0, 1)
    (failure,) = stats.failed
    assert failure.index == 1 and "bad.wav" in failure.source
    _, stats = EmbeddingCache(None, embedder).embed_files(files[:1])  # caching off: always embeds
    assert stats.embedded == 1
