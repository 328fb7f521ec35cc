"""Telling an organization's administrators that one of their webhook endpoints was disabled."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse

from taskhub.models import Membership

from .models import Endpoint


def admin_emails(organization_id: int) -> list[str]:
    users = get_user_model().objects.filter(
        memberships__organization_id=organization_id, memberships__role=Membership.Role.ADMIN, is_active=True
    )
    return sorted({email for email in users.values_list("email", flat=True) if email})


def email_endpoint_disabled(endpoint: Endpoint) -> int:
    """One email to the organization's administrators; returns how many were addressed."""
    recipients = admin_emails(endpoint.organization_id)
    if not recipients or endpoint.enabled:
        return 0  # re-enabled meanwhile, or nobody to tell
    link = settings.PUBLIC_BASE_URL + reverse("admin:webhooks_endpoint_change", args=[endpoint.pk])
    send_mail(
        subject=f"[{endpoint.organization.name}] Webhook endpoint disabled: {endpoint.url}",
        message=(
            f"TaskHub stopped sending webhooks to {endpoint.url}.\n\n"
            f"Why: {endpoint.disabled_reason}\n"
            f"Failing since: {endpoint.failing_since or 'n/a'}\n\n"
            "Events keep being recorded. Once the receiver works again, enable the endpoint and use "
            f"'recover' to resend what failed:\n{link}\n"
        ),
        from_email=None,
        recipient_list=recipients,
    )
    return len(recipients)
