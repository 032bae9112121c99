"""``audioembed smoke-test``: the reference smoke test, in process or through a running service."""

from __future__ import annotations

import argparse

from audioembed import smoke_test
from audioembed.commands import Command
from audioembed.commands._model_args import add_model_arguments, embedder_from_args
from audioembed.errors import WeightsNotFoundError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        metavar="HOST:PORT",
        help="also run the checks through the gRPC service at this address, and compare it with in-process "
        "output when local weights are available",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per service call (default: 30)")
    add_model_arguments(parser)


def run(args: argparse.Namespace) -> int:
    checks: list[smoke_test.Check] = []
    embedder = None
    try:
        embedder = embedder_from_args(args)
    except WeightsNotFoundError:
        if args.server is None:
            raise  # in-process only: no weights is a setup error with a message that says what to do
        print("no local weights: checking the service alone (no in-process comparison)")
    if embedder is not None:
        info = embedder.model_info
        print(
            f"weights: {info.weights_source} ({info.weights_format}, sha256 {info.weights_sha256[:16]}…)"
            + (" — SYNTHETIC, not AudioSet embeddings" if info.synthetic else "")
        )
        checks += smoke_test.check_embedder(embedder)
    if args.server is not None:
        client_class = smoke_test.load_client_factory()
        client = client_class(args.server, timeout=args.timeout)
        try:
            checks += smoke_test.check_server(client, embedder)
        finally:
            client.close()
    return 0 if smoke_test.report(checks) else 1


COMMAND = Command(
    name="smoke-test",
    help="check the install end to end with the reference's 1 kHz sine (and a server, with --server)",
    configure=configure,
    run=run,
)
