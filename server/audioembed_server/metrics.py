"""Prometheus metrics in the text exposition format, served by the standard library's HTTP server.

A handful of counters and histograms, thread-safe, rendered on ``GET /metrics``. Names follow Prometheus
conventions: base units (seconds), ``_total`` on counters, labels for method and status code.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped, strict=True)) + "}"


class Counter:
    """A monotonically increasing value per label combination."""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(label_names)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0, *labels: str) -> None:
        if amount < 0:
            raise ValueError(f"counter {self.name} cannot decrease, got {amount!r}")
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        with self._lock:
            return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            for labels, value in sorted(self._values.items()):
                lines.append(f"{self.name}{_labels(self.label_names, labels)} {value:g}")
        return lines


class Gauge:
    """A value read from a callback when scraped (e.g. the current queue length)."""

    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.read = lambda: 0.0

    def render(self) -> list[str]:
        return [
            f"# HELP {self.name} {self.help}",
            f"# TYPE {self.name} gauge",
            f"{self.name} {self.read():g}",
        ]


class Histogram:
    """Observations counted into cumulative buckets, with their sum and count."""

    def __init__(self, name: str, help_text: str, buckets: Sequence[float]) -> None:
        self.name, self.help, self.buckets = name, help_text, tuple(buckets)
        self._counts = [0] * len(self.buckets)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    self._counts[i] += 1
            self._sum += value
            self._count += 1

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    @property
    def sum(self) -> float:
        with self._lock:
            return self._sum

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            for bound, count in zip(self.buckets, self._counts, strict=True):
                lines.append(f'{self.name}_bucket{{le="{bound:g}"}} {count}')
            lines.append(f'{self.name}_bucket{{le="+Inf"}} {self._count}')
            lines.append(f"{self.name}_sum {self._sum:g}")
            lines.append(f"{self.name}_count {self._count}")
        return lines


class ServerMetrics:
    """The service's metrics: what ML-serving users expect to graph."""

    def __init__(self) -> None:
        self.requests = Counter(
            "audioembed_requests_total", "RPCs finished, by method and status code", ("method", "code")
        )
        self.examples = Counter("audioembed_examples_total", "examples (0.96 s windows) embedded")
        self.audio_seconds = Counter(
            "audioembed_audio_seconds_total", "seconds of audio received and embedded"
        )
        self.batches = Counter("audioembed_batches_total", "model batches run")
        self.batch_size = Histogram("audioembed_batch_size", "examples per model batch", BATCH_SIZE_BUCKETS)
        self.queue_seconds = Histogram(
            "audioembed_queue_seconds", "time a request waited for its first batch", SECONDS_BUCKETS
        )
        self.compute_seconds = Histogram(
            "audioembed_compute_seconds", "model time per batch", SECONDS_BUCKETS
        )
        self.request_seconds = Histogram(
            "audioembed_request_seconds", "RPC latency as seen by the server", SECONDS_BUCKETS
        )
        self.queued_examples = Gauge("audioembed_queued_examples", "examples waiting for a batch now")
        self._all = (
            self.requests,
            self.examples,
            self.audio_seconds,
            self.batches,
            self.batch_size,
            self.queue_seconds,
            self.compute_seconds,
            self.request_seconds,
            self.queued_examples,
        )

    def on_batch(self, size: int, compute_seconds: float) -> None:
        """The batcher's hook: one model batch of ``size`` examples took ``compute_seconds``."""
        self.batches.inc()
        self.batch_size.observe(size)
        self.compute_seconds.observe(compute_seconds)

    def render(self) -> str:
        return "\n".join(line for metric in self._all for line in metric.render()) + "\n"


class MetricsServer:
    """``GET /metrics`` on its own port, in a daemon thread; ``port`` is the bound port (0 picks one)."""

    def __init__(self, metrics: ServerMetrics, *, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404, "only /metrics is served here")
                    return
                body = metrics.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", CONTENT_TYPE)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # scrapes are not worth a log line
                pass

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="audioembed-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)
