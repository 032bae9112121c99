"""Where a client connects: one server, a list of replicas, or a name that resolves to several.

gRPC balances one channel over every address its target resolves to when the channel's service config
asks for ``round_robin`` (its default, ``pick_first``, would send everything to the first address). So:

- ``host:port`` or any resolver URI (``dns:///svc.ns:50051`` — e.g. a Kubernetes headless Service, whose
  name resolves to every ready pod —, ``ipv4:...``, ``unix:...``) is passed to gRPC unchanged;
- several ``host:port`` (a list, or one comma-separated string) become one static ``ipv4:``/``ipv6:``
  target, gRPC's own syntax for a fixed address list. Host names in such a list are resolved once, here;
  use ``dns:///`` for a set that changes.

Failed calls are not retried by gRPC here but by the client's own loop (bounded backoff within the call's
deadline, UNAVAILABLE and hinted RESOURCE_EXHAUSTED): with round-robin a retry goes to another ready
replica, because one whose connection broke leaves the rotation.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Sequence

from audioembed.errors import InvalidOptionError

# gRPC's channel option taking a service config (JSON): round-robin over every resolved address.
SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:")


def channel_target(address: str | Sequence[str]) -> str:
    """The gRPC target for ``address``: one ``host:port``, several (list or comma-separated), or a URI.

    Parameters
    ----------
    address : str or sequence of str
        ``"host:port"``, ``"a:1,b:2"``, ``["a:1", "b:2"]``, or a resolver URI such as ``"dns:///svc:50051"``.

    Returns
    -------
    str
        A target for ``grpc.insecure_channel`` / ``grpc.secure_channel``.

    Raises
    ------
    InvalidOptionError
        An empty address, a malformed ``host:port``, a URI inside a list, a host that does not resolve, or
        a list mixing IPv4 and IPv6 (gRPC's static lists hold one family).
    """
    entries = [address] if isinstance(address, str) else list(address)
    if not all(isinstance(entry, str) for entry in entries):
        raise InvalidOptionError(f"addresses must be strings, got {address!r}")
    parts = [part.strip() for entry in entries for part in entry.split(",")]
    if not parts or not all(parts):
        raise InvalidOptionError(f"an address must be host:port (or a list of them), got {address!r}")
    if len(parts) == 1:
        if not parts[0].startswith(_SCHEMES):
            _split(parts[0])  # validates host:port
        return parts[0]
    for part in parts:
        if part.startswith(_SCHEMES):
            raise InvalidOptionError(
                f"a list of addresses holds host:port entries, not target URIs, got {part!r} in {address!r}"
            )
    resolved = [_resolve(*_split(part)) for part in parts]
    families = {family for family, _ in resolved}
    if len(families) > 1:
        raise InvalidOptionError(f"a list of addresses must be all IPv4 or all IPv6, got {address!r}")
    scheme = "ipv6" if socket.AF_INET6 in families else "ipv4"
    return f"{scheme}:" + ",".join(endpoint for _, endpoint in resolved)


def _split(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not sep or not host or not 0 < port < 65536:
        raise InvalidOptionError(f"an address must be host:port with a port in 1..65535, got {address!r}")
    return host, port


def _resolve(host: str, port: int) -> tuple[int, str]:
    """(address family, ``ip:port`` / ``[ip]:port``) of ``host``; IPv4 preferred for a name."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise InvalidOptionError(f"cannot resolve {host!r}: {error.strerror}") from error
        addresses = [info[4][0] for info in infos]
        ip = ipaddress.ip_address(next((a for a in addresses if ":" not in a), addresses[0]))
    if ip.version == 6:
        return socket.AF_INET6, f"[{ip}]:{port}"
    return socket.AF_INET, f"{ip}:{port}"
