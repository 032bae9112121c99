"""The Python API: a Ray Dataset of audio paths or bytes in, a Dataset of embeddings out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from audioembed import audio
from audioembed.bulk.runner import UNIT_FILES
from audioembed.errors import InvalidOptionError
from audioembed.options import EmbedOptions
from audioembed.ray._deps import require_ray
from audioembed.ray.actor import SOURCE_COLUMNS, EmbedActor, ModelSpec, ShippedWeights
from audioembed.vggish.weights import resolve_weights
from audioembed.weights_install import download_official

WEIGHTS_VIA = ("path", "object-store")


def model_spec(
    weights: str | os.PathLike | None = None,
    pca: str | os.PathLike | None = None,
    *,
    output: Literal["both", "raw", "quantized"] = "both",
    hop_seconds: float = audio.EXAMPLE_HOP_SECONDS,
    short_clip: Literal["pad", "drop"] = "pad",
    resampler: Literal["reference", "fast"] = "reference",
    batch_size: int = 64,
    allow_download: bool = False,
) -> ModelSpec:
    """Check the options and resolve the weights here, on the driver, so a mistake fails before any actor
    starts. The arguments are :class:`~audioembed.pipeline.Embedder`'s.

    Raises
    ------
    InvalidOptionError
        An option is out of its domain.
    WeightsNotFoundError
        No weights were given or found.
    """
    EmbedOptions(output=output, hop_seconds=hop_seconds, short_clip=short_clip, resampler=resampler)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InvalidOptionError(f"batch_size must be a positive integer, got {batch_size!r}")
    resolved = resolve_weights(weights, download=download_official if allow_download else None)
    return ModelSpec(
        weights=os.fspath(Path(resolved).resolve()),
        pca=None if pca is None else os.fspath(Path(pca).resolve()),
        output=output,
        hop_seconds=hop_seconds,
        short_clip=short_clip,
        resampler=resampler,
        batch_size=batch_size,
    )


def embed_dataset(
    dataset: Any,
    weights: str | os.PathLike | ModelSpec | None = None,
    pca: str | os.PathLike | None = None,
    *,
    actors: int | None = None,
    cpus_per_actor: float = 1.0,
    inputs_per_call: int = UNIT_FILES,
    weights_via: Literal["path", "object-store"] = "path",
    **options: Any,
) -> Any:
    """Embed every row of a Ray Dataset on a pool of actors, each holding one Embedder.

    Parameters
    ----------
    dataset : ray.data.Dataset
        One row per input, with a ``path`` column (files every node can read) or a ``bytes`` column
        (encoded audio, e.g. from ``ray.data.read_binary_files(..., include_paths=True)``). Other columns
        are passed through.
    weights, pca : path, optional
        As for :class:`~audioembed.pipeline.Embedder` (resolved on the driver); or a :class:`ModelSpec`
        from :func:`model_spec` as ``weights``, with no ``options``.
    actors : int, optional
        Actors in the pool; default: the cluster's CPUs divided by ``cpus_per_actor``, less one actor so
        that upstream read tasks (``read_binary_files``) always find a CPU: actors hold theirs for the whole
        run, and reads starved of CPUs stall the pipeline.
    cpus_per_actor : float
        CPUs Ray reserves for each actor.
    inputs_per_call : int
        Inputs per actor call, embedded together in one ``embed_many`` (the local engine's unit).
    weights_via : {"path", "object-store"}
        ``"path"``: each actor maps the weight file at its path (it must exist on every node).
        ``"object-store"``: the driver puts the file's bytes into the object store once; each actor fetches
        them, writes them to a node-local temporary file and maps it. Never pickled per task.
    **options
        Embedder options: ``output``, ``hop_seconds``, ``short_clip``, ``resampler``, ``batch_size``,
        ``allow_download``.

    Returns
    -------
    ray.data.Dataset
        Lazy; the input columns (minus ``bytes``) plus, per row, ``timestamps`` float64 [N], ``embedding``
        float32 [N, 128], ``quantized`` uint8 [N, 128] (N = 0 when the input failed or the options do not
        produce that matrix), ``error`` and ``error_type`` (null unless the input failed: a bad input is an
        error row, the job goes on), ``num_examples``, ``window_seconds``, ``hop_seconds``,
        ``duration_seconds``, ``sample_rate``, ``short_clip`` and ``node_id``. An actor that dies is
        restarted by Ray Data and its calls retried; every input yields exactly one row.

    Raises
    ------
    InvalidOptionError
        Not a Dataset, no ``path``/``bytes`` column, or an option out of its domain.
    MissingDependencyError
        Ray Data is not installed.
    """
    ray = require_ray()
    if not isinstance(dataset, ray.data.Dataset):
        raise InvalidOptionError(f"expected a ray.data.Dataset, got {type(dataset).__name__}")
    schema = dataset.schema(fetch_if_missing=False)
    if schema is not None and not set(SOURCE_COLUMNS) & set(schema.names):
        raise InvalidOptionError(
            f"a dataset to embed needs a 'path' or 'bytes' column, got columns {schema.names}"
        )
    if weights_via not in WEIGHTS_VIA:
        raise InvalidOptionError(f"weights_via must be one of {WEIGHTS_VIA}, got {weights_via!r}")
    for name, value in (("inputs_per_call", inputs_per_call), ("actors", actors)):
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(cpus_per_actor, (int, float)) or cpus_per_actor <= 0:
        raise InvalidOptionError(f"cpus_per_actor must be positive, got {cpus_per_actor!r}")
    if isinstance(weights, ModelSpec):
        if options or pca is not None:
            raise InvalidOptionError("pass either a ModelSpec or weights, pca and options, not both")
        spec = weights
    else:
        spec = model_spec(weights, pca, **options)
    if not ray.is_initialized():
        ray.init()
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_actor) - 1)
    shipped = ship_weights(spec) if weights_via == "object-store" else None
    return dataset.map_batches(
        EmbedActor,
        batch_size=inputs_per_call,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        fn_constructor_kwargs={"spec": spec, "shipped": shipped},
    )


def ship_weights(spec: ModelSpec) -> ShippedWeights:
    """Put the weight (and PCA) files into the object store once, as read-only byte arrays."""
    ray = require_ray()

    def put(path: str) -> list[Any]:
        return [ray.put(np.fromfile(path, dtype=np.uint8))]

    return ShippedWeights(
        weights_ref=put(spec.weights),
        weights_name=Path(spec.weights).name,
        pca_ref=None if spec.pca is None else put(spec.pca),
        pca_name=None if spec.pca is None else Path(spec.pca).name,
    )
