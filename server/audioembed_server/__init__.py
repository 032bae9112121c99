"""audioembed_server: the gRPC service over :class:`audioembed.Embedder`, and its Python client.

``create_server(config)`` starts a server (dynamic batching, health, reflection, metrics, optional TLS and
token); ``EmbeddingClient(address)`` calls it and returns the library's ``EmbeddingResult``.
"""

from audioembed_server.app import EmbeddingServer, create_server
from audioembed_server.client import EmbeddingClient, ServiceError, ServiceInfo
from audioembed_server.config import ServerConfig, config_from
from audioembed_server.servicer import SERVICE_NAME

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
