"""Sub-commands of the ``audioembed`` CLI: one module each, each defining ``COMMAND``.

A command is declared, not subclassed: a name, a one-line help, a function that adds its arguments
to an ``argparse`` sub-parser, and a function that runs it and returns an exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """One ``audioembed`` sub-command.

    Attributes
    ----------
    name : str
        What the user types (``audioembed NAME``).
    help : str
        One line shown by ``audioembed --help``.
    configure : callable
        ``configure(parser)`` adds the command's arguments to its sub-parser.
    run : callable
        ``run(args) -> int`` does the work and returns the process exit code. It raises
        :class:`~audioembed.errors.AudioEmbedError` for user errors; the CLI prints them without a
        traceback.
    """

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
