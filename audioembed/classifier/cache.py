"""An on-disk cache of per-file embeddings, so that training again (other head, other seed) skips VGGish.

An entry is keyed by what determines the embeddings and nothing else: the SHA-256 of the audio file's bytes
(a renamed or touched file is still a hit, an edited one a miss) and an *options key* hashed from the
weights' and PCA parameters' sha256 and the front-end options. Entries are ``.npz`` files written
atomically under ``DIR/<options key>/<2 hex>/<file sha256>.npz``, so several runs may share a cache and an
interrupted run leaves only whole entries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audioembed.bulk.atomic import atomic_file
from audioembed.pipeline import Embedder, FailedInput
from audioembed.result import EmbeddingResult

logger = logging.getLogger(__name__)

CACHE_VERSION = "1"  # bump when the entry layout changes: old entries are then simply not found
_HASH_CHUNK = 1 << 20  # bytes per read while hashing an audio file


def default_cache_dir() -> Path:
    """``$AUDIOEMBED_HOME/embedding-cache`` (default ``~/.cache/audioembed/embedding-cache``)."""
    home = os.environ.get("AUDIOEMBED_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "audioembed")
    return Path(home) / "embedding-cache"


def options_key(embedder: Embedder) -> str:
    """A hex digest of everything besides the audio that determines an embedder's outputs."""
    info = embedder.model_info
    options = embedder.options
    described = {
        "cache_version": CACHE_VERSION,
        "weights_sha256": info.weights_sha256,
        "pca_sha256": info.pca_sha256,
        "output": options.output,
        "hop_seconds": options.hop_seconds,
        "short_clip": options.short_clip,
        "resampler": options.resampler,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


def content_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CacheStats:
    """What one :meth:`EmbeddingCache.embed_files` call did."""

    hits: int = 0
    embedded: int = 0
    failed: list[FailedInput] = field(default_factory=list)


class EmbeddingCache:
    """Embeddings of files by content, computed once per options key.

    Parameters
    ----------
    directory : Path or None
        Where entries live; ``None`` disables caching (everything is embedded, nothing is written).
    embedder : Embedder
    """

    def __init__(self, directory: Path | None, embedder: Embedder) -> None:
        self.embedder = embedder
        self.directory = None if directory is None else Path(directory) / options_key(embedder)

    def _entry(self, digest: str) -> Path | None:
        return None if self.directory is None else self.directory / digest[:2] / f"{digest}.npz"

    def embed_files(
        self,
        paths: Sequence[Path],
        *,
        on_progress: Callable[[int], None] | None = None,
    ) -> tuple[list[EmbeddingResult | None], CacheStats]:
        """Embeddings of every file, from the cache where possible.

        Parameters
        ----------
        paths : sequence of Path
        on_progress : callable, optional
            Called with the number of files just finished (hits at once, then each embedded file).

        Returns
        -------
        results : list of EmbeddingResult or None
            In the order of ``paths``; None for a file that could not be read or decoded (listed in
            ``stats.failed`` with the reason).
        stats : CacheStats
        """
        results: list[EmbeddingResult | None] = [None] * len(paths)
        stats = CacheStats()
        missing: list[tuple[int, str | None]] = []
        for index, path in enumerate(paths):
            try:
                digest = content_sha256(Path(path))
            except OSError as error:
                # Unreadable: let the embedder report it in its own words, as it does for any bad file.
                logger.debug("cannot hash %s: %s", path, error)
                missing.append((index, None))
                continue
            entry = self._entry(digest)
            cached = _read_entry(entry) if entry is not None and entry.is_file() else None
            if cached is None:
                missing.append((index, digest))
            else:
                results[index] = cached
                stats.hits += 1
        if on_progress is not None and stats.hits:
            on_progress(stats.hits)
        sources = [paths[index] for index, _ in missing]
        for (index, digest), outcome in zip(
            missing, self.embedder.embed_many(sources, errors="return"), strict=True
        ):
            if isinstance(outcome, FailedInput):
                stats.failed.append(FailedInput(index=index, source=outcome.source, error=outcome.error))
            else:
                results[index] = outcome
                stats.embedded += 1
                entry = None if digest is None else self._entry(digest)
                if entry is not None:
                    _write_entry(entry, outcome)
            if on_progress is not None:
                on_progress(1)
        return results, stats


def _write_entry(path: Path, result: EmbeddingResult) -> None:
    arrays = {
        "timestamps": result.timestamps,
        "window_seconds": np.float64(result.window_seconds),
        "hop_seconds": np.float64(result.hop_seconds),
        "duration_seconds": np.float64(result.duration_seconds),
        "sample_rate": np.int64(result.sample_rate),
        "short_clip": np.str_(result.short_clip),
    }
    if result.embeddings is not None:
        arrays["embeddings"] = result.embeddings
    if result.quantized is not None:
        arrays["quantized"] = result.quantized
    try:
        with atomic_file(path) as handle:
            np.savez(handle, **arrays)
    except OSError as error:  # a full or read-only cache slows the next run down; it must not stop this one
        logger.warning("cannot write embedding cache entry %s: %s", path, error)


def _read_entry(path: Path) -> EmbeddingResult | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return EmbeddingResult(
                embeddings=data.get("embeddings"),
                quantized=data.get("quantized"),
                timestamps=data["timestamps"],
                window_seconds=float(data["window_seconds"]),
                hop_seconds=float(data["hop_seconds"]),
                duration_seconds=float(data["duration_seconds"]),
                sample_rate=int(data["sample_rate"]),
                short_clip=str(data["short_clip"]),
            )
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        zipfile.BadZipFile,
    ) as error:  # a damaged entry is recomputed, not trusted
        logger.warning("ignoring damaged embedding cache entry %s: %s", path, error)
        return None
