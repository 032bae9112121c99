"""``python -m audioembed_server serve|client ...``: the server's commands without installed entry points."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from audioembed import cli
from audioembed_server.client_command import COMMAND as CLIENT_COMMAND
from audioembed_server.serve_command import COMMAND as SERVE_COMMAND


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run like ``audioembed``, with only the ``serve`` and ``client`` commands."""
    parser = cli.build_parser([SERVE_COMMAND, CLIENT_COMMAND])
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return cli.EXIT_USAGE
    try:
        return int(args._run(args))
    except cli.AudioEmbedError as error:
        print(f"audioembed {args.command}: error: {error}", file=sys.stderr)
        return cli.EXIT_USAGE
    except KeyboardInterrupt:
        return cli.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
