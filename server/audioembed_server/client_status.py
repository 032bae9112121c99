"""The client's reading of gRPC statuses: :class:`ServiceError`, and which failures are retried when.

Calls that fail with UNAVAILABLE (model loading, a replica restarting) or RESOURCE_EXHAUSTED with a
``retry-after-ms`` hint (queue full) are retried with bounded, jittered exponential backoff.
"""

from __future__ import annotations

import random

import grpc

from audioembed.errors import AudioEmbedError
from audioembed_server.status import RETRY_AFTER_KEY

RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


class ServiceError(AudioEmbedError):
    """The service answered with an error status: ``code`` (grpc.StatusCode) and the server's ``details``."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


def retry_delay(
    error: grpc.RpcError, attempt: int, *, max_retries: int, initial_backoff: float, max_backoff: float
) -> float | None:
    """Seconds to wait before retry number ``attempt + 1``, or None when the error is final.

    The backoff doubles from ``initial_backoff`` up to ``max_backoff``, times a jitter in [0.5, 1); a
    server's ``retry-after-ms`` hint is a lower bound.
    """
    if attempt >= max_retries or error.code() not in RETRYABLE:
        return None
    backoff = min(max_backoff, initial_backoff * 2**attempt) * random.uniform(0.5, 1.0)
    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
        hints = [v for k, v in (error.trailing_metadata() or ()) if k == RETRY_AFTER_KEY]
        if not hints:
            return None  # too large, not too busy: retrying cannot help
        backoff = max(backoff, float(hints[0]) / 1000.0)
    return backoff


def service_error(error: grpc.RpcError) -> ServiceError:
    """The call's status as a :class:`ServiceError`, with a hint when a message was too large."""
    details = error.details() or ""
    if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        details += " (a gRPC message size limit; send long audio with embed_stream / EmbedStream)"
    return ServiceError(error.code(), details)


def status_code(value: int) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` of a numeric code (UNKNOWN for a number gRPC does not define)."""
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN
