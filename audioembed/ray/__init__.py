"""Bulk embedding on Ray Data: actor pools that each hold one Embedder, streaming, retries.

Ray is an optional extra (``pip install "audioembed[ray]"``). Importing this package does not import Ray;
calling into it without Ray raises :class:`~audioembed.errors.MissingDependencyError` naming the extra.

>>> import ray, audioembed.ray
>>> paths = ray.data.from_items([{"path": p} for p in ["a.wav", "b.flac"]])
>>> out = audioembed.ray.embed_dataset(paths, "vggish.safetensors", actors=2)
>>> out.write_parquet("embeddings/")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audioembed.ray.actor import EmbedActor, ModelSpec
    from audioembed.ray.dataset import embed_dataset, model_spec
    from audioembed.ray.engine import run_ray_bulk

_LAZY = {
    "embed_dataset": "audioembed.ray.dataset",
    "model_spec": "audioembed.ray.dataset",
    "EmbedActor": "audioembed.ray.actor",
    "ModelSpec": "audioembed.ray.actor",
    "run_ray_bulk": "audioembed.ray.engine",
}

__all__ = ["EmbedActor", "ModelSpec", "embed_dataset", "model_spec", "run_ray_bulk"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audioembed.ray' has no attribute {name!r}")
