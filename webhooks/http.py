"""The one guarded seam for outgoing HTTP: timeouts, no redirects, http(s) only, no private addresses.

Addresses are checked when the socket connects, on the IP actually dialled, so a name that
resolves to a public address when an endpoint is saved and to 169.254.169.254 later (DNS
rebinding) is still refused. `WEBHOOK_ALLOWED_NETWORKS` lets chosen networks through.
"""

import ipaddress
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import certifi
import urllib3
from django.conf import settings
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not covered by `is_global` on every Python version, so named explicitly.
BLOCKED_NETWORKS: tuple[Network, ...] = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
        "::1/128",
        "64:ff9b::/96",  # NAT64 reaches IPv4 space
        "fc00::/7",  # ULA
        "fe80::/10",
        "ff00::/8",
    )
)


class ConnectFailed(NewConnectionError):
    """No connection: the name did not resolve, or the address refused or could not be reached."""

    def __init__(self, conn: HTTPConnection, reason: str) -> None:
        super().__init__(conn, reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class BlockedAddress(ConnectFailed):
    """The destination is loopback, private, link-local, reserved or otherwise not public."""


@cache
def _allowed_networks(raw: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in raw if cidr.strip())


def allowed_networks() -> tuple[Network, ...]:
    raw = settings.WEBHOOK_ALLOWED_NETWORKS
    return _allowed_networks(tuple(raw.split(",") if isinstance(raw, str) else raw))


def is_blocked(address: str | IPAddress) -> bool:
    """True when `address` must not be dialled: not public and not in the allow-list."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        # ::ffff:10.0.0.1 and ::10.0.0.1 reach the IPv4 address inside them.
        ip = ip.ipv4_mapped or ip.sixtofour or ip
    if any(ip in network for network in allowed_networks() if network.version == ip.version):
        return False
    if any(ip in network for network in BLOCKED_NETWORKS if network.version == ip.version):
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved


def check_url(url: str) -> None:
    """Refuse a URL that can never be delivered to; raises ValueError saying why."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError("Only http and https URLs can receive webhooks.")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises on an invalid port
    except ValueError as exc:
        raise ValueError(f"The URL is not valid: {exc}.") from exc
    if not host:
        raise ValueError("The URL has no host name.")
    if parts.username or parts.password:
        raise ValueError("Put credentials in a custom header, not in the URL.")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        _check_host_name(host)
        return
    if is_blocked(ip):
        raise ValueError(f"{ip} is a private, loopback or reserved address; webhooks go to public addresses only.")


def _check_host_name(host: str) -> None:
    try:
        ascii_host = host.encode("idna").decode()
    except UnicodeError as exc:
        raise ValueError(f"'{host}' is not a valid host name.") from exc
    labels = ascii_host.rstrip(".").split(".")
    if len(ascii_host) > 253 or not all(0 < len(label) <= 63 for label in labels):
        raise ValueError(f"'{host}' is not a valid host name.")
    if len(labels) < 2 and host != "localhost":
        raise ValueError(f"'{host}' is not a fully qualified host name.")
    if (host == "localhost" or ascii_host.endswith(".localhost")) and is_blocked("127.0.0.1"):
        raise ValueError("localhost is a loopback address; webhooks go to public addresses only.")


class GuardedConnection(HTTPConnection):
    """Resolves the host itself and connects only to an address that passes `is_blocked`."""

    def _new_conn(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self._dns_host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectFailed(self, f"Could not resolve {self.host}: {exc}") from exc
        refused = ""
        for family, type_, proto, _, sockaddr in infos:
            if is_blocked(sockaddr[0]):
                refused = refused or sockaddr[0]
                continue
            return self._connect(family, type_, proto, sockaddr)
        raise BlockedAddress(self, f"{self.host} resolves to {refused}, which is not a public address.")

    def _connect(self, family, type_, proto, sockaddr) -> socket.socket:
        sock = socket.socket(family, type_, proto)
        try:
            for option in self.socket_options or ():
                sock.setsockopt(*option)  # TCP_NODELAY among them
            sock.settimeout(self.timeout)
            sock.connect(sockaddr)
        except TimeoutError as exc:
            sock.close()
            raise ConnectTimeoutError(self, f"Connecting to {self.host} timed out.") from exc
        except OSError as exc:
            sock.close()
            raise ConnectFailed(self, f"Could not connect to {self.host}: {exc}") from exc
        return sock


class GuardedHTTPSConnection(GuardedConnection, HTTPSConnection):
    """TLS on top of the guarded socket: the certificate is checked against the URL's host name."""


class GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedConnection


class GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


_pool: urllib3.PoolManager | None = None
_pool_lock = threading.Lock()


def pool() -> urllib3.PoolManager:
    """The process's connection pools, one per host (created on first use, shared by threads).

    Each host keeps up to `WEBHOOK_SEND_THREADS` connections alive between requests, as many
    as the senders can use at once.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            manager = urllib3.PoolManager(
                num_pools=100,
                maxsize=max(1, settings.WEBHOOK_SEND_THREADS),
                retries=False,
                ca_certs=certifi.where(),
            )
            manager.pool_classes_by_scheme = {"http": GuardedHTTPPool, "https": GuardedHTTPSPool}
            _pool = manager
        return _pool


@dataclass(frozen=True)
class Response:
    status_code: int | None
    body: str = ""
    headers: Mapping[str, str] | None = None
    error: str = ""
    timed_out: bool = False
    blocked: bool = False
    latency_ms: int = 0


def post(url: str, *, content: bytes, headers: dict[str, str], max_body: int = 20 * 1024) -> Response:
    """POST `content`; never raises for network trouble, returns what happened instead."""
    timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    try:
        check_url(url)
    except ValueError as exc:
        return Response(None, error=str(exc), blocked=True)
    started = time.monotonic()
    try:
        response = pool().request(
            "POST",
            url,
            body=content,
            headers=headers,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            redirect=False,
            preload_content=False,
        )
        body, ended = "", False
        try:
            body, ended = _read_capped(response, max_body, started + timeout)
        finally:
            if not ended:
                response.close()  # the rest of the body is still on the wire: the connection is not reusable
            response.release_conn()
        return Response(response.status, body, response.headers, latency_ms=_ms_since(started))
    except BlockedAddress as exc:
        return Response(None, error=str(exc), blocked=True, latency_ms=_ms_since(started))
    except ConnectFailed as exc:  # before the timeouts: urllib3 files it under ConnectTimeoutError
        return Response(None, error=str(exc), latency_ms=_ms_since(started))
    except (TimeoutError, urllib3.exceptions.TimeoutError) as exc:
        error = f"Timed out after {timeout:g} s ({_timeout_kind(exc)})."
        return Response(None, error=error, timed_out=True, latency_ms=_ms_since(started))
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return Response(None, error=_reason(exc), latency_ms=_ms_since(started))


def _read_capped(response: urllib3.BaseHTTPResponse, limit: int, deadline: float) -> tuple[str, bool]:
    """Up to `limit` bytes of the body, a socket read at a time so a trickling answer meets the deadline;
    and whether the body ended there."""
    chunks, size = [], 0
    while size < limit:
        chunk = response.read1(min(limit - size, 64 * 1024), decode_content=False)
        if not chunk:
            return b"".join(chunks).decode("utf-8", errors="replace"), True
        chunks.append(chunk)
        size += len(chunk)
        if time.monotonic() > deadline:
            raise TimeoutError("The response body took too long.")
    return b"".join(chunks).decode("utf-8", errors="replace"), False


def _reason(exc: BaseException) -> str:
    """The error as a dispatcher reads it, without the client's object names."""
    if isinstance(exc, urllib3.exceptions.ProtocolError) and len(exc.args) > 1:
        return f"The connection broke: {exc.args[1]}"
    return str(exc) or type(exc).__name__


def _timeout_kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectTimeoutError):
        return "connect"
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return "read"
    return "body"


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
