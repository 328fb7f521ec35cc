"""Fixtures for the notification tests: a real SMTP server, a fake Twilio over real HTTP, people, tasks.

Loaded with `pytest_plugins = ["tests.test_notifications_fixtures"]`; it holds no tests itself.
"""

import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass
from datetime import time as clock
from urllib.parse import parse_qsl

import pytest
from aiosmtpd.controller import Controller
from django.urls import reverse
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from notifications import twilio
from notifications.models import NotificationSettings
from notifications.transports import kept_mailer
from tasks.models import Person, Task

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-auth-token-for-tests"
FROM_NUMBER = "+15005550006"
CUSTOMER_MOBILE = "+12125550142"
CREW_MOBILE = "+12125550177"


def wait_until(condition, timeout: float = 30.0, message: str = "condition not met before the deadline") -> None:
    """Poll `condition` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


# --- A real SMTP server ------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    content: str
    peer: tuple | None = None  # the client's address and port: one per connection


class Mailbox:
    """aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Mail] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        content = envelope.content.decode("utf-8", errors="replace")
        self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), content, tuple(session.peer)))
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Mail]:
        wait_until(lambda: len(self.messages) >= count, timeout, f"expected {count} emails, got {len(self.messages)}")
        return self.messages


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server(settings):
    """A real SMTP server on loopback; the default mailer (Django's SMTP backend) points at it.

    `mailbox.restart()` stops the server, closing every session, and starts it again on its port.
    """
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    controller.start()

    def restart() -> None:
        nonlocal controller
        controller.stop()
        controller = Controller(mailbox, hostname="127.0.0.1", port=controller.port)
        controller.start()

    mailbox.restart = restart
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": controller.port, "use_tls": False, "timeout": 5},
        }
    }
    settings.DEFAULT_FROM_EMAIL = "Acme <dispatch@acme.test>"
    yield mailbox
    controller.stop()
    kept_mailer.close()


# --- A fake Twilio over real HTTP --------------------------------------------------------------


@dataclass
class Sms:
    to: str
    sender: str
    body: str
    status_callback: str
    authorization: str


class FakeTwilio:
    """Speaks Twilio's Messages endpoint; answers from a script of failures, then with success."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.messages: list[Sms] = []  # accepted ones
        self.requests = 0
        self.failures: list[tuple[int, dict]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
        server.expect_request(path, method="POST").respond_with_handler(self._handle)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def fail_next(self, status: int, code: int | None = None, message: str = "error") -> None:
        self.failures.append((status, {"code": code, "message": message, "status": status}))

    def _handle(self, request: Request) -> Response:
        form = dict(parse_qsl(request.get_data(as_text=True)))
        with self._lock:
            self.requests += 1
            if self.failures:
                status, body = self.failures.pop(0)
                return Response(json.dumps(body), status=status, content_type="application/json")
            sid = f"SM{next(self._ids):032d}"
            self.messages.append(Sms(form["To"], form["From"], form["Body"], form.get("StatusCallback", ""),
                                     request.headers.get("Authorization", "")))  # fmt: skip
        body = {"sid": sid, "status": "queued", "to": form["To"], "from": form["From"]}
        return Response(json.dumps(body), status=201, content_type="application/json")

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Sms]:
        wait_until(lambda: len(self.messages) >= count, timeout, f"expected {count} SMS, got {len(self.messages)}")
        return self.messages


@pytest.fixture
def fake_twilio(settings):
    """Twilio's API on loopback, with SMS_BACKEND=twilio pointed at it."""
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    fake = FakeTwilio(server)
    settings.SMS_BACKEND = "twilio"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = ACCOUNT_SID, AUTH_TOKEN
    settings.TWILIO_FROM_NUMBER, settings.TWILIO_API_BASE_URL = FROM_NUMBER, fake.base_url
    settings.WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.0/8"]  # the guarded HTTP seam lets loopback through
    yield fake
    server.clear()
    server.stop()


@pytest.fixture
def twilio_settings(settings):
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_FROM_NUMBER = (
        ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER,
    )  # fmt: skip
    return settings


def signed_post(client, name: str, params: dict[str, str], *, token: str = AUTH_TOKEN):
    """POST to a provider endpoint signed the way Twilio signs: PUBLIC_BASE_URL + path + sorted params."""
    from django.conf import settings

    path = reverse(name)
    signature = twilio.signature(token, settings.PUBLIC_BASE_URL + path, params.items())
    return client.post(path, params, HTTP_X_TWILIO_SIGNATURE=signature)


# --- People, tasks and settings ------------------------------------------------------------------


@pytest.fixture
def no_quiet_hours(org) -> NotificationSettings:
    """Whatever the time of day the suite runs, messages go at once."""
    found, _ = NotificationSettings.objects.update_or_create(
        organization=org, defaults={"quiet_hours_start": clock(0), "quiet_hours_end": clock(0)}
    )
    return found


@pytest.fixture
def customer(org) -> Person:
    return Person.objects.create(organization=org, first_name="Ada", last_name="Lovelace", email="ada@example.com",
                                 mobile_number=CUSTOMER_MOBILE, phone="+12125550100", is_customer=True)  # fmt: skip


@pytest.fixture
def crew_member(org) -> Person:
    return Person.objects.create(organization=org, first_name="Bob", last_name="Smith", email="bob@acme.test",
                                 mobile_number=CREW_MOBILE, is_crew=True)  # fmt: skip


@pytest.fixture
def creator(org) -> Person:
    return Person.objects.create(organization=org, first_name="Dee", last_name="Spatcher", email="dee@acme.test",
                                 phone="+12125550188", is_staff_member=True)  # fmt: skip


@pytest.fixture
def make_task(org, customer):
    def make(**fields) -> Task:
        crew = fields.pop("crew", [])
        fields.setdefault("organization", org)
        fields.setdefault("customer", customer)
        fields.setdefault("title", "Install dishwasher")
        task = Task.objects.create(**fields)
        task.assignees.set(crew)
        return task

    return make
