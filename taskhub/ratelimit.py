"""Per-organization rate limiting: an atomic fixed-window counter in Redis.

Every authenticated API request counts against its organization's window
(``settings.API_RATE_LIMIT``, e.g. ``"600/minute"``). The counter key carries the window
number, so a window resets by itself and old keys expire. ``INCR`` and ``EXPIRE`` run in one
``MULTI``/``EXEC`` pipeline, so parallel web processes never lose a count.

Without ``REDIS_URL`` (the embedded ``make run`` mode) Django's cache stands in. If Redis is
unreachable the request is let through and the failure logged: a broken limiter must not take
the API down with it.
"""

import functools
import logging
import math
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

from .auth import ApiPrincipal

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
REQUEST_ATTR = "taskhub_ratelimit"  # where the throttle leaves the window for the headers middleware


@dataclass(frozen=True)
class Window:
    """The state of one counter after a hit."""

    limit: int
    count: int
    reset_at: int  # unix time the window ends

    @property
    def allowed(self) -> bool:
        return self.count <= self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def seconds_to_reset(self, now: float | None = None) -> int:
        return max(1, math.ceil(self.reset_at - (time.time() if now is None else now)))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.seconds_to_reset()),
        }


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/minute' -> (600, 60). Units: second, minute, hour, day (first letter counts)."""
    count, _, unit = rate.partition("/")
    unit = unit.strip().lower()
    if not count.strip().isdigit() or not unit or unit[0] not in PERIODS:
        raise ValueError(f"Rate '{rate}' is not like '600/minute'.")
    return int(count), PERIODS[unit[0]]


@functools.cache
def redis_client(url: str) -> redis.Redis:
    # Short timeouts: a stalled Redis should cost a request milliseconds, not seconds.
    return redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)


def hit(key: str, limit: int, period: int, now: float | None = None) -> Window | None:
    """Count one hit of `key`; None when the counter store is unavailable (fail open)."""
    now = time.time() if now is None else now
    number = int(now // period)
    window_key = f"taskhub:rl:{key}:{number}"
    reset_at = (number + 1) * period
    try:
        count = _incr(window_key, period)
    except (redis.RedisError, OSError):
        logger.warning("Rate limit store unavailable; letting the request through.", exc_info=True)
        return None
    return Window(limit=limit, count=count, reset_at=reset_at)


def peek(key: str, period: int, now: float | None = None) -> int:
    """The current count of `key` without counting a hit (0 when the store is unavailable)."""
    now = time.time() if now is None else now
    window_key = f"taskhub:rl:{key}:{int(now // period)}"
    try:
        if settings.REDIS_URL:
            return int(redis_client(settings.REDIS_URL).get(window_key) or 0)
        return int(cache.get(window_key) or 0)
    except (redis.RedisError, OSError):
        logger.warning("Rate limit store unavailable; letting the request through.", exc_info=True)
        return 0


def _incr(window_key: str, period: int) -> int:
    if settings.REDIS_URL:
        pipe = redis_client(settings.REDIS_URL).pipeline(transaction=True)
        pipe.incr(window_key)
        pipe.expire(window_key, period + 1)
        count, _ = pipe.execute()
        return int(count)
    # Embedded mode: one process family on one machine; the cache's add+incr is close enough.
    cache.add(window_key, 0, timeout=period + 1)
    try:
        return cache.incr(window_key)
    except ValueError:  # expired between add and incr
        cache.set(window_key, 1, timeout=period + 1)
        return 1


class OrganizationRateThrottle(BaseThrottle):
    """DRF throttle: one shared budget per organization, from settings.API_RATE_LIMIT."""

    def allow_request(self, request, view) -> bool:
        principal = request.user
        if not isinstance(principal, ApiPrincipal):
            return True  # unauthenticated requests are refused before they cost anything
        limit, period = parse_rate(settings.API_RATE_LIMIT)
        window = hit(f"org:{principal.organization.pk}", limit, period)
        if window is None:
            return True
        setattr(request._request, REQUEST_ATTR, window)
        self.window = window
        return window.allowed

    def wait(self) -> float | None:
        window = getattr(self, "window", None)
        return window.seconds_to_reset() if window else None
