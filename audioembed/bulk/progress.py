"""Progress of a bulk run: a live bar on a terminal, one plain line per file otherwise, or silence."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm


class Progress:
    """Report files done, audio seconds, speed as × real time, and the time left.

    Parameters
    ----------
    total_files : int
        Files this run will process (skipped ones excluded).
    stream : file, optional
        Where to write (standard error by default, so standard output stays clean for pipes).
    quiet : bool
        Report nothing but failures.
    """

    def __init__(self, total_files: int, *, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.total_files = total_files
        self.files_done = 0
        self.audio_seconds = 0.0
        self.started = time.perf_counter()
        interactive = not quiet and getattr(self.stream, "isatty", lambda: False)()
        self._bar = (
            tqdm(total=total_files, unit="file", file=self.stream, dynamic_ncols=True)
            if interactive
            else None
        )

    @property
    def realtime_factor(self) -> float:
        """Audio seconds processed per wall-clock second so far."""
        elapsed = time.perf_counter() - self.started
        return self.audio_seconds / elapsed if elapsed > 0 else 0.0

    def file_done(self, name: str, *, audio_seconds: float, examples: int) -> None:
        """Count one embedded file."""
        self.files_done += 1
        self.audio_seconds += audio_seconds
        if self._bar is not None:
            self._bar.set_postfix_str(
                f"{self.audio_seconds:.1f} s audio, {self.realtime_factor:.1f}× real time"
            )
            self._bar.update(1)
        elif not self.quiet:
            print(
                f"[{self.files_done}/{self.total_files}] {name}: {examples} examples, "
                f"{audio_seconds:.2f} s audio ({self.realtime_factor:.1f}× real time overall)",
                file=self.stream,
                flush=True,
            )

    def file_failed(self, name: str, reason: str) -> None:
        """Count one failed file and say why (even when quiet: a failure must never be silent)."""
        self.files_done += 1
        message = f"error: {name}: {reason}"
        if self._bar is not None:
            self._bar.write(message, file=self.stream)
            self._bar.update(1)
        else:
            print(message, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
