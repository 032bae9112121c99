"""A loopback HTTP server for download tests: serves files, honours Range, fails on request."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass
class Behaviour:
    """What the server serves and how it misbehaves (edited by tests between requests)."""

    files: dict[str, Path] = field(default_factory=dict)  # URL path -> file
    status: dict[str, int] = field(default_factory=dict)  # URL path -> error status to answer
    cut_after: dict[str, int] = field(default_factory=dict)  # URL path -> bytes sent before dropping (once)
    ignore_range: bool = False  # answer 200 with the whole file even when asked for a range
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)


class _Handler(BaseHTTPRequestHandler):
    behaviour: Behaviour

    def log_message(self, format: str, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        behaviour = self.behaviour
        requested_range = self.headers.get("Range")
        behaviour.requests.append((self.path, requested_range))
        if self.path in behaviour.status:
            self.send_error(behaviour.status[self.path])
            return
        path = behaviour.files.get(self.path)
        if path is None:
            self.send_error(404)
            return
        size = path.stat().st_size
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", requested_range or "")
        if match and not behaviour.ignore_range:
            start = int(match.group(1))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(size - start))
        self.end_headers()
        limit = behaviour.cut_after.pop(self.path, None)
        with open(path, "rb") as file:
            file.seek(start)
            remaining = size - start if limit is None else min(limit, size - start)
            while remaining > 0:
                chunk = file.read(min(1 << 20, remaining))
                self.wfile.write(chunk)
                remaining -= len(chunk)
        if limit is not None:
            self.close_connection = True  # drop the connection mid-file


@contextmanager
def serve(behaviour: Behaviour) -> Iterator[str]:
    """Run a threaded server on 127.0.0.1 (free port); yield its base URL."""
    handler = type("Handler", (_Handler,), {"behaviour": behaviour})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
