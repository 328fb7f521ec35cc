"""The one guarded seam for outgoing HTTP: timeouts, no redirects, http(s) only, no private addresses.

Addresses are checked when the socket connects, on the IP actually dialled, so a name that
resolves to a public address when an endpoint is saved and to 169.254.169.254 later (DNS
rebinding) is still refused. `WEBHOOK_ALLOWED_NETWORKS` lets chosen networks through.
"""

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

import httpcore
import httpx
from django.conf import settings

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


class BlockedAddress(httpcore.ConnectError):
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


class GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to an address that passes `is_blocked`."""

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"Could not resolve {host}: {exc}") from exc
        refused = ""
        for family, type_, proto, _, sockaddr in infos:
            if is_blocked(sockaddr[0]):
                refused = refused or sockaddr[0]
                continue
            return self._connect(family, type_, proto, sockaddr, timeout, socket_options or [])
        raise BlockedAddress(f"{host} resolves to {refused}, which is not a public address.")

    def _connect(self, family, type_, proto, sockaddr, timeout, socket_options):
        sock = socket.socket(family, type_, proto)
        try:
            sock.settimeout(timeout)
            for option in socket_options:
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.connect(sockaddr)
        except TimeoutError as exc:
            sock.close()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(str(exc)) from exc
        return httpcore._backends.sync.SyncStream(sock)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the connection pool dialling through `GuardedBackend`."""

    def __init__(self, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(),
        )


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def client() -> httpx.Client:
    """The process's pooled client (created on first use, shared by threads)."""
    global _client
    with _client_lock:
        if _client is None:
            limits = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)
            _client = httpx.Client(
                transport=GuardedTransport(limits), follow_redirects=False, trust_env=False, timeout=15
            )
        return _client


@dataclass(frozen=True)
class Response:
    status_code: int | None
    body: str = ""
    headers: httpx.Headers | None = None
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
        with client().stream("POST", url, content=content, headers=headers, timeout=timeout) as response:
            body = _read_capped(response, max_body, started + timeout)
            return Response(response.status_code, body, response.headers, latency_ms=_ms_since(started))
    except httpx.TimeoutException as exc:
        error = f"Timed out after {timeout:g} s ({type(exc).__name__})."
        return Response(None, error=error, timed_out=True, latency_ms=_ms_since(started))
    except httpx.HTTPError as exc:
        blocked = isinstance(exc.__cause__, BlockedAddress)
        return Response(None, error=str(exc) or type(exc).__name__, blocked=blocked, latency_ms=_ms_since(started))


def _read_capped(response: httpx.Response, limit: int, deadline: float) -> str:
    chunks, size = [], 0
    for chunk in response.iter_raw():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
        if time.monotonic() > deadline:
            raise httpx.ReadTimeout("The response body took too long.")
    return b"".join(chunks)[:limit].decode("utf-8", errors="replace")


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
