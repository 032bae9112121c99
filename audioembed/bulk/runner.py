"""The bulk run: embed every input file, write each result, keep going past bad files, summarise."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from audioembed.bulk.inputs import InputFile
from audioembed.bulk.outputs import OutputWriter
from audioembed.bulk.progress import Progress
from audioembed.pipeline import Embedder, FailedInput


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


def run_bulk(
    files: list[InputFile],
    writer: OutputWriter,
    embedder: Embedder,
    *,
    fail_fast: bool = False,
    quiet: bool = False,
) -> RunSummary:
    """Embed ``files`` in order, writing each result as it completes.

    A file that cannot be embedded is reported and skipped (or ends the run with ``fail_fast``). Any other
    exception, and Ctrl-C, abort the writer so no partial output survives, then propagate.
    """
    summary = RunSummary()
    todo = [file for file in files if not writer.is_done(file)]
    summary.skipped = len(files) - len(todo)
    progress = Progress(len(todo), quiet=quiet)
    started = time.perf_counter()
    try:
        results = embedder.embed_many((file.path for file in todo), errors="return")
        for file, item in zip(todo, results, strict=True):  # embed_many yields one item per input
            if isinstance(item, FailedInput):
                summary.failures.append((file, str(item.error)))
                progress.file_failed(str(file.path), str(item.error))
                writer.write_failure(file, item.error)
                if fail_fast:
                    summary.stopped_early = True
                    results.close()  # stop decoding ahead
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
