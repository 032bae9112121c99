"""The bulk run: embed every input file, write each result, keep going past bad files, summarise."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from audioembed.bulk.inputs import InputFile
from audioembed.bulk.outputs import OutputWriter
from audioembed.bulk.progress import Progress
from audioembed.errors import InvalidOptionError
from audioembed.pipeline import Embedder, FailedInput
from audioembed.result import EmbeddingResult


@dataclass
class RunSummary:
    """What a bulk run did."""

    embedded: int = 0
    skipped: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    failures: list[tuple[InputFile, str]] = field(default_factory=list)
    stopped_early: bool = False

    def describe(self) -> str:
        """One line for the end of the run, then one line per failure."""
        speed = self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0
        lines = [
            f"embedded {self.embedded} file(s), {self.audio_seconds:.1f} s of audio "
            f"in {self.wall_seconds:.1f} s ({speed:.1f}× real time); "
            f"skipped {self.skipped} already done; {len(self.failures)} failed"
            + (" (stopped at the first failure: --fail-fast)" if self.stopped_early else "")
        ]
        lines += [f"  failed: {file.path}: {reason}" for file, reason in self.failures]
        return "\n".join(lines)


# Inputs per work unit. Model batches never span two units, so every engine that embeds a unit with
# ``Embedder.embed_many`` feeds the model the very same batches, and results are equal bit for bit (the fused
# engine's float32 rounding depends on a row's batch size and position). The local engine pays one partial
# batch per unit; the Ray engine ships one unit per actor call.
UNIT_FILES = 32


def split_units(files: Sequence[InputFile], unit_files: int = UNIT_FILES) -> list[list[InputFile]]:
    """Cut ``files`` into consecutive units of ``unit_files`` inputs (the last may be shorter)."""
    if not isinstance(unit_files, int) or unit_files < 1:
        raise InvalidOptionError(f"unit_files must be a positive integer, got {unit_files!r}")
    return [list(files[start : start + unit_files]) for start in range(0, len(files), unit_files)]


def embed_units(
    embedder: Embedder, units: Iterable[Sequence[InputFile]]
) -> Iterator[tuple[InputFile, EmbeddingResult | FailedInput]]:
    """Embed each unit with its own ``embed_many`` call; yield ``(file, result or failure)`` in order."""
    for unit in units:
        results = embedder.embed_many((file.path for file in unit), errors="return")
        yield from zip(unit, results, strict=True)  # embed_many yields one item per input


def run_bulk(
    files: list[InputFile],
    writer: OutputWriter,
    embedder: Embedder,
    *,
    fail_fast: bool = False,
    quiet: bool = False,
    unit_files: int = UNIT_FILES,
) -> RunSummary:
    """Embed ``files`` in order, writing each result as it completes.

    A file that cannot be embedded is reported and skipped (or ends the run with ``fail_fast``). Any other
    exception, and Ctrl-C, abort the writer so no partial output survives, then propagate.
    """
    todo = [file for file in files if not writer.is_done(file)]
    results = embed_units(embedder, split_units(todo, unit_files))
    return record_results(
        results, writer, total=len(todo), skipped=len(files) - len(todo), fail_fast=fail_fast, quiet=quiet
    )


def record_results(
    results: Iterator[tuple[InputFile, EmbeddingResult | FailedInput]],
    writer: OutputWriter,
    *,
    total: int,
    skipped: int,
    fail_fast: bool = False,
    quiet: bool = False,
) -> RunSummary:
    """Write every ``(file, result or failure)`` as it arrives, with progress; close or abort the writer.

    Shared by the engines: ``results`` may come from this process or from a cluster, in any order.
    """
    summary = RunSummary(skipped=skipped)
    progress = Progress(total, quiet=quiet)
    started = time.perf_counter()
    try:
        for file, item in results:
            if isinstance(item, FailedInput):
                summary.failures.append((file, str(item.error)))
                progress.file_failed(str(file.path), str(item.error))
                writer.write_failure(file, item.error)
                if fail_fast:
                    summary.stopped_early = True
                    _close(results)  # stop decoding ahead
                    break
                continue
            writer.write(file, item)
            summary.embedded += 1
            summary.audio_seconds += item.duration_seconds
            progress.file_done(
                str(file.path), audio_seconds=item.duration_seconds, examples=item.num_examples
            )
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.close()
        summary.wall_seconds = time.perf_counter() - started
    writer.close()
    return summary


def _close(results: Iterator) -> None:
    close = getattr(results, "close", None)
    if close is not None:
        close()
