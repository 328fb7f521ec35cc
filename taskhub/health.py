"""Liveness (`/healthz`) and readiness (`/readyz`) for load balancers, orchestrators and humans.

`/healthz` only says the process answers. `/readyz` checks each component TaskHub needs and
answers 503 naming the ones that fail. Neither needs auth, so neither says more than a
component's state: no URLs, hosts or error messages that could carry credentials.

`ProbeMiddleware` answers both (and `/metrics`) before the rest of the stack, so probes that
reach a container by its IP are not turned away by ALLOWED_HOSTS, redirected to HTTPS, rate
limited or written to the request log every few seconds.
"""

import functools
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from . import operations

HEARTBEAT_KEY = "taskhub:beat:heartbeat"
Check = dict[str, Any]


def record_beat_heartbeat(now: float | None = None) -> None:
    """Called by the periodic heartbeat task: beat scheduled it and a worker ran it."""
    cache.set(HEARTBEAT_KEY, time.time() if now is None else now, timeout=None)


def beat_heartbeat_age(now: float | None = None) -> float | None:
    """Seconds since the last heartbeat; None if there never was one."""
    beat = cache.get(HEARTBEAT_KEY)
    return None if beat is None else max(0.0, (time.time() if now is None else now) - float(beat))


@functools.cache
def _redis(url: str) -> redis.Redis:
    # A short timeout: readiness must answer quickly when Redis is gone, not hang the probe.
    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def ping_redis(url: str) -> bool:
    try:
        return bool(_redis(url).ping())
    except (redis.RedisError, OSError):
        return False


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:
        return {"ok": False, "error": "unreachable"}
    return {"ok": True, "vendor": connection.vendor}


def check_redis() -> Check:
    if not settings.REDIS_URL:
        return {"ok": True, "note": "not configured: the embedded cache stands in"}
    return {"ok": True} if ping_redis(settings.REDIS_URL) else {"ok": False, "error": "unreachable"}


def check_broker() -> Check:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem"):
        return {"ok": True, "transport": "filesystem", "note": "embedded broker for a single machine"}
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return {"ok": True, "transport": url.partition(":")[0], "note": "not checked"}
    return {"ok": True, "transport": "redis"} if ping_redis(url) else {"ok": False, "error": "unreachable"}


def check_beat() -> Check:
    try:
        age = beat_heartbeat_age()
    except Exception:
        return {"ok": False, "error": "heartbeat store unreachable"}
    limit = settings.READY_BEAT_MAX_AGE_SECONDS
    if age is None:
        return {"ok": False, "error": "no heartbeat yet", "max_age_seconds": limit}
    return {"ok": age <= limit, "age_seconds": round(age, 1), "max_age_seconds": limit}


def check_webhooks() -> Check:
    now = timezone.now()
    backlog = operations.webhook_backlog(now)
    return _backlog_check(backlog, now, settings.READY_WEBHOOK_MAX_DUE_AGE_SECONDS)


def check_notifications() -> Check:
    now = timezone.now()
    backlog = operations.notification_backlog(now)
    if backlog is None:
        return {"ok": True, "note": "not installed"}
    return _backlog_check(backlog, now, settings.READY_NOTIFICATION_MAX_DUE_AGE_SECONDS)


def _backlog_check(backlog: operations.Backlog, now, limit: int) -> Check:
    age = backlog.oldest_due_age(now)
    return {"ok": age <= limit, "due": backlog.due, "oldest_due_age_seconds": round(age, 1), "max_age_seconds": limit}


CHECKS: dict[str, Callable[[], Check]] = {
    "database": check_database,
    "redis": check_redis,
    "broker": check_broker,
    "beat": check_beat,
    "webhooks": check_webhooks,
    "notifications": check_notifications,
}
NEEDS_DATABASE = ("webhooks", "notifications")


def readiness() -> tuple[bool, dict[str, Check]]:
    components: dict[str, Check] = {}
    for name, check in CHECKS.items():
        if name in NEEDS_DATABASE and not components["database"]["ok"]:
            components[name] = {"ok": False, "error": "database unreachable"}
            continue
        try:
            components[name] = check()
        except Exception:
            components[name] = {"ok": False, "error": "check failed"}
    return all(c["ok"] for c in components.values()), components


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    ready, components = readiness()
    failing = [name for name, check in components.items() if not check["ok"]]
    body = {"status": "ok" if ready else "unavailable", "failing": failing, "components": components}
    response = JsonResponse(body, status=200 if ready else 503)
    response["Cache-Control"] = "no-store"
    # A probe every few seconds while a component is down would flood django.request with errors;
    # the body names the component, and monitoring alerts on it (docs/operations.md).
    response._has_been_logged = True
    return response


class ProbeMiddleware:
    """Answer GET /healthz, /readyz and /metrics ahead of host checks, HTTPS redirects and logging."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.views().get(request.path_info)
        if view is None or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        return view(request)

    @staticmethod
    @functools.cache
    def views() -> dict[str, Callable[[HttpRequest], HttpResponse]]:
        from .metrics import metrics_view

        return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view}
