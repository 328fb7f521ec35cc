"""Standard Webhooks signatures: what a consumer's `standardwebhooks.Webhook.verify` checks."""

from datetime import datetime

from standardwebhooks.webhooks import Webhook


def signature_header(*, msg_id: str, timestamp: datetime, body: str, secrets: list[str]) -> str:
    """`v1,<base64>` per live secret, space-separated."""
    return " ".join(Webhook(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body) for secret in secrets)


def signed_headers(*, msg_id: str, timestamp: datetime, body: str, secrets: list[str]) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signature_header(msg_id=msg_id, timestamp=timestamp, body=body, secrets=secrets),
    }
