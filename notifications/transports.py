"""Channel transports: one class per channel (and SMS provider), chosen from a registry."""

import base64
import json
import logging
import smtplib
from abc import ABC, abstractmethod
from urllib.parse import urlencode

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.core.mail.message import make_msgid

from webhooks import http

from .models import Channel, Notification
from .rendering import email_html

logger = logging.getLogger(__name__)

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


class Email(Transport):
    """Through Django's email backend: SMTP from the environment, the console in `make run`."""

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
            message.send()
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
