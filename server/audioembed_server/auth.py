"""Optional bearer-token check: ``authorization: Bearer <token>`` on every embedding RPC.

Health and reflection stay open, so orchestrators can probe and ``grpcurl list`` works without the token
(neither reveals anything beyond the public schema and readiness).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import grpc

from audioembed_server.logs import log_event
from audioembed_server.metrics import ServerMetrics

OPEN_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
AUTH_KEY = "authorization"
SCHEME = "Bearer "


def _deny(message: str) -> Callable[[Any, grpc.ServicerContext], None]:
    def deny(request: Any, context: grpc.ServicerContext) -> None:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return deny


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Refuse calls to protected methods without the right bearer token (constant-time comparison)."""

    def __init__(self, token: str, metrics: ServerMetrics) -> None:
        self._expected = (SCHEME + token).encode()
        self._metrics = metrics

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        method: str = handler_call_details.method
        if method.startswith(OPEN_PREFIXES):
            return continuation(handler_call_details)
        values = [v for k, v in handler_call_details.invocation_metadata or () if k == AUTH_KEY]
        supplied = values[0].encode() if values and isinstance(values[0], str) else b""
        if supplied and hmac.compare_digest(supplied, self._expected):
            return continuation(handler_call_details)
        reason = (
            "missing 'authorization: Bearer <token>' metadata" if not supplied else "invalid bearer token"
        )
        name = method.rsplit("/", 1)[-1]
        self._metrics.requests.inc(1, name, grpc.StatusCode.UNAUTHENTICATED.name)
        log_event("request", method=name, code="UNAUTHENTICATED", error=reason)
        handler = continuation(handler_call_details)
        if handler is None:  # an unknown method: let gRPC answer UNIMPLEMENTED after all
            return None
        deny = _deny(reason)
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(lambda it, ctx: deny(None, ctx))
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(lambda it, ctx: deny(None, ctx))
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(deny)
        return grpc.unary_unary_rpc_method_handler(deny)
