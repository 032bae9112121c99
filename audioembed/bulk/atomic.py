"""Write files so that a crash or Ctrl-C never leaves a half-written one under the final name."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block completes.

    The temporary file lives in the same directory so the final ``os.replace`` is an atomic rename on the
    same file system; it is hidden (leading dot) and removed if the block raises, including on
    ``KeyboardInterrupt``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed or removed below on every path
        mode="wb", dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False
    )
    try:
        with handle:
            yield handle
            handle.flush()
            # NamedTemporaryFile creates 0600; a finished output gets what any new file would (0666 - umask).
            os.fchmod(handle.fileno(), 0o666 & ~_current_umask())
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(handle.name)
        raise


def _current_umask() -> int:
    """The process umask (reading it means setting it; done back to back, it is restored at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
