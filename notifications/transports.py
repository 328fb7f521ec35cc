"""Channel transports: one class per channel (and SMS provider), chosen from a registry."""

import base64
import contextlib
import copy
import json
import logging
import smtplib
import threading
import time
from abc import ABC, abstractmethod
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import EmailMessage, EmailMultiAlternatives, mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import make_msgid

from webhooks import http

from .models import Channel, Notification
from .rendering import email_html

logger = logging.getLogger(__name__)

DEFAULT_MAILER = "default"
# Twilio error codes that no retry will cure.
TWILIO_INVALID_NUMBER = frozenset({21211, 21614})
TWILIO_OPTED_OUT = 21610


class TransportError(Exception):
    """Sending failed; `permanent` ones are not retried, `opted_out` ones also suppress the address."""

    def __init__(self, message: str, *, permanent: bool = False, opted_out: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent or opted_out
        self.opted_out = opted_out


class Transport(ABC):
    """Sends one notification; returns the provider's message id or raises TransportError."""

    @abstractmethod
    def send(self, notification: Notification) -> str: ...


class KeptMailer:
    """The default mailer's connection, one per thread, kept open between the messages it sends.

    Django's `EmailMessage.send()` opens a connection for each message and closes it after it:
    for SMTP a TCP connection, EHLO, STARTTLS and login, then QUIT, for every email. To a local
    SMTP server without TLS a message took 8.7–10.0 ms and 5.5–6.4 ms of the sender's CPU that
    way, 6.7–7.3 ms and 4.9–5.2 ms over a kept connection (with TLS, each new connection adds a
    handshake). Here each thread keeps its connection, as Django keeps a database connection.
    At the next message, one left idle for longer than EMAIL_KEEPALIVE_SECONDS (which the server
    may have closed meanwhile) or opened under another mailer configuration is closed and a new
    one opened. A message whose kept connection the server had dropped (SMTP servers close idle
    sessions) is sent once more over a new one; any other failure closes the connection, so the
    next message starts afresh.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def send(self, message: EmailMessage) -> None:
        try:
            mailer, reused = self._mailer()
            try:
                mailer.send_messages([message])
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                if not reused:
                    raise
                self.close()  # dropped while kept: once more, over a new connection
                mailer, _ = self._mailer()
                mailer.send_messages([message])
        except Exception:
            self.close()
            raise
        finally:
            self._local.used = time.monotonic()

    def _mailer(self) -> tuple[BaseEmailBackend, bool]:
        """This thread's open mailer, and whether its connection was open before (so may have been dropped)."""
        local, config = self._local, getattr(settings, "MAILERS", {}).get(DEFAULT_MAILER)
        mailer = getattr(local, "mailer", None)
        if mailer is not None and (
            local.config != config or time.monotonic() - local.used > settings.EMAIL_KEEPALIVE_SECONDS
        ):
            self.close()
            mailer = None
        if mailer is None:
            mailer = local.mailer = mailers.default
            local.config, local.used = copy.deepcopy(config), time.monotonic()
        return mailer, mailer.open() is False  # SMTP: False when the connection was already open

    def close(self) -> None:
        """Close this thread's connection, if it has one; a failure to say goodbye is no failure."""
        mailer, self._local.mailer = getattr(self._local, "mailer", None), None
        if mailer is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                mailer.close()


kept_mailer = KeptMailer()


class Email(Transport):
    """Through Django's default mailer: SMTP from the environment, the console in `make run`;
    each sending thread keeps its connection open between messages (KeptMailer)."""

    def send(self, notification: Notification) -> str:
        message_id = make_msgid(domain="taskhub")
        message = EmailMultiAlternatives(
            subject=notification.subject,
            body=notification.body,
            from_email=settings.DEFAULT_FROM_EMAIL,
            to=[notification.to],
            headers={"Message-ID": message_id},
        )
        message.attach_alternative(email_html(notification.body), "text/html")
        try:
            kept_mailer.send(message)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise TransportError(f"The mail server refused the address: {exc.recipients}",
                                 permanent=all(code >= 500 for code in codes)) from exc  # fmt: skip
        except smtplib.SMTPResponseException as exc:
            detail = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            raise TransportError(f"SMTP {exc.smtp_code}: {detail}", permanent=exc.smtp_code >= 500) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransportError(f"Could not reach the mail server: {exc or type(exc).__name__}") from exc
        return message_id


class ConsoleSms(Transport):
    """Writes the SMS to the log instead of sending it (`SMS_BACKEND=console`)."""

    def send(self, notification: Notification) -> str:
        logger.info("SMS to %s:\n%s", notification.to, notification.body)
        return f"console-{notification.pk}"


class TwilioSms(Transport):
    """Twilio's Messages API over plain HTTP through the guarded outgoing seam."""

    def send(self, notification: Notification) -> str:
        sid, token = settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN
        if not (sid and token and settings.TWILIO_FROM_NUMBER):
            raise TransportError(
                "Twilio is not configured (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)."
            )
        url = f"{settings.TWILIO_API_BASE_URL.rstrip('/')}/2010-04-01/Accounts/{sid}/Messages.json"
        form = {
            "To": notification.to,
            "From": settings.TWILIO_FROM_NUMBER,
            "Body": notification.body,
            "StatusCallback": f"{settings.PUBLIC_BASE_URL}/hooks/twilio/status",
        }
        credentials = base64.b64encode(f"{sid}:{token}".encode()).decode()
        headers = {
            "authorization": f"Basic {credentials}",
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
            "user-agent": "TaskHub-Notifications/1.0",
        }
        response = http.post(url, content=urlencode(form).encode(), headers=headers)
        return self._outcome(response)

    @staticmethod
    def _outcome(response: http.Response) -> str:
        if response.status_code is None:
            raise TransportError(f"Twilio unreachable: {response.error}", permanent=response.blocked)
        payload = _json(response.body)
        if 200 <= response.status_code < 300 and payload.get("sid"):
            return str(payload["sid"])
        code, message = payload.get("code"), payload.get("message") or response.body[:200]
        error = f"Twilio {response.status_code}" + (f" error {code}" if code else "") + f": {message}"
        if code == TWILIO_OPTED_OUT:
            raise TransportError(error, opted_out=True)
        if code in TWILIO_INVALID_NUMBER:
            raise TransportError(error, permanent=True)
        transient = response.status_code == 429 or response.status_code >= 500
        raise TransportError(error, permanent=not transient and response.status_code >= 400)


def _json(body: str) -> dict:
    try:
        value = json.loads(body or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


TRANSPORTS: dict[str, type[Transport]] = {
    "email": Email,
    "sms:console": ConsoleSms,
    "sms:twilio": TwilioSms,
}


def transport_for(channel: str) -> Transport:
    """The transport of `channel`; SMS goes through the provider `SMS_BACKEND` names."""
    key = f"sms:{settings.SMS_BACKEND}" if channel == Channel.SMS else channel
    return TRANSPORTS[key]()
