"""``audioembed embed --engine ray``: the local engine's run, with the embedding done on a Ray cluster.

Everything around the embedding is the local engine's: the input list, the writers (and so resume and
provenance), the units of inputs, progress and the summary. The driver builds one dataset block per unit,
the actors embed one unit per call, and the driver writes each row as it streams back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np

from audioembed import errors
from audioembed.bulk.inputs import InputFile
from audioembed.bulk.outputs import OutputWriter
from audioembed.bulk.runner import UNIT_FILES, RunSummary, record_results, split_units
from audioembed.pipeline import FailedInput
from audioembed.ray._deps import require_ray
from audioembed.ray.actor import ModelSpec
from audioembed.ray.dataset import embed_dataset
from audioembed.result import EmbeddingResult


def run_ray_bulk(
    files: list[InputFile],
    writer: OutputWriter,
    spec: ModelSpec,
    *,
    pca_loaded: bool,
    address: str | None = None,
    actors: int | None = None,
    cpus_per_actor: float = 1.0,
    unit_files: int = UNIT_FILES,
    weights_via: str = "path",
    ordered: bool = False,
    fail_fast: bool = False,
    quiet: bool = False,
) -> RunSummary:
    """Embed ``files`` on Ray and write each result with ``writer``, as ``bulk.runner.run_bulk`` does.

    Parameters
    ----------
    spec : ModelSpec
        The model and options every actor loads.
    pca_loaded : bool
        Whether the Embedder these options describe has PCA parameters (then results carry quantized).
    address : str, optional
        A running cluster (``ray start --head`` prints it; ``"auto"`` finds a local one). Default: the
        cluster this process is already connected to, else a new local one for this run.
    cpus_per_actor : float
        CPUs Ray reserves per actor. The fused engine runs one worker thread per CPU its process may use,
        so on a big node fewer, wider actors avoid oversubscribing it.
    ordered : bool
        Write results in input order (single-file outputs, so they match the local engine's byte for byte).
    """
    ray = require_ray()
    todo = [file for file in files if not writer.is_done(file)]
    skipped = len(files) - len(todo)
    if not todo:
        return record_results(iter(()), writer, total=0, skipped=skipped, quiet=quiet)
    started_here = not ray.is_initialized()
    if started_here:
        if address is None:  # a cluster of this machine for this run only: no dashboard to serve
            ray.init(include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    context.execution_options.preserve_order = ordered
    context.enable_progress_bars = False  # the run's own progress bar reports per file
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # not one line per dataset start and end
    try:
        # from_blocks keeps one block per unit and takes the blocks' metadata here; from_arrow would run a
        # remote task per block for it first (~1.3 s of a short job's start-up on 2 CPUs). from_blocks is a
        # DeveloperAPI (Ray 2.60): should a release drop it, from_arrow does the same, only slower.
        make_dataset = getattr(ray.data, "from_blocks", ray.data.from_arrow)
        dataset = make_dataset(_unit_tables(split_units(todo, unit_files)))
        if actors is None:  # the blocks are in memory already: no read task needs a CPU, so use them all
            actors = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_actor))
        out = embed_dataset(
            dataset,
            spec,
            actors=actors,
            cpus_per_actor=cpus_per_actor,
            inputs_per_call=unit_files,
            weights_via=weights_via,
        )
        results = _rows(out, {str(file.relative_name): file for file in todo}, spec, pca_loaded)
        return record_results(
            results, writer, total=len(todo), skipped=skipped, fail_fast=fail_fast, quiet=quiet
        )
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        if started_here:
            ray.shutdown()


def _unit_tables(units: list[list[InputFile]]) -> list[Any]:
    """One Arrow table (one dataset block) per unit: ``path``, ``name`` and the unit's index."""
    import pyarrow  # a dependency of Ray Data

    return [
        pyarrow.table(
            {
                "path": [str(file.path) for file in unit],
                "name": [str(file.relative_name) for file in unit],
                "unit": np.full(len(unit), index, dtype=np.int64),
            }
        )
        for index, unit in enumerate(units)
    ]


def _rows(
    dataset: Any, files: dict[str, InputFile], spec: ModelSpec, pca_loaded: bool
) -> Iterator[tuple[InputFile, EmbeddingResult | FailedInput]]:
    """Stream the output rows back as ``(file, result or failure)``, as the local engine yields them."""
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for index, name in enumerate(batch["name"]):
            file = files[str(name)]
            yield file, _item(batch, index, file, spec, pca_loaded)


def _item(
    batch: dict[str, np.ndarray], index: int, file: InputFile, spec: ModelSpec, pca_loaded: bool
) -> EmbeddingResult | FailedInput:
    message = batch["error"][index]
    if isinstance(message, str):  # Ray hands a null back as None or NaN, depending on the block format
        error_class = getattr(errors, str(batch["error_type"][index]), errors.AudioEmbedError)
        if not (isinstance(error_class, type) and issubclass(error_class, errors.AudioEmbedError)):
            error_class = errors.AudioEmbedError
        return FailedInput(index=-1, source=str(file.path), error=error_class(str(message)))
    return EmbeddingResult(
        embeddings=None if spec.output == "quantized" else np.asarray(batch["embedding"][index]),
        quantized=None if spec.output == "raw" or not pca_loaded else np.asarray(batch["quantized"][index]),
        timestamps=np.asarray(batch["timestamps"][index], dtype=np.float64),
        window_seconds=float(batch["window_seconds"][index]),
        hop_seconds=float(batch["hop_seconds"][index]),
        duration_seconds=float(batch["duration_seconds"][index]),
        sample_rate=int(batch["sample_rate"][index]),
        short_clip=str(batch["short_clip"][index]),
    )
