"""audioembed_server: the gRPC service over :class:`audioembed.Embedder`, and its Python client.

``create_server(config)`` starts a server (dynamic batching, health, reflection, metrics, optional TLS and
token); ``EmbeddingClient(address)`` calls it and returns the library's ``EmbeddingResult``.

Names are imported on first use (PEP 562): the container's health probe imports
``audioembed_server.healthcheck`` every few seconds and must not pay for NumPy and the model code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audioembed_server.app import EmbeddingServer, create_server
    from audioembed_server.client import EmbeddingClient, ServiceError, ServiceInfo
    from audioembed_server.config import ServerConfig, config_from
    from audioembed_server.servicer import SERVICE_NAME

_LAZY = {
    "EmbeddingServer": "audioembed_server.app",
    "create_server": "audioembed_server.app",
    "EmbeddingClient": "audioembed_server.client",
    "ServiceError": "audioembed_server.client",
    "ServiceInfo": "audioembed_server.client",
    "ServerConfig": "audioembed_server.config",
    "config_from": "audioembed_server.config",
    "SERVICE_NAME": "audioembed_server.servicer",
}

__all__ = [
    "SERVICE_NAME",
    "EmbeddingClient",
    "EmbeddingServer",
    "ServerConfig",
    "ServiceError",
    "ServiceInfo",
    "config_from",
    "create_server",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'audioembed_server' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
