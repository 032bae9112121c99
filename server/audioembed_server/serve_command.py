"""``audioembed serve``: run the gRPC service until SIGTERM / SIGINT, then shut down gracefully."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

from audioembed.cli import Command
from audioembed_server import logs
from audioembed_server.app import EmbeddingServer, create_server
from audioembed_server.config import add_arguments, config_from

EXIT_OK = 0
EXIT_SETUP = 2  # bad configuration, unbindable port, or a model that failed to load


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Every flag has an AUDIOEMBED_* environment variable (e.g. --max-batch-examples is "
        "AUDIOEMBED_MAX_BATCH_EXAMPLES); flags win. --port 0 picks a free port and prints it."
    )
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    logs.configure(log_format=config.log_format)
    processes = resolve_processes(config.processes)
    if processes > 1:
        from audioembed_server.multiprocess import supervise

        log_level = getattr(args, "log_level", None) or "WARNING"
        return supervise(dataclasses.replace(config, processes=processes), log_level=log_level)
    config = dataclasses.replace(config, processes=1)
    try:
        server, port = create_server(config)
    except OSError as error:
        print(f"audioembed serve: error: {error}", file=sys.stderr)
        return EXIT_SETUP
    # One line on stdout that scripts (and tests) can wait for; the structured log has the same facts.
    print(f"audioembed serve: listening on {config.host}:{port}", flush=True)
    return serve_until_stopped(server)


def resolve_processes(requested: int) -> int:
    """``--processes``: 0 means one per CPU this process may run on (its affinity mask, not the machine's)."""
    if requested != 0:
        return requested
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def serve_until_stopped(server: EmbeddingServer, *, orphaned: Callable[[], bool] | None = None) -> int:
    """Serve until SIGTERM / SIGINT (or ``orphaned()`` turns true), then stop gracefully.

    Returns the exit code: 0 after a graceful stop, ``EXIT_SETUP`` when the model failed to load.
    Must run on the main thread (it installs the signal handlers, and restores them on return).
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        failed = False
        while not stop.wait(0.2):
            if server.servicer.load_error is not None:  # nothing to serve: let the supervisor restart us
                failed = True
                break
            if orphaned is not None and orphaned():  # our supervisor is gone: nobody would stop us
                break
        server.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failed:
        print(
            f"audioembed serve: error: the model failed to load: {server.servicer.load_error}",
            file=sys.stderr,
        )
        return EXIT_SETUP
    return EXIT_OK


COMMAND = Command(
    name="serve",
    help="serve embeddings over gRPC (health, reflection, dynamic batching, graceful shutdown)",
    configure=configure,
    run=run,
)
