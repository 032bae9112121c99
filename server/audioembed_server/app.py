"""Assemble and run the service: gRPC server, health, reflection, auth, metrics, background model load.

:func:`create_server` binds the port and starts serving at once, with health NOT_SERVING for the
embedding service; the model loads on a background thread and flips it to SERVING.
:meth:`EmbeddingServer.stop` is the graceful shutdown: health NOT_SERVING, refuse new RPCs, let
in-flight ones finish within the grace period, then stop the batcher.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from audioembed import audio
from audioembed.errors import AudioEmbedError
from audioembed_server.auth import TokenAuthInterceptor
from audioembed_server.batcher import DynamicBatcher
from audioembed_server.classifiers import load_classifiers
from audioembed_server.config import ServerConfig
from audioembed_server.engine import Engine
from audioembed_server.logs import log_event
from audioembed_server.metrics import MetricsServer, ServerMetrics
from audioembed_server.proto import embedding_service_pb2_grpc as pb_grpc
from audioembed_server.servicer import SERVICE_NAME, EmbeddingServicer

EmbedderFactory = Callable[[], Any]
HEALTH_SERVICE_NAME = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name  # "grpc.health.v1.Health"
SHUTDOWN_SETTLE_SECONDS = 0.1  # no RPC running or queued for this long: gRPC's poller has handed over all
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def default_embedder_factory(config: ServerConfig) -> EmbedderFactory:
    """A factory building the library's ``Embedder`` from the config's weights and PCA paths."""

    def build() -> Any:
        from audioembed import Embedder

        return Embedder(
            config.weights,
            config.pca,
            output="both",
            resampler=config.resampler,
            batch_size=config.max_batch_examples,
            allow_download=config.allow_download,
        )

    return build


class CountingPool(futures.ThreadPoolExecutor):
    """The RPC handler pool, counting calls gRPC has accepted that still wait for a thread.

    Graceful shutdown must not cut the grace period short while any exist. Found by SIGTERM under load:
    with every thread busy, a call accepted but not yet started saw no RPC in flight for a moment and was
    cancelled ("Cancelling all calls") instead of answered.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    @property
    def waiting(self) -> int:
        """Tasks submitted and not started."""
        with self._waiting_lock:
            return self._waiting

    def _count(self, delta: int) -> None:
        with self._waiting_lock:
            self._waiting += delta

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> futures.Future:
        def started(*call_args: Any, **call_kwargs: Any) -> Any:
            self._count(-1)
            return fn(*call_args, **call_kwargs)

        self._count(+1)
        try:
            return super().submit(started, *args, **kwargs)
        except BaseException:
            self._count(-1)  # refused (the pool is shut down): it will never start
            raise


def _grpc_options(config: ServerConfig) -> list[tuple[str, Any]]:
    return [
        ("grpc.max_receive_message_length", config.max_receive_message_bytes),
        ("grpc.max_send_message_length", config.max_send_message_bytes),
        ("grpc.keepalive_time_ms", 60_000),  # ping idle connections every minute: dead peers get noticed
        ("grpc.keepalive_timeout_ms", 20_000),  # ... and dropped when a ping goes unanswered for 20 s
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),  # tolerate client keepalives >= 10 s
        # A port already in use is an error, not silently shared, except between the processes of one
        # `serve --processes N` (see multiprocess.py), which share it on purpose.
        ("grpc.so_reuseport", 1 if config.processes > 1 else 0),
    ]


class ModelLoadError(RuntimeError):
    """A server started with ``load_first`` could not load its model (the message names the cause)."""


class EmbeddingServer:
    """A running service. Build it with :func:`create_server`; stop it with :meth:`stop`.

    Attributes
    ----------
    port : int
        The bound gRPC port (the real one when the config asked for 0).
    metrics_port : int or None
        The bound metrics port, when metrics are on.
    """

    def __init__(
        self, config: ServerConfig, embedder_factory: EmbedderFactory, *, load_first: bool = False
    ) -> None:
        self.config = config
        self._load_first = load_first
        self.metrics = ServerMetrics()
        self.health = health.HealthServicer(
            experimental_non_blocking=True,
            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="health"),
        )
        self.servicer = EmbeddingServicer(config, self.metrics)
        interceptors = [TokenAuthInterceptor(config.token, self.metrics)] if config.token else []
        self.rpc_pool = CountingPool(max_workers=config.workers, thread_name_prefix="audioembed-rpc")
        self.server = grpc.server(
            self.rpc_pool,
            interceptors=interceptors,
            options=_grpc_options(config),
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        pb_grpc.add_EmbeddingServiceServicer_to_server(self.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        # Bound at once (the address is checked before any model work), or after loading (load_first).
        self.port = 0 if load_first else self._bind()
        self.metrics_port: int | None = None
        self._metrics_server: MetricsServer | None = None
        self._factory = embedder_factory
        self._loaded = threading.Event()
        self._stopped = threading.Event()
        self._stop_lock = threading.Lock()

    def _bind(self) -> int:
        config = self.config
        try:
            if config.tls:
                pair = (Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())  # type: ignore[arg-type]
                port = self.server.add_secure_port(config.address, grpc.ssl_server_credentials([pair]))
            else:
                port = self.server.add_insecure_port(config.address)
        except RuntimeError as e:  # grpc raises RuntimeError when it cannot bind
            raise OSError(f"cannot listen on {config.address}: {e}") from e
        if port == 0:
            raise OSError(f"cannot listen on {config.address}")
        return port

    def start(self) -> EmbeddingServer:
        """Start serving (health: live, not ready), then load the model on a background thread.

        With ``load_first`` the model loads here, before the port is even bound, and a failure raises
        :class:`ModelLoadError`: no connection reaches this server before it can answer. That is what a
        process of ``serve --processes N`` needs when it (re)starts beside others that already serve on the
        same port: the kernel hands new connections to every listening socket of the group.
        """
        self.health.set("", _SERVING)
        self.health.set(SERVICE_NAME, _NOT_SERVING)
        if self._load_first:
            self._load()
            error = self.servicer.load_error
            if error is not None:
                raise ModelLoadError(f"the model failed to load: {error}") from error
            if self._stopped.is_set():  # stopped while loading: nothing to bind or start
                return self
        try:
            if self._load_first:
                self.port = self._bind()
            if self.config.metrics_port is not None:
                host = self.config.metrics_host or self.config.host
                self._metrics_server = MetricsServer(self.metrics, host=host, port=self.config.metrics_port)
                self.metrics_port = self._metrics_server.port
        except OSError:
            if self.servicer.engine is not None:  # loaded first: release its batcher threads
                self.servicer.engine.close()
            raise
        self.server.start()
        log_event(
            "listening",
            address=f"{self.config.host}:{self.port}",
            port=self.port,
            tls=self.config.tls,
            auth=bool(self.config.token),
            metrics_port=self.metrics_port,
        )
        if not self._load_first:
            threading.Thread(target=self._load, name="audioembed-load", daemon=True).start()
        return self

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            embedder = self._factory()
            info = embedder.model_info
            # Before serving anything: a head trained on other weights refuses to load (both sha256 named).
            classifiers = load_classifiers(self.config.classifiers, embedder)
            # One warm-up batch: the first call pays for allocations that should not land on a user.
            embedder.run_model(np.zeros((1, audio.EXAMPLE_WINDOW_FRAMES, audio.NUM_MEL_BANDS), np.float32))
            batcher = self._batcher(embedder)
            # A fine-tuned classifier's windows run through its own VGGish layers: an engine of its own.
            own_engines = {
                name: Engine(clf.embedder, self._batcher(clf.embedder), pca_loaded=bool(info.pca_loaded))
                for name, clf in classifiers.items()
                if clf.fine_tuned
            }
            self.metrics.queued_examples.read = lambda: batcher.queued_rows
            with self._stop_lock:
                engine = Engine(
                    embedder,
                    batcher,
                    pca_loaded=bool(info.pca_loaded),
                    classifiers=classifiers,
                    classifier_engines=own_engines,
                )
                if self._stopped.is_set():  # stopped while loading: do not come up
                    engine.close()
                    return
                self.servicer.engine = engine
                self.health.set(SERVICE_NAME, _SERVING)
            log_event(
                "model_loaded",
                level=logging.WARNING if info.synthetic else logging.INFO,  # demo weights: say so loudly
                seconds=round(time.perf_counter() - started, 3),
                weights_sha256=info.weights_sha256,
                weights_source=info.weights_source,
                synthetic=info.synthetic,
                pca_loaded=info.pca_loaded,
                classifiers=",".join(sorted(classifiers)) or None,
            )
        except Exception as error:
            self.servicer.load_error = error
            # A package error (no weights, a bad file) has a message that says what to do: a traceback
            # would only bury it. Anything else is a bug and keeps its traceback.
            log_event(
                "model_load_failed",
                level=logging.ERROR,
                exc_info=not isinstance(error, AudioEmbedError),
                error=str(error),
            )
        finally:
            self._loaded.set()

    def _batcher(self, embedder: Any) -> DynamicBatcher:
        return DynamicBatcher(
            embedder.run_model,
            max_batch=self.config.max_batch_examples,
            max_delay=self.config.max_queue_delay_ms / 1000.0,
            max_queued=self.config.max_queue_examples,
            on_batch=self.metrics.on_batch,
        )

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Block until the model has loaded (True) or failed to load (raises its error); False on timeout."""
        if not self._loaded.wait(timeout):
            return False
        if self.servicer.load_error is not None:
            raise self.servicer.load_error
        return self.servicer.engine is not None

    @property
    def ready(self) -> bool:
        return self.servicer.engine is not None

    def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: NOT_SERVING, refuse new RPCs, finish in-flight ones within ``grace`` seconds."""
        grace = self.config.grace_seconds if grace is None else grace
        with self._stop_lock:
            if self._stopped.is_set():
                return
            self._stopped.set()
            self.health.enter_graceful_shutdown()
        log_event("shutdown_started", grace_seconds=grace)
        started = time.perf_counter()
        done = self.server.stop(grace)  # refuses new RPCs from now on; in-flight ones continue
        # Health Watch streams never end by themselves and would hold the full grace period: once no
        # embedding RPC has been running and no accepted call has been waiting for a thread for a moment,
        # cut the grace short: a smaller grace in a second call wins.
        deadline = time.monotonic() + grace
        idle_since = None
        while time.monotonic() < deadline:
            if self.servicer.in_flight > 0 or self.rpc_pool.waiting > 0:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= SHUTDOWN_SETTLE_SECONDS:
                break
            time.sleep(0.01)
        self.server.stop(0)
        done.wait()
        engine = self.servicer.engine
        if engine is not None:
            engine.close(timeout=max(grace, 1.0))
        if self._metrics_server is not None:
            self._metrics_server.close()
        log_event("shutdown_complete", seconds=round(time.perf_counter() - started, 3))

    def wait_for_termination(self, timeout: float | None = None) -> bool:
        return self.server.wait_for_termination(timeout)


def create_server(
    config: ServerConfig, embedder_factory: EmbedderFactory | None = None, *, load_first: bool = False
) -> tuple[EmbeddingServer, int]:
    """Build and start the service; return it and its bound port (``config.port = 0`` picks a free one).

    Parameters
    ----------
    config : ServerConfig
    embedder_factory : callable, optional
        ``() -> Embedder``, called on a background thread; default builds one from ``config.weights`` /
        ``config.pca``.
    load_first : bool
        Load the model in this call and bind the port only then (see :meth:`EmbeddingServer.start`).

    Raises
    ------
    OSError
        The address cannot be bound.
    ModelLoadError
        ``load_first`` and the model failed to load.
    """
    server = EmbeddingServer(
        config, embedder_factory or default_embedder_factory(config), load_first=load_first
    )
    server.start()
    return server, server.port
