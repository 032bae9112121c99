"""Server configuration: a frozen dataclass filled from flags, then ``AUDIOEMBED_*`` variables, then defaults.

Every field ``name`` has a flag ``--name`` (underscores as dashes) and an environment variable
``AUDIOEMBED_NAME``; a flag given on the command line wins over the variable, which wins over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioembed.errors import InvalidOptionError
from audioembed_server import classifiers

ENV_PREFIX = "AUDIOEMBED_"
MIB = 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """Everything ``audioembed serve`` can be told. Defaults suit one container on a few cores."""

    host: str = "0.0.0.0"  # all interfaces: the usual choice inside a container; use 127.0.0.1 on a host
    port: int = 50051  # the customary gRPC port; 0 picks a free one (printed at start-up)
    weights: str | None = None  # model weights in any supported format; None = the download cache
    pca: str | None = None  # PCA parameters (.npz / .pth); None = no quantized output unless downloaded
    resampler: str = "reference"  # "reference" (matches the reference's resampy) or "fast" (polyphase)
    allow_download: bool = False  # fetch the official files when no weights are given and none are cached
    # (name, path) of each `--classifier NAME=PATH`: heads from `audioembed train` served by Classify.
    classifiers: tuple[tuple[str, str], ...] = ()
    max_batch_examples: int = 64  # examples per model batch: VGGish throughput flattens out around here
    max_queue_delay_ms: float = 25.0  # how long the first queued example waits for others to fill the batch
    max_queue_examples: int = 2048  # bounded queue (~100 MB of float64 log-mel); beyond: RESOURCE_EXHAUSTED
    max_batch_items: int = 256  # clips per EmbedBatch call
    max_receive_message_mb: float = 64.0  # gRPC's default 4 MiB is only ~131 s of 16 kHz int16 mono
    max_send_message_mb: float = 64.0
    max_stream_mb: float = 2048.0  # encoded bytes one EmbedStream may send (spooled to a temporary file)
    workers: int = 8  # gRPC handler threads: decoding and feature extraction run on these
    max_concurrent_rpcs: int = (
        64  # beyond this gRPC answers RESOURCE_EXHAUSTED instead of queuing unboundedly
    )
    # Each open EmbedStream holds a handler thread while it waits for chunks: cap them below `workers` so
    # unary calls and health checks always find a thread. None = max(1, workers // 2).
    max_concurrent_streams: int | None = None
    stream_idle_seconds: float = 30.0  # a stream silent this long between messages ends DEADLINE_EXCEEDED
    grace_seconds: float = 10.0  # on SIGTERM/SIGINT, how long in-flight requests get to finish
    metrics_port: int | None = None  # Prometheus text format on http://host:port/metrics; None = off
    metrics_host: str | None = None  # defaults to `host`
    tls_cert: str | None = None  # PEM certificate chain; with tls_key, serve TLS instead of plaintext
    tls_key: str | None = None  # PEM private key
    token: str | None = field(default=None, repr=False)  # require `authorization: Bearer <token>`
    log_format: str = "kv"  # "kv" (key=value) or "json": one line per request either way
    # Server processes sharing the port through SO_REUSEPORT, each with its own model and batcher: one
    # process is bound by one GIL. 0 ("auto" on the command line) = one per CPU this process may use.
    processes: int = 1

    def __post_init__(self) -> None:
        _check_port("port", self.port)
        if self.metrics_port is not None:
            _check_port("metrics_port", self.metrics_port)
        for name in (
            "max_batch_examples",
            "max_queue_examples",
            "max_batch_items",
            "workers",
            "max_concurrent_rpcs",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidOptionError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.processes, int) or isinstance(self.processes, bool) or self.processes < 0:
            raise InvalidOptionError(
                f"processes must be a positive integer, or 0 / 'auto' for one per CPU, got {self.processes!r}"
            )
        if self.max_concurrent_streams is None:
            object.__setattr__(self, "max_concurrent_streams", max(1, self.workers // 2))
        streams = self.max_concurrent_streams
        if not isinstance(streams, int) or isinstance(streams, bool) or streams < 1:
            raise InvalidOptionError(f"max_concurrent_streams must be a positive integer, got {streams!r}")
        if streams >= self.workers:
            raise InvalidOptionError(
                f"max_concurrent_streams ({streams}) must be less than workers ({self.workers}), so that "
                "unary calls and health checks keep a thread while streams wait for chunks"
            )
        if not self.stream_idle_seconds > 0:
            raise InvalidOptionError(f"stream_idle_seconds must be > 0, got {self.stream_idle_seconds!r}")
        if self.max_queue_examples < self.max_batch_examples:
            raise InvalidOptionError(
                f"max_queue_examples ({self.max_queue_examples}) must be at least max_batch_examples "
                f"({self.max_batch_examples})"
            )
        for name in ("max_queue_delay_ms", "grace_seconds"):
            if getattr(self, name) < 0:
                raise InvalidOptionError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("max_receive_message_mb", "max_send_message_mb", "max_stream_mb"):
            if not getattr(self, name) > 0:
                raise InvalidOptionError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidOptionError(
                "TLS needs both tls_cert and tls_key, "
                f"got tls_cert={self.tls_cert!r}, tls_key={self.tls_key!r}"
            )
        for name in ("tls_cert", "tls_key"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise InvalidOptionError(f"{name} file does not exist: {path!r}")
        if self.token is not None and not self.token.strip():
            raise InvalidOptionError("token must not be empty or blank")
        if self.resampler not in ("reference", "fast"):
            raise InvalidOptionError(f"resampler must be 'reference' or 'fast', got {self.resampler!r}")
        if self.log_format not in ("kv", "json"):
            raise InvalidOptionError(f"log_format must be 'kv' or 'json', got {self.log_format!r}")
        object.__setattr__(self, "classifiers", classifiers.check_specs(self.classifiers))

    @property
    def address(self) -> str:
        """``host:port`` as gRPC wants it (IPv6 literals in brackets)."""
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"

    @property
    def max_receive_message_bytes(self) -> int:
        return int(self.max_receive_message_mb * MIB)

    @property
    def max_send_message_bytes(self) -> int:
        return int(self.max_send_message_mb * MIB)

    @property
    def max_stream_bytes(self) -> int:
        return int(self.max_stream_mb * MIB)

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def _check_port(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise InvalidOptionError(f"{name} must be an integer in 0..65535, got {value!r}")


def env_name(field_name: str) -> str:
    """The environment variable of a field: ``max_batch_examples`` -> ``AUDIOEMBED_MAX_BATCH_EXAMPLES``."""
    return ENV_PREFIX + field_name.upper()


def _field_type(f: dataclasses.Field) -> type:
    """The scalar type of a field annotation (``"int | None"`` -> int)."""
    annotation = str(f.type)
    for name, kind in (("bool", bool), ("int", int), ("float", float)):
        if annotation.startswith(name):
            return kind
    return str


def _parse(f: dataclasses.Field, text: str, origin: str) -> Any:
    """Convert one flag or environment string to the field's type, naming where it came from on failure."""
    kind = _field_type(f)
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise InvalidOptionError(f"{origin} must be a boolean (1/0, true/false), got {text!r}")
    if kind is str:
        return text
    if f.name == "processes" and text.strip().lower() == "auto":
        return 0  # one per usable CPU, resolved when serving starts
    try:
        return kind(text)
    except ValueError as e:
        raise InvalidOptionError(
            f"{origin} must be a{'n' if kind is int else ''} {kind.__name__}, got {text!r}"
        ) from e


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per config field; defaults stay ``None`` so unset flags fall back to the environment."""
    defaults = ServerConfig()
    for f in dataclasses.fields(ServerConfig):
        if f.name == "classifiers":  # repeatable: one NAME=PATH per flag (--classifiers is an alias)
            parser.add_argument(
                "--classifier",
                "--classifiers",
                dest="classifiers",
                action="append",
                default=None,
                metavar="NAME=PATH",
                help=f"serve a classifier file as NAME (repeatable; env {env_name(f.name)}=N1=P1,N2=P2)",
            )
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        help_text = f"(env {env_name(f.name)}; default: {default!r})"
        if f.name == "max_concurrent_streams":
            help_text = f"(env {env_name(f.name)}; default: max(1, workers // 2), below workers)"
        if f.name == "processes":
            help_text = f"(env {env_name(f.name)}; default: 1; 0 or 'auto' = one per usable CPU)"
        if f.name == "token":
            help_text = (
                f"require 'authorization: Bearer TOKEN' (prefer env {env_name(f.name)}: flags show in ps)"
            )
        if _field_type(f) is bool:
            parser.add_argument(flag, action="store_const", const="1", default=None, help=help_text)
        else:
            parser.add_argument(flag, default=None, metavar=f.name.upper(), help=help_text)


def config_from(args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None) -> ServerConfig:
    """Resolve a :class:`ServerConfig`: flags in ``args`` win over ``env`` (default ``os.environ``).

    Raises
    ------
    InvalidOptionError
        A flag or variable has a value of the wrong type or outside its domain; the message names it.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for f in dataclasses.fields(ServerConfig):
        flag_value = getattr(args, f.name, None) if args is not None else None
        if f.name == "classifiers":
            if flag_value is not None:
                values[f.name] = classifiers.parse_specs(flag_value, "--classifier")
            elif env.get(env_name(f.name)) not in (None, ""):
                values[f.name] = classifiers.parse_env(env[env_name(f.name)], env_name(f.name))
        elif flag_value is not None:
            values[f.name] = _parse(f, str(flag_value), f"--{f.name.replace('_', '-')}")
        elif env.get(env_name(f.name)) not in (None, ""):
            values[f.name] = _parse(f, env[env_name(f.name)], env_name(f.name))
    return ServerConfig(**values)
