"""Prometheus text rendering and the /metrics HTTP endpoint."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from audioembed_server.metrics import Counter, Histogram, MetricsServer, ServerMetrics

pytestmark = pytest.mark.timeout(30)


def test_counter_renders_labels_and_refuses_to_decrease():
    counter = Counter("things_total", "things seen", ("method", "code"))
    counter.inc(1, "Embed", "OK")
    counter.inc(2, "Embed", "OK")
    counter.inc(1, "Embed", 'we"ird')
    assert counter.value("Embed", "OK") == 3
    lines = counter.render()
    assert lines[:2] == ["# HELP things_total things seen", "# TYPE things_total counter"]
    assert 'things_total{method="Embed",code="OK"} 3' in lines
    assert 'things_total{method="Embed",code="we\\"ird"} 1' in lines
    with pytest.raises(ValueError, match="cannot decrease, got -1"):
        counter.inc(-1, "Embed", "OK")


def test_histogram_buckets_are_cumulative():
    histogram = Histogram("size", "sizes", (1, 4, 16))
    for value in (1, 3, 4, 10, 100):
        histogram.observe(value)
    lines = histogram.render()
    assert 'size_bucket{le="1"} 1' in lines
    assert 'size_bucket{le="4"} 3' in lines
    assert 'size_bucket{le="16"} 4' in lines
    assert 'size_bucket{le="+Inf"} 5' in lines
    assert "size_sum 118" in lines and "size_count 5" in lines


def test_metrics_endpoint_serves_text_format_and_404_elsewhere():
    metrics = ServerMetrics()
    metrics.on_batch(8, 0.02)
    metrics.queued_examples.read = lambda: 3
    server = MetricsServer(metrics, host="127.0.0.1", port=0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            body = response.read().decode()
        assert "audioembed_batches_total 1" in body
        assert 'audioembed_batch_size_bucket{le="8"} 1' in body
        assert "audioembed_queued_examples 3" in body
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=10)
    finally:
        server.close()
