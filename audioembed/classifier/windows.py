"""Embedded data sets (each clip's windows with its targets) and the seeded train/validation split."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from audioembed.classifier.cache import CacheStats, EmbeddingCache
from audioembed.classifier.dataset import Dataset
from audioembed.errors import DatasetError, InvalidOptionError


@dataclass(frozen=True)
class Clips:
    """The embedded clips of a data set, flattened into windows.

    Attributes
    ----------
    features : np.ndarray [shape=(W, 128)]
        float32 raw or uint8 quantized embeddings of every window of every clip.
    clip_of_window : np.ndarray [shape=(W,), int64]
        Which clip each window belongs to (0 .. M-1).
    targets : np.ndarray
        Single-label: class index per clip, int64 ``[M]``. Multi-label: 0/1 float32 ``[M, C]``.
    paths : tuple of str
        The clips' files, in clip order.
    labels : tuple of str
    multi_label : bool
    """

    features: np.ndarray
    clip_of_window: np.ndarray
    targets: np.ndarray
    paths: tuple[str, ...]
    labels: tuple[str, ...]
    multi_label: bool

    @property
    def num_clips(self) -> int:
        return len(self.paths)

    def window_targets(self) -> np.ndarray:
        """Each window's target: its clip's (``[W]`` class indices or ``[W, C]`` 0/1)."""
        return self.targets[self.clip_of_window]

    def subset(self, clip_indices: Sequence[int]) -> Clips:
        """The clips at ``clip_indices`` (renumbered 0 .. len-1), with their windows."""
        clip_indices = np.asarray(clip_indices, dtype=np.int64)
        renumber = np.full(self.num_clips, -1, np.int64)
        renumber[clip_indices] = np.arange(clip_indices.size)
        keep = renumber[self.clip_of_window] >= 0
        # Windows stay grouped by clip in the new clip order (a stable sort of the renumbered indices).
        order = np.flatnonzero(keep)[np.argsort(renumber[self.clip_of_window][keep], kind="stable")]
        return Clips(
            features=self.features[order],
            clip_of_window=renumber[self.clip_of_window[order]],
            targets=self.targets[clip_indices],
            paths=tuple(self.paths[i] for i in clip_indices),
            labels=self.labels,
            multi_label=self.multi_label,
        )


def embed_dataset(
    dataset: Dataset,
    cache: EmbeddingCache,
    *,
    features: str,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[Clips, CacheStats]:
    """Embed every file (from the cache where possible) and gather the windows of the readable ones.

    Files that cannot be read are left out and listed in the returned stats; a file with no window (only
    possible with ``short_clip="drop"``) is left out too.

    Raises
    ------
    DatasetError
        When no file at all could be embedded.
    InvalidOptionError
        When the embedder does not produce the features asked for.
    """
    results, stats = cache.embed_files([item.path for item in dataset.items], on_progress=on_progress)
    matrices, clip_ids, kept = [], [], []
    for item, result in zip(dataset.items, results, strict=True):
        if result is None or result.num_examples == 0:
            continue
        matrix = result.embeddings if features == "raw" else result.quantized
        if matrix is None:
            raise InvalidOptionError(
                f"{features} features were asked for but the embedder gives none (PCA parameters loaded?)"
            )
        clip_ids.append(np.full(matrix.shape[0], len(kept), np.int64))
        matrices.append(matrix)
        kept.append(item)
    if not kept:
        raise DatasetError(f"none of the {len(dataset.items)} files of {dataset.source!r} could be embedded")
    index = {label: i for i, label in enumerate(dataset.labels)}
    if dataset.multi_label:
        targets = np.zeros((len(kept), len(dataset.labels)), np.float32)
        for row, item in enumerate(kept):
            targets[row, [index[label] for label in item.labels]] = 1.0
    else:
        targets = np.array([index[item.labels[0]] for item in kept], np.int64)
    clips = Clips(
        features=np.concatenate(matrices, axis=0),
        clip_of_window=np.concatenate(clip_ids),
        targets=targets,
        paths=tuple(str(item.path) for item in kept),
        labels=dataset.labels,
        multi_label=dataset.multi_label,
    )
    return clips, stats


def split_clips(clips: Clips, val_fraction: float, seed: int) -> tuple[Clips, Clips]:
    """A seeded train/validation split by clip (never by window: windows of one clip are alike).

    Single-label sets are split per class, so each class keeps at least one clip on each side; multi-label
    sets are split per clip at random.

    Raises
    ------
    DatasetError
        A class with fewer than two clips (after unreadable files were left out).
    """
    if not 0.0 < val_fraction < 1.0:
        raise InvalidOptionError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    rng = np.random.default_rng(seed)
    if clips.multi_label:
        order = rng.permutation(clips.num_clips)
        count = min(max(1, round(val_fraction * clips.num_clips)), clips.num_clips - 1)
        val = np.sort(order[:count])
    else:
        val_parts = []
        for class_index, label in enumerate(clips.labels):
            members = np.flatnonzero(clips.targets == class_index)
            if members.size < 2:
                raise DatasetError(
                    f"label {label!r} has {members.size} readable file(s): a validation split needs at "
                    "least 2 per label (add files, or pass --val DATA)"
                )
            count = min(max(1, round(val_fraction * members.size)), members.size - 1)
            val_parts.append(rng.permutation(members)[:count])
        val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(clips.num_clips), val)
    return clips.subset(train), clips.subset(val)
