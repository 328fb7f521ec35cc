"""Failed-login limits on the dispatcher admin, on the same Redis counters as the token endpoint.

Failures are counted per username and per client IP (`settings.ADMIN_LOGIN_FAILURE_LIMIT`,
default 10/minute). Past the limit every login for that username or from that IP is refused,
the right password too, until the window ends: passwords cannot be guessed at speed. Like the
API rate limit, the counter fails open when Redis is unreachable.
"""

import time

from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from . import ratelimit

DEFAULT_LIMIT = "10/minute"


class LimitedAdminAuthenticationForm(AdminAuthenticationForm):
    """The admin login form, refusing a username or IP with too many recent failures."""

    def clean(self):
        limit, period = ratelimit.parse_rate(getattr(settings, "ADMIN_LOGIN_FAILURE_LIMIT", DEFAULT_LIMIT))
        keys = self._keys()
        if any(ratelimit.peek(key, period) >= limit for key in keys):
            wait = period - int(time.time()) % period
            raise ValidationError(f"Too many failed logins; try again in {wait} seconds.", code="too_many_attempts")
        try:
            return super().clean()
        except ValidationError:
            for key in keys:
                ratelimit.hit(key, limit, period)
            raise

    def _keys(self) -> list[str]:
        ip = self.request.META.get("REMOTE_ADDR", "") if self.request else ""
        username = (self.data.get("username") or "").strip().lower()[:150]
        return [f"admin-login-fail:ip:{ip}"] + ([f"admin-login-fail:user:{username}"] if username else [])
