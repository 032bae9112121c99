"""A one-shot probe of the server's ``grpc.health.v1`` service, for container health checks.

Docker's ``HEALTHCHECK`` (and any orchestrator that runs a command) needs a program that exits 0 when the
server can take requests and non-zero otherwise. The image has no ``grpc_health_probe`` binary, so this
module is that program: one ``Health.Check`` call with a deadline, exit 0 only on ``SERVING``::

    python -m audioembed_server.healthcheck --address 127.0.0.1:50051 [--service NAME] [--timeout 3]

With no ``--address`` it probes the port the server was configured with through the environment
(``AUDIOEMBED_PORT``, ``AUDIOEMBED_HOST``), so a container started with another port stays healthy
without a second setting. Likewise, when the server serves TLS (``AUDIOEMBED_TLS_CERT``) the probe
connects with TLS and trusts exactly that certificate. Itself it needs only gRPC and the error classes,
not the model stack, because it runs every few seconds for the container's whole life; its start-up cost
is then whatever the ``audioembed_server`` and ``audioembed`` package ``__init__`` modules import.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from audioembed.errors import InvalidOptionError

# The server's defaults, repeated here (not imported) so the probe stays import-light; the image sets
# the same variables for both.
DEFAULT_PORT = 50051
DEFAULT_TIMEOUT_SECONDS = 3.0

# Exit codes as Docker reads them: 0 healthy, 1 unhealthy. Docker reserves 2, which argparse also uses
# for usage errors: a misconfigured probe is not a health verdict.
EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_USAGE = 2

# Addresses a server *binds* to mean "every interface"; a client must pick one of them to connect to.
_WILDCARD_HOSTS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}


def parse_address(text: str) -> str:
    """Check a ``HOST:PORT`` target and return it unchanged.

    Parameters
    ----------
    text : str
        ``host:port``, ``[ipv6]:port``; the port must be an integer in 1..65535.

    Returns
    -------
    str
        ``text``, safe to give to :func:`grpc.insecure_channel`.

    Raises
    ------
    InvalidOptionError
        If there is no host, no port, or the port is not an integer in range.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or host in ("[", "[]"):
        raise InvalidOptionError(f"address must be HOST:PORT, got {text!r}")
    if host.startswith("[") != host.endswith("]"):
        raise InvalidOptionError(f"an IPv6 host must be in brackets, [::1]:PORT, got {text!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise InvalidOptionError(f"address port must be an integer in 1..65535, got {port!r} in {text!r}")
    return text


def default_address(environ: Mapping[str, str]) -> str:
    """The address a probe inside the server's container should use, from the server's settings.

    Parameters
    ----------
    environ : mapping of str to str
        Usually :data:`os.environ`; reads ``AUDIOEMBED_PORT`` (default 50051) and ``AUDIOEMBED_HOST``.

    Returns
    -------
    str
        ``HOST:PORT``; a wildcard bind host (``0.0.0.0``, ``::``, unset) becomes the matching loopback.

    Raises
    ------
    InvalidOptionError
        If ``AUDIOEMBED_PORT`` is not a valid port.
    """
    host = environ.get("AUDIOEMBED_HOST", "").strip()
    host = _WILDCARD_HOSTS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # a bare IPv6 literal: gRPC targets need the brackets
    port = environ.get("AUDIOEMBED_PORT", "").strip() or str(DEFAULT_PORT)
    try:
        return parse_address(f"{host}:{port}")
    except InvalidOptionError as error:
        raise InvalidOptionError(f"AUDIOEMBED_PORT/AUDIOEMBED_HOST give a bad address: {error}") from error


def check(
    address: str,
    *,
    service: str = "",
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    tls_roots: bytes | None = None,
    server_name: str | None = None,
) -> tuple[bool, str]:
    """Ask the server at ``address`` for the health of ``service`` once.

    Parameters
    ----------
    address : str
        ``HOST:PORT`` of the gRPC server.
    service : str, optional
        The service name registered with the health servicer; ``""`` (default) is the whole server.
    timeout : float, optional
        Deadline of the call in seconds, > 0.
    tls_roots : bytes, optional
        PEM certificates to trust; given, the call uses TLS (default: plaintext).
    server_name : str, optional
        With TLS, the name the server's certificate must carry, when it differs from the address's host
        (a certificate for ``audio.example.org`` probed through ``127.0.0.1``).

    Returns
    -------
    healthy : bool
        True only when the server answered ``SERVING``.
    detail : str
        The status name (``SERVING``, ``NOT_SERVING``, ...) or why there was no answer.

    Raises
    ------
    InvalidOptionError
        If ``address`` or ``timeout`` is unusable.
    """
    parse_address(address)
    if not (isinstance(timeout, int | float) and math.isfinite(timeout) and timeout > 0):
        raise InvalidOptionError(f"timeout must be a positive number of seconds, got {timeout!r}")
    request = health_pb2.HealthCheckRequest(service=service)
    if tls_roots is None:
        if server_name is not None:
            raise InvalidOptionError(f"server_name {server_name!r} needs TLS roots (tls_roots)")
        channel = grpc.insecure_channel(address)
    else:
        options = [] if server_name is None else [("grpc.ssl_target_name_override", server_name)]
        channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(tls_roots), options=options)
    with channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout)
        except grpc.RpcError as error:
            # An RpcError raised by a call is also a grpc.Call: it has a code and details.
            code = error.code()  # type: ignore[attr-defined]
            if code == grpc.StatusCode.NOT_FOUND:
                return False, f"service {service!r} is not registered with the health service at {address}"
            return False, f"no answer from {address}: {code.name} {error.details()}"  # type: ignore[attr-defined]
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    return response.status == health_pb2.HealthCheckResponse.SERVING, status


def read_tls_roots(path: str) -> bytes:
    """The PEM bytes of ``path``.

    Raises
    ------
    InvalidOptionError
        If the file cannot be read or holds no PEM certificate.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise InvalidOptionError(f"cannot read the TLS certificate {path!r}: {error.strerror}") from error
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise InvalidOptionError(f"TLS certificate {path!r} holds no PEM certificate")
    return data


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The probe's command line (``python -m audioembed_server.healthcheck --help``)."""
    parser = argparse.ArgumentParser(
        prog="python -m audioembed_server.healthcheck",
        description="Exit 0 when the audioembed gRPC server reports SERVING, 1 otherwise.",
    )
    parser.add_argument(
        "--address",
        default=None,
        help=f"HOST:PORT of the server (default: loopback and AUDIOEMBED_PORT, else {DEFAULT_PORT})",
    )
    parser.add_argument("--service", default="", help="service name to check (default: the whole server, '')")
    parser.add_argument(
        "--tls-cert",
        default=None,
        metavar="PEM",
        help="connect with TLS, trusting this certificate (default: $AUDIOEMBED_TLS_CERT, the server's own; "
        "unset: plaintext)",
    )
    parser.add_argument(
        "--tls-server-name",
        default=None,
        metavar="NAME",
        help="name the certificate must carry if not the address's host "
        "(default: $AUDIOEMBED_HEALTHCHECK_SERVER_NAME)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        help="deadline of the call in seconds (default: %(default)s)",
    )
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one probe; print the verdict; return the exit code (0 healthy, 1 unhealthy, 2 usage)."""
    args = build_parser().parse_args(argv)
    environ = os.environ if environ is None else environ
    try:
        address = parse_address(args.address) if args.address is not None else default_address(environ)
        cert = args.tls_cert if args.tls_cert is not None else environ.get("AUDIOEMBED_TLS_CERT") or None
        server_name = args.tls_server_name or environ.get("AUDIOEMBED_HEALTHCHECK_SERVER_NAME") or None
        healthy, detail = check(
            address,
            service=args.service,
            timeout=args.timeout,
            tls_roots=None if cert is None else read_tls_roots(cert),
            server_name=server_name,
        )
    except InvalidOptionError as error:
        print(f"healthcheck: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    # Docker keeps the probe's output in `docker inspect`'s Health.Log: make it say what happened.
    print(f"{address} {args.service or '(server)'}: {detail}")
    return EXIT_HEALTHY if healthy else EXIT_UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
