"""The SSRF guard: only public addresses are dialled, checked on the address actually connected to."""

import socket

import pytest

from webhooks import http

pytest_plugins = ["tests.webhook_fixtures"]

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("10.1.2.3", "private 10/8"),
    ("172.16.5.4", "private 172.16/12"),
    ("192.168.1.1", "private 192.168/16"),
    ("169.254.169.254", "link-local, cloud metadata"),
    ("100.64.0.1", "CGNAT"),
    ("0.0.0.0", "this network"),  # noqa: S104
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "IPv6 loopback"),
    ("fd00::1", "ULA fc00::/7"),
    ("fe80::1", "IPv6 link-local"),
    ("ff02::1", "IPv6 multicast"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("64:ff9b::a00:1", "NAT64 of 10.0.0.1"),
    ("2002:a00:1::1", "6to4 of 10.0.0.1"),
]
PUBLIC = ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.fixture
def resolve_to(monkeypatch):
    """Make every host name resolve to `address`, as a hostile DNS server could."""

    def point(address: str) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET

        def fake_getaddrinfo(host, port, *args, **kwargs):
            sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
            return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]

        monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)

    return point


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_non_public_addresses_are_blocked(address, why, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    assert http.is_blocked(address), why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_not_blocked(address, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    assert not http.is_blocked(address)


@pytest.mark.parametrize(("address", "why"), REFUSED)
def test_a_name_resolving_to_a_blocked_address_is_refused_at_connect_time(address, why, settings, resolve_to):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    resolve_to(address)

    response = http.post("http://hooks.example.com/in", content=b"{}", headers={})

    assert response.blocked, why
    assert response.status_code is None
    assert "not a public address" in response.error


def test_the_allow_list_lets_a_resolved_loopback_address_through(receiver, resolve_to):
    resolve_to("127.0.0.1")
    port = receiver.url.split(":")[2].split("/")[0]

    response = http.post(f"http://receiver.example.com:{port}/hooks", content=b"{}", headers={})

    assert response.status_code == 200
    assert receiver.wait_for(1)[0].headers["host"] == f"receiver.example.com:{port}"


def test_the_allow_list_does_not_open_other_ranges(settings, resolve_to):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    resolve_to("169.254.169.254")
    assert http.post("http://hooks.example.com/", content=b"{}", headers={}).blocked


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://hooks.example.com/", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("gopher://hooks.example.com/", "Only http and https"),
        ("http:///no-host", "no host"),
        ("http://10.0.0.5/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "private"),
        ("http://[::1]:8000/", "private"),
        ("http://127.0.0.1:8000/", "private"),
        ("http://localhost:8000/", "localhost"),
        ("http://intranet/", "fully qualified"),
        ("http://bad_host..example.com/", "not a valid host"),
        ("http://user:pw@hooks.example.com/", "credentials"),
        ("http://hooks.example.com:99999/", "not valid"),
    ],
)
def test_urls_that_can_never_be_delivered_to_are_refused(url, message, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(ValueError, match=message):
        http.check_url(url)


@pytest.mark.parametrize(
    "url", ["https://hooks.example.com/in", "http://93.184.216.34:8080/x", "https://[2606:4700::1]/"]
)
def test_public_urls_are_accepted(url, settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = []
    http.check_url(url)


def test_an_allow_listed_literal_address_is_accepted(settings):
    settings.WEBHOOK_ALLOWED_NETWORKS = ["10.20.0.0/16"]
    http.check_url("http://10.20.3.4/hook")
    with pytest.raises(ValueError, match="private"):
        http.check_url("http://10.21.3.4/hook")
