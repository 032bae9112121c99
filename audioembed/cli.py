"""The ``audioembed`` command line: one parser, sub-commands found rather than listed.

Each built-in sub-command is a module in :mod:`audioembed.commands` that defines ``COMMAND``, a
:class:`~audioembed.commands.Command`. Packages that sit *above* the library (the gRPC server) add
theirs through the ``audioembed.commands`` entry-point group, so the library never imports them.

The public surface for such packages is :data:`__all__`: :class:`Command` to declare a sub-command, and
:func:`main` (with ``available=``) to run a parser of their own commands (``python -m audioembed_server``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Iterator, Sequence
from importlib import metadata

from audioembed import commands
from audioembed._version import __version__
from audioembed.commands import Command
from audioembed.errors import AudioEmbedError

__all__ = ["ENTRY_POINT_GROUP", "EXIT_INTERRUPTED", "EXIT_USAGE", "Command", "build_parser", "main"]

ENTRY_POINT_GROUP = "audioembed.commands"

# Exit codes: 0 success, 1 the work ran and something failed (e.g. a bad file), 2 usage or setup error
# (argparse uses 2 too), 130 interrupted by Ctrl-C (the shell convention 128 + SIGINT).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def builtin_commands() -> Iterator[Command]:
    """Yield the ``COMMAND`` of every module in :mod:`audioembed.commands`, in module-name order."""
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        command = getattr(module, "COMMAND", None)
        if isinstance(command, Command):
            yield command


def plugin_commands() -> Iterator[Command]:
    """Yield the commands registered by installed packages under :data:`ENTRY_POINT_GROUP`."""
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        command = entry_point.load()
        if not isinstance(command, Command):
            raise TypeError(
                f"entry point {entry_point.name!r} ({entry_point.value}) must be an audioembed Command, "
                f"got {type(command).__name__}"
            )
        yield command


def build_parser(available: Sequence[Command] | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per command."""
    if available is None:
        available = [*builtin_commands(), *plugin_commands()]
    parser = argparse.ArgumentParser(
        prog="audioembed",
        description="VGGish audio embeddings that match Google's reference, without TensorFlow or PyTorch.",
    )
    parser.add_argument("--version", action="version", version=f"audioembed {__version__}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging threshold on stderr (default: %(default)s)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    seen: set[str] = set()
    for command in available:
        if command.name in seen:
            raise ValueError(f"two audioembed commands are named {command.name!r}")
        seen.add(command.name)
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None, *, available: Sequence[Command] | None = None) -> int:
    """Run the command line; return the process exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; default ``sys.argv[1:]``.
    available : sequence of Command, optional
        The sub-commands to offer; default every built-in and every installed plug-in command.
    """
    parser = build_parser(available)
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._run(args))
    except AudioEmbedError as error:
        print(f"audioembed {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"audioembed {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
