"""The Ray Data actor: one :class:`~audioembed.pipeline.Embedder` per actor, a batch of inputs per call.

Ray Data calls :class:`EmbedActor` once per batch; the actor embeds the batch with one
``Embedder.embed_many`` call, exactly as the local engine embeds one unit of inputs, so the model sees the
same batches and returns the same bits. A batch that carries a ``unit`` column is split at its unit boundaries
first (Ray may hand two small units over in one call).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from audioembed.errors import InvalidOptionError
from audioembed.pipeline import Embedder, FailedInput
from audioembed.result import EmbeddingResult
from audioembed.vggish.params import EMBEDDING_SIZE

SOURCE_COLUMNS = ("path", "bytes")  # where an input's audio comes from: a file path, or encoded bytes
RESULT_COLUMNS = (
    "timestamps",
    "embedding",
    "quantized",
    "error",
    "error_type",
    "num_examples",
    "window_seconds",
    "hop_seconds",
    "duration_seconds",
    "sample_rate",
    "short_clip",
    "node_id",
)


@dataclass(frozen=True)
class ModelSpec:
    """What every actor builds its Embedder from (small: this is what gets pickled to the actors).

    ``weights`` and ``pca`` are paths as the actors see them; with ``shipped`` set they are replaced by
    files the actor writes from the object store (see :class:`ShippedWeights`).
    """

    weights: str
    pca: str | None
    output: str
    hop_seconds: float
    short_clip: str
    resampler: str
    batch_size: int


@dataclass(frozen=True)
class ShippedWeights:
    """Weights put once into the object store: the references (wrapped in lists, so Ray does not resolve
    them into copies in every actor's constructor arguments) and the file names to recreate."""

    weights_ref: list[Any]
    weights_name: str
    pca_ref: list[Any] | None
    pca_name: str | None


class EmbedActor:
    """Embeds batches of inputs; Ray Data keeps a pool of these, each holding one Embedder.

    Parameters
    ----------
    spec : ModelSpec
    shipped : ShippedWeights, optional
        When given, the weight files come from the object store and are written to a node-local temporary
        directory, which the Embedder maps (the directory is removed once the tensors are mapped).
    """

    def __init__(self, spec: ModelSpec, shipped: ShippedWeights | None = None) -> None:
        import ray  # absolute: the ray package, present wherever this actor runs

        self.node_id = ray.get_runtime_context().get_node_id()
        options = {key: value for key, value in asdict(spec).items() if key not in ("weights", "pca")}
        if shipped is None:
            self.embedder = Embedder(spec.weights, spec.pca, **options)
            return
        folder = Path(tempfile.mkdtemp(prefix="audioembed-weights-"))
        try:
            weights = _materialise(ray.get(shipped.weights_ref[0]), folder / shipped.weights_name)
            pca = None
            if shipped.pca_ref is not None and shipped.pca_name is not None:
                pca = _materialise(ray.get(shipped.pca_ref[0]), folder / shipped.pca_name)
            self.embedder = Embedder(weights, pca, **options)
        finally:
            shutil.rmtree(folder, ignore_errors=True)  # mapped pages stay valid after the unlink

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Embed one batch: input columns ``path`` or ``bytes`` (others pass through), result columns added.

        Returns
        -------
        dict of str to np.ndarray
            Per row: ``timestamps`` float64 [N], ``embedding`` float32 [N, 128], ``quantized`` uint8
            [N, 128] (N = 0 when failed or not produced), ``error`` and ``error_type`` (None, or the message
            and the class name of the :mod:`audioembed.errors` error), the clip's
            ``num_examples``, ``window_seconds``, ``hop_seconds``, ``duration_seconds``, ``sample_rate``,
            ``short_clip``, and the ``node_id`` that computed it.
        """
        column = next((name for name in SOURCE_COLUMNS if name in batch), None)
        if column is None:
            raise InvalidOptionError(
                f"a dataset to embed needs a 'path' or 'bytes' column, got columns {sorted(batch)}"
            )
        sources = batch["bytes"] if column == "bytes" else batch["path"]
        sources = [bytes(item) if column == "bytes" else str(item) for item in sources]
        items: list[EmbeddingResult | FailedInput] = []
        for start, stop in _unit_spans(batch.get("unit"), len(sources)):
            items += self.embedder.embed_many(sources[start:stop], errors="return")
        out = {name: values for name, values in batch.items() if name not in ("bytes", "unit")}
        out.update(_result_columns(items, self.node_id))
        return out


def _materialise(data: Any, path: Path) -> str:
    with open(path, "wb") as handle:
        handle.write(memoryview(data))
    return os.fspath(path)


def _unit_spans(units: np.ndarray | None, count: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each run of equal unit ids (the whole batch when there is no unit column)."""
    if units is None or count == 0:
        return [(0, count)]
    cuts = [0, *(np.flatnonzero(units[1:] != units[:-1]) + 1).tolist(), count]
    return list(itertools.pairwise(cuts))


def _result_columns(items: list[EmbeddingResult | FailedInput], node_id: str) -> dict[str, np.ndarray]:
    count = len(items)
    columns: dict[str, np.ndarray] = {
        "timestamps": np.empty(count, dtype=object),
        "embedding": np.empty(count, dtype=object),
        "quantized": np.empty(count, dtype=object),
        "error": np.empty(count, dtype=object),
        "error_type": np.empty(count, dtype=object),
        "num_examples": np.zeros(count, dtype=np.int64),
        "window_seconds": np.full(count, np.nan),
        "hop_seconds": np.full(count, np.nan),
        "duration_seconds": np.full(count, np.nan),
        "sample_rate": np.zeros(count, dtype=np.int64),
        "short_clip": np.empty(count, dtype=object),
        "node_id": np.full(count, node_id, dtype=object),
    }
    empty_raw = np.zeros((0, EMBEDDING_SIZE), np.float32)
    empty_quantized = np.zeros((0, EMBEDDING_SIZE), np.uint8)
    for index, item in enumerate(items):
        if isinstance(item, FailedInput):
            columns["timestamps"][index] = np.zeros(0)
            columns["embedding"][index], columns["quantized"][index] = empty_raw, empty_quantized
            columns["error"][index] = str(item.error)
            columns["error_type"][index] = type(item.error).__name__
            columns["short_clip"][index] = ""
            continue
        columns["timestamps"][index] = item.timestamps
        columns["embedding"][index] = empty_raw if item.embeddings is None else item.embeddings
        columns["quantized"][index] = empty_quantized if item.quantized is None else item.quantized
        columns["num_examples"][index] = item.num_examples
        for name in ("window_seconds", "hop_seconds", "duration_seconds", "sample_rate", "short_clip"):
            columns[name][index] = getattr(item, name)
    return columns
