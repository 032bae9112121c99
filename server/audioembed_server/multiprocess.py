"""``audioembed serve --processes N``: N server processes on one port (SO_REUSEPORT), supervised.

One Python process serves with one GIL (decoding, features and gRPC's own work hold it between model
batches), so a big machine is used as gRPC's multiprocessing example does: every child runs its own gRPC
server bound to the same port with ``grpc.so_reuseport`` and the kernel spreads incoming connections over
them. Each child has its own Embedder and dynamic batcher. Native weights are memory-mapped read-only
(``load_vggish`` keeps the parameters as views of the mapping), so the children share the file's pages in
the page cache instead of holding a copy each.

The parent is only a supervisor and never creates a gRPC server, channel or thread of gRPC's: it reserves
the port with a plain socket (so ``--port 0`` resolves to one port for all children), then starts the
children with the ``spawn`` method (fresh interpreters: nothing of the parent's state, locks or threads is
inherited). It

- waits until every child has loaded its model and then bound the port (a child binds only when it can
  answer, so the kernel never hands a connection to a child still loading, after a restart too), then
  prints the ``listening on`` line;
- serves one ``/metrics`` merging the children's, each sample labelled ``process="i"`` (see
  :mod:`audioembed_server.metrics_merge`);
- restarts a child that dies (killed, crashed), at most ``MAX_RESTARTS`` times per ``RESTART_WINDOW_SECONDS``
  (then it stops everything and exits 1: a crash loop is not service). A child exiting with the setup code
  (model failed to load) stops the whole server with that code: a restart would fail the same way;
- forwards SIGTERM / SIGINT to every child, lets each drain within ``--grace-seconds``, and exits 0 when
  every child exited 0.

Children run in their own process group (a terminal's Ctrl-C reaches the supervisor, which forwards it once)
and shut down gracefully if the supervisor disappears, so no orphan keeps the port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from audioembed_server.config import ServerConfig
from audioembed_server.logs import log_event
from audioembed_server.metrics import MetricsServer
from audioembed_server.metrics_merge import MergedMetrics

EXIT_OK = 0
EXIT_FAILED = 1  # a child crash-looped, or did not drain cleanly
EXIT_SETUP = 2  # as `serve`: bad configuration, unbindable port, or a model that failed to load
MAX_RESTARTS = 5  # restarts of dead children allowed within RESTART_WINDOW_SECONDS ...
RESTART_WINDOW_SECONDS = 60.0  # ... beyond that the server gives up rather than spin
# A child must load its model and bind the port within this (imports, weights and warm-up of N children at
# once on a loaded machine).
STARTUP_TIMEOUT_SECONDS = 120.0
DRAIN_MARGIN_SECONDS = 15.0  # beyond the grace: closing the batcher and exiting the interpreter
POLL_SECONDS = 0.1


@contextlib.contextmanager
def reserve_port(host: str, port: int) -> Iterator[int]:
    """Bind (not listen) a SO_REUSEPORT socket on ``host:port`` for the duration; yield the bound port.

    The held socket pins ``--port 0`` to one concrete port that every child then binds with
    ``grpc.so_reuseport``; as it never listens, the kernel gives it no connections.

    Raises
    ------
    OSError
        The address cannot be bound (in use by a socket without SO_REUSEPORT, bad host, ...).
    """
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((bare, port))
    except OSError as error:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from error
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _child_main(config: ServerConfig, index: int, conn: Connection, parent_pid: int, log_level: str) -> None:
    """A child's whole life: serve ``config`` until told to stop; report to the supervisor over ``conn``."""
    os.setpgrp()  # a terminal's Ctrl-C reaches only the supervisor, which forwards one stop to each child
    logging.basicConfig(level=log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from audioembed_server import logs
    from audioembed_server.app import ModelLoadError, create_server
    from audioembed_server.serve_command import serve_until_stopped

    logs.configure(log_format=config.log_format)
    try:
        # The model first, then the port: a (re)started child gets no connection before it can answer.
        server, _ = create_server(config, load_first=True)
    except (OSError, ModelLoadError) as error:
        conn.send(("failed", str(error)))
        sys.exit(EXIT_SETUP)
    conn.send(("listening", os.getpid(), server.metrics_port))
    sys.exit(serve_until_stopped(server, orphaned=lambda: os.getppid() != parent_pid))


@dataclass
class _Child:
    index: int
    process: BaseProcess
    conn: Connection  # the supervisor's read end of the child's report pipe
    listening: bool = False
    metrics_port: int | None = None


@dataclass
class Supervisor:
    """Starts, watches, restarts and stops the children of one ``serve --processes N``.

    Parameters
    ----------
    config : ServerConfig
        The children's configuration: a concrete port, ``processes`` = N, metrics on loopback port 0 (or off).
    log_level : str
        The children's logging threshold (the command line's ``--log-level``).
    max_restarts : int
        Restarts of dead children allowed within ``RESTART_WINDOW_SECONDS``; one more stops the server.
    """

    config: ServerConfig
    log_level: str = "WARNING"
    max_restarts: int = MAX_RESTARTS
    children: dict[int, _Child] = field(default_factory=dict)
    restarts: list[float] = field(default_factory=list)  # monotonic times of restarts, for the budget
    restart_count: int = 0
    _context: Any = field(default_factory=lambda: multiprocessing.get_context("spawn"))

    def start(self, index: int) -> _Child:
        reader, writer = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_child_main,
            args=(self.config, index, writer, os.getpid(), self.log_level),
            name=f"audioembed-serve-{index}",
        )
        process.start()
        writer.close()  # the child holds the only write end: EOF on ours means it is gone
        child = _Child(index=index, process=process, conn=reader)
        self.children[index] = child
        log_event("process_started", index=index, pid=process.pid)
        return child

    def metrics_ports(self) -> list[tuple[str, int]]:
        """``(process label, metrics port)`` of every child that reported one."""
        return [
            (str(c.index), c.metrics_port)
            for c in sorted(self.children.values(), key=lambda c: c.index)
            if c.metrics_port is not None and c.process.is_alive()
        ]

    def live(self) -> int:
        return sum(c.process.is_alive() for c in self.children.values())

    def _read_reports(self, child: _Child) -> str | None:
        """Consume the child's reports; return a setup failure message if it sent one."""
        failure = None
        with contextlib.suppress(EOFError, OSError):  # EOF: the child has exited (handled by poll)
            while child.conn.poll():
                report = child.conn.recv()
                if report[0] == "listening":
                    child.listening, child.metrics_port = True, report[2]
                    log_event("process_listening", index=child.index, pid=report[1], metrics_port=report[2])
                elif report[0] == "failed":
                    failure = report[1]
        return failure

    def poll(self, *, restart: bool) -> int | None:
        """Read reports and reap exited children; return an exit code when the whole server must stop."""
        for child in list(self.children.values()):
            failure = self._read_reports(child)
            if failure is not None:
                print(f"audioembed serve: error: {failure}", file=sys.stderr)
                return EXIT_SETUP
            code = child.process.exitcode
            if code is None:
                continue
            child.conn.close()
            log_event("process_exited", level=logging.WARNING, index=child.index, exit_code=code)
            if code == EXIT_SETUP:  # the model failed to load: a new process would fail the same way
                return EXIT_SETUP
            if not restart:
                return EXIT_FAILED
            now = time.monotonic()
            self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_SECONDS] + [now]
            if len(self.restarts) > self.max_restarts:
                print(
                    f"audioembed serve: error: server processes died {len(self.restarts)} times within "
                    f"{RESTART_WINDOW_SECONDS:g} s (last exit code {code}); giving up",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            self.restart_count += 1
            new = self.start(child.index)
            log_event("process_restarted", level=logging.WARNING, index=child.index, pid=new.process.pid)
        return None

    def wait_listening(self, stop: threading.Event) -> int | None:
        """Wait until every child has loaded and bound the port; an exit code if one failed (or a stop came)
        first."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while not all(c.listening for c in self.children.values()):
            code = self.poll(restart=False)
            if code is not None:
                return code
            if stop.is_set():
                return EXIT_OK
            if time.monotonic() > deadline:
                print(
                    f"audioembed serve: error: server processes did not start within "
                    f"{STARTUP_TIMEOUT_SECONDS:g} s",
                    file=sys.stderr,
                )
                return EXIT_FAILED
            stop.wait(POLL_SECONDS)
        return None

    def stop_all(self, timeout: float) -> bool:
        """SIGTERM every live child and wait for it; True when all exited 0 within ``timeout``."""
        for child in self.children.values():
            if child.process.is_alive() and child.process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        clean = True
        for child in self.children.values():
            child.process.join(max(0.0, deadline - time.monotonic()))
            if child.process.exitcode is None:
                log_event("process_killed", level=logging.ERROR, index=child.index, pid=child.process.pid)
                child.process.kill()
                child.process.join(5)
                clean = False
            elif child.process.exitcode != EXIT_OK:
                clean = False
        return clean


def supervise(config: ServerConfig, *, log_level: str = "WARNING") -> int:
    """Run ``config.processes`` server processes on one port until SIGTERM / SIGINT; return the exit code.

    Must run on the main thread (signal handlers). Prints ``audioembed serve: listening on HOST:PORT
    (N processes)`` once every child has bound the port.
    """
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with reserve_port(config.host, config.port) as port:
            metrics_on = config.metrics_port is not None
            child_config = dataclasses.replace(
                config,
                port=port,
                metrics_port=0 if metrics_on else None,  # each child's own, on loopback, merged below
                metrics_host="127.0.0.1",
            )
            return _run(config, Supervisor(child_config, log_level), stop, port)
    except OSError as error:
        print(f"audioembed serve: error: {error}", file=sys.stderr)
        return EXIT_SETUP
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(config: ServerConfig, supervisor: Supervisor, stop: threading.Event, port: int) -> int:
    metrics_server = None
    if config.metrics_port is not None:
        merged = MergedMetrics(supervisor.metrics_ports, live=supervisor.live)
        supervisor_restarts = merged.restarts
        metrics_server = MetricsServer(
            merged,  # type: ignore[arg-type]  # anything with render() is served
            host=config.metrics_host or config.host,
            port=config.metrics_port,
        )
    else:
        supervisor_restarts = None
    code: int | None = None
    try:
        for index in range(config.processes):
            supervisor.start(index)
        code = supervisor.wait_listening(stop)
        if code is None:
            pids = ", ".join(str(c.process.pid) for c in supervisor.children.values())
            print(
                f"audioembed serve: listening on {config.host}:{port} "
                f"({config.processes} processes: pids {pids})",
                flush=True,
            )
            log_event(
                "listening",
                address=f"{config.host}:{port}",
                processes=config.processes,
                metrics_port=None if metrics_server is None else metrics_server.port,
            )
            while code is None and not stop.wait(POLL_SECONDS):
                before = supervisor.restart_count
                code = supervisor.poll(restart=True)
                if supervisor_restarts is not None and supervisor.restart_count > before:
                    supervisor_restarts.inc(supervisor.restart_count - before)
    finally:
        log_event("shutdown_started", processes=supervisor.live(), grace_seconds=config.grace_seconds)
        clean = supervisor.stop_all(config.grace_seconds + DRAIN_MARGIN_SECONDS)
        if metrics_server is not None:
            metrics_server.close()
        log_event("shutdown_complete", clean=clean)
    if code is None:
        code = EXIT_OK if clean else EXIT_FAILED
    return code
