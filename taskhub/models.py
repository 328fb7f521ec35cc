"""Platform models: organizations, their staff, API clients and access tokens."""

import hashlib
import re
import secrets
import uuid
import zoneinfo
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from taskhub.prepared import Prepared, columns, from_row

TOKEN_PREFIX = "thk_"  # noqa: S105 - a public prefix, not a secret
CLIENT_SECRET_PREFIX = "ths_"  # noqa: S105


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not a known IANA time zone, e.g. 'Europe/London'.")


def hash_secret(raw: str) -> str:
    """Secrets here carry ≥256 bits of randomness, so a fast hash is enough to store them."""
    return hashlib.sha256(raw.encode()).hexdigest()


# An origin a browser may match in CSP frame-ancestors: scheme, host (optionally "*." first), port.
FRAME_ANCESTOR = re.compile(r"^https?://(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:\d{1,5})?$")


def validate_frame_ancestors(value: str) -> None:
    bad = [origin for origin in value.split() if not FRAME_ANCESTOR.match(origin)]
    if bad:
        raise ValidationError(f"Not an origin: {', '.join(bad)}. Give one per line, like https://portal.example.com.")


class Organization(models.Model):
    """A tenant: every domain row belongs to exactly one."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    logo = models.ImageField(upload_to="logos/", blank=True)
    brand_color = models.CharField(
        max_length=7,
        default="#1f5fbf",
        validators=[RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a hex colour such as #1f5fbf.")],
    )
    tracker_frame_ancestors = models.TextField(
        blank=True,
        validators=[validate_frame_ancestors],
        help_text="Origins allowed to embed the customer tracker page in a frame, one per line "
        "(https://portal.example.com, https://*.example.com). Empty: no one.",
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="organizations", blank=True
    )
    config_stamp = models.UUIDField(
        default=uuid.uuid4,
        editable=False,
        help_text="Replaced whenever the webhook endpoints or notification rules change: the key of "
        "the copies each process keeps of them (taskhub.configcache).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


class Membership(models.Model):
    """A staff user's access to one organization in the dispatcher admin."""

    class Role(models.TextChoices):
        DISPATCHER = "dispatcher", "Dispatcher"
        ADMIN = "admin", "Administrator"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.DISPATCHER)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["organization", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization}"


class ApiClient(models.Model):
    """OAuth2 client-credentials pair an integrator exchanges for access tokens."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_clients")
    name = models.CharField(max_length=200, blank=True)
    client_id = models.CharField(max_length=64, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name or self.client_id

    @classmethod
    def issue(cls, organization: Organization, name: str = "") -> tuple["ApiClient", str]:
        """Create a client; the clear secret is returned once and never stored."""
        secret = CLIENT_SECRET_PREFIX + secrets.token_urlsafe(32)
        client = cls.objects.create(
            organization=organization,
            name=name,
            client_id="thc_" + secrets.token_hex(12),
            secret_hash=hash_secret(secret),
        )
        return client, secret

    def check_secret(self, raw: str) -> bool:
        return secrets.compare_digest(self.secret_hash, hash_secret(raw))


class AccessTokenQuerySet(models.QuerySet):
    def by_raw(self, raw: str) -> "AccessToken | None":
        """The token with this secret and its organization, in one statement every API request runs,
        compiled once (so it looks in the whole table, whatever this queryset was filtered on)."""
        row = TOKEN_ROW.first(hash_secret(raw))
        if row is None:
            return None
        token = from_row(AccessToken, row, TOKEN_ROW.db, TOKEN_COLUMNS)
        AccessToken.organization.field.set_cached_value(
            token, from_row(Organization, row, TOKEN_ROW.db, ORGANIZATION_COLUMNS, "organization__")
        )
        return token


def token_rows(token_hash: str) -> models.QuerySet:
    # token_hash is unique: no ORDER BY (first() would add one).
    return (
        AccessToken.objects.filter(token_hash=token_hash)
        .order_by()
        .values(*TOKEN_COLUMNS, *(f"organization__{name}" for name in ORGANIZATION_COLUMNS))[:1]
    )


class AccessToken(models.Model):
    """A bearer token; only its SHA-256 is stored, with a short prefix for recognition."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="access_tokens")
    client = models.ForeignKey(ApiClient, null=True, blank=True, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=200, blank=True)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False, help_text="First characters, to recognise it.")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    objects = AccessTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.organization})"

    @classmethod
    def issue(
        cls,
        organization: Organization,
        *,
        ttl: int | None = None,
        name: str = "",
        client: ApiClient | None = None,
    ) -> tuple["AccessToken", str]:
        """Create a token; the clear token is returned once and never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            organization=organization,
            client=client,
            name=name,
            token_hash=hash_secret(raw),
            prefix=raw[:12],
            expires_at=timezone.now() + timedelta(seconds=ttl) if ttl else None,
        )
        return token, raw

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


TOKEN_COLUMNS = columns(AccessToken)
ORGANIZATION_COLUMNS = columns(Organization)
TOKEN_ROW = Prepared(token_rows, "\x00token hash\x00")


class IdempotencyRecord(models.Model):
    """The first response to an organization's Idempotency-Key on one route, replayed to retries."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    route = models.CharField(max_length=255, help_text="Method and path, e.g. 'POST /api/task/'.")
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request body.")
    # Empty only inside the transaction that runs the first request; committed rows are complete.
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The rendered JSON as text: jsonb would reorder its keys, and replays must be verbatim.
    response_body = models.TextField(blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "key", "route"], name="idempotency_record_unique")
        ]

    def __str__(self) -> str:
        return f"{self.route} [{self.key}]"
