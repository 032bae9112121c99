"""Helpers for the server tests: real servers on loopback ports, real Embedders on synthetic weights."""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from audioembed_server import EmbeddingClient, ServerConfig, create_server
from audioembed_server.app import EmbeddingServer

READY_TIMEOUT = 60.0  # seconds for a server's model to load (synthetic weights: a few seconds)


def tone(seconds: float, *, rate: int = 16000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A noisy tone in [-1, 1]: float64 [n] or [n, channels]; the seed makes clips differ."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    mono = 0.4 * np.sin(2 * np.pi * (220.0 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    return np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono


def wav_bytes(seconds: float, *, rate: int = 16000, channels: int = 1, seed: int = 0) -> bytes:
    """A 16-bit WAV file of :func:`tone`, as bytes."""
    buffer = io.BytesIO()
    sf.write(
        buffer, tone(seconds, rate=rate, channels=channels, seed=seed), rate, format="WAV", subtype="PCM_16"
    )
    return buffer.getvalue()


def int16_tone(seconds: float, **kwargs: Any) -> np.ndarray:
    return np.round(tone(seconds, **kwargs) * 32767).astype(np.int16)


def assert_same_result(actual: Any, expected: Any) -> None:
    """Service results equal in-process ones: same times and metadata, same matrices."""
    np.testing.assert_array_equal(actual.timestamps, expected.timestamps)
    for name in ("window_seconds", "hop_seconds", "duration_seconds", "sample_rate", "short_clip"):
        assert getattr(actual, name) == pytest.approx(getattr(expected, name)), name
    for name in ("embeddings", "quantized"):
        a, e = getattr(actual, name), getattr(expected, name)
        assert (a is None) == (e is None), name
        if e is None:
            continue
        assert a.dtype == e.dtype and a.shape == e.shape, name
        if a.dtype == np.uint8:  # a float difference may cross a quantization boundary: at most 1 apart
            assert np.abs(a.astype(int) - e.astype(int)).max(initial=0) <= 1, name
        else:  # same float32 examples, batched with others: only summation order may differ
            np.testing.assert_allclose(a, e, rtol=0, atol=1e-5 * max(1.0, float(np.abs(e).max(initial=0))))


class GatedEmbedder:
    """A real Embedder whose ``run_model`` waits for ``gate`` and records what it computed.

    Lets tests hold the model thread to fill the queue, expire deadlines and cancel requests
    deterministically; everything else is delegated unchanged.
    """

    def __init__(self, embedder: Any) -> None:
        self._embedder = embedder
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.computed_rows = 0
        self.batches: list[np.ndarray] = []

    def run_model(self, log_mel: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        self.entered.set()
        self.gate.wait()
        self.computed_rows += len(log_mel)
        self.batches.append(np.asarray(log_mel))
        return self._embedder.run_model(log_mel)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._embedder, name)


@contextlib.contextmanager
def running_server(
    factory: Callable[[], Any], *, wait: bool = True, **overrides: Any
) -> Iterator[tuple[EmbeddingServer, str]]:
    """Start a server on a free loopback port; yield it and its address; stop it (no grace) on exit."""
    config = ServerConfig(host="127.0.0.1", port=0, **overrides)
    server, port = create_server(config, factory)
    try:
        if wait:
            assert server.wait_ready(READY_TIMEOUT)
        yield server, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=0)


@pytest.fixture(scope="session")
def embedder(synthetic_weights):
    """An Embedder on the session's synthetic weights (batch 64, as the server uses), shared read-only."""
    from audioembed.pipeline import Embedder

    return Embedder(synthetic_weights, batch_size=64)


@pytest.fixture(scope="session")
def served(embedder):
    """One server shared by the tests that do not need their own: (server, address)."""
    with running_server(lambda: embedder, max_queue_delay_ms=20.0, metrics_port=0) as running:
        yield running


@pytest.fixture
def client(served) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(served[1], timeout=60.0) as c:
        yield c
