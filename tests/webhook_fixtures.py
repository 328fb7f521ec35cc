"""A real HTTP receiver on loopback for webhook tests, and fixtures around it."""

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webhooks.models import Endpoint


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class Receiver:
    """Records every request; answers from a script of replies, then with the default reply."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: deque[Reply] = deque()
        self.default = Reply()
        self.release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def reply(self, status: int = 200, body: str = "ok", **options) -> None:
        """Queue the answer to the next request."""
        self.replies.append(Reply(status, body, **options))

    def always(self, status: int = 200, body: str = "ok", **options) -> None:
        """Answer every request not queued with `reply` like this."""
        self.default = Reply(status, body, **options)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Poll until `count` requests arrived, failing after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.received)}")
            time.sleep(0.02)
        return self.received

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode()
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                reply = receiver.replies.popleft() if receiver.replies else receiver.default
                if reply.delay:
                    receiver.release.wait(reply.delay)
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                payload = reply.body.encode()
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args) -> None:
                pass

        return Handler

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def allow_loopback(settings):
    """Let the SSRF guard through to loopback, where the test receivers live."""
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.WEBHOOK_SWEEP_THREADS = 1
    return settings


@pytest.fixture
def receiver(allow_loopback):
    with Receiver() as server:
        yield server


@pytest.fixture
def other_receiver(allow_loopback):
    """A second receiver, for a test whose endpoints answer differently."""
    with Receiver() as server:
        yield server


@pytest.fixture
def make_endpoint(org, receiver) -> Callable[..., Endpoint]:
    def make(**fields) -> Endpoint:
        fields.setdefault("organization", org)
        fields.setdefault("url", receiver.url)
        return Endpoint.objects.create(**fields)

    return make


@pytest.fixture
def endpoint(make_endpoint) -> Endpoint:
    return make_endpoint(description="Acme CRM")
