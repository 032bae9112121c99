"""``python -m audioembed_server serve|client ...``: the server's commands without installed entry points."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from audioembed import cli
from audioembed_server.client_command import COMMAND as CLIENT_COMMAND
from audioembed_server.serve_command import COMMAND as SERVE_COMMAND


def main(argv: Sequence[str] | None = None) -> int:
    """Parse and run like ``audioembed``, with only the ``serve`` and ``client`` commands."""
    return cli.main(argv, available=[SERVE_COMMAND, CLIENT_COMMAND])


if __name__ == "__main__":
    sys.exit(main())
