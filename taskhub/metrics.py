"""Prometheus metrics at /metrics, behind a bearer token or a network allow-list.

Two kinds, so that every figure is right however many processes and machines run TaskHub:

- Request latency is measured where it happens, in the web process. Under gunicorn several
  processes serve requests: with PROMETHEUS_MULTIPROC_DIR set (the Docker image sets it) each
  writes its samples there and a scrape adds them all up (prometheus_client's multiprocess mode).
- Everything about the outboxes is read from PostgreSQL at scrape time: Celery workers on other
  machines never need to be scraped, and the figures survive any process restarting. They are
  gauges, computed with indexed queries: attempts and notifications over a recent window
  (METRICS_WINDOW_SECONDS), backlog counts, oldest-due ages, endpoint health; Celery queue
  lengths come from the Redis broker.

docs/operations.md explains each metric and the alerts to build on them.
"""

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Model, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from webhooks.models import Attempt, Delivery, Endpoint

from . import health, operations

logger = logging.getLogger(__name__)

REQUEST_LATENCY = Histogram(
    "taskhub_http_request_duration_seconds",
    "Time to answer an HTTP request, by URL route (the pattern, not the path), method and status.",
    ["route", "method", "status"],
    registry=None,  # collected per scrape: from this process, or from every process in multiprocess mode
)


class RequestMetricsMiddleware:
    """Observe each request's latency under its resolver route."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.route or match.view_name) if match else "<unmatched>"
        REQUEST_LATENCY.labels(route, request.method, str(response.status_code)).observe(time.perf_counter() - started)
        return response


def _gauge(name: str, documentation: str, labels: list[str], values: dict[tuple, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=labels)
    for label_values, value in values.items():
        family.add_metric(list(label_values), value)
    return family


def _window_rows(model: type[Model], time_field: str, since) -> QuerySet:
    """Rows of `model` with `time_field` >= since, found from the newest id backwards.

    Ids grow with time, so walking the primary key down to the first older row costs what the
    window holds, and the range below it is never read (no index on the time column needed).
    """
    floor = model.objects.filter(**{f"{time_field}__lt": since}).order_by("-pk").values_list("pk", flat=True).first()
    rows = model.objects.filter(**{f"{time_field}__gte": since})
    return rows if floor is None else rows.filter(pk__gt=floor)


def webhook_families(now) -> Iterator[Metric]:
    since = now - timedelta(seconds=settings.METRICS_WINDOW_SECONDS)
    ok = Q(status_code__gte=200, status_code__lt=300)
    attempts = _window_rows(Attempt, "started_at", since).aggregate(
        succeeded=Count("id", filter=ok),
        failed=Count("id", filter=Q(status_code__isnull=False) & ~ok),
        no_response=Count("id", filter=Q(status_code__isnull=True)),
    )
    yield _gauge(
        "taskhub_webhook_attempts_recent",
        "Webhook delivery attempts started in the last METRICS_WINDOW_SECONDS, by outcome "
        "(succeeded: 2xx; failed: any other status; no_response: timeout, refused, blocked).",
        ["outcome"],
        {(outcome,): n for outcome, n in attempts.items()},
    )
    by_status = dict.fromkeys(Delivery.Status.values, 0)
    by_status.pop(Delivery.Status.SUCCEEDED)  # every message ever sent: not worth counting each scrape
    for status, n in Delivery.objects.filter(status__in=list(by_status)).values_list("status").annotate(Count("id")):
        by_status[status] = n
    yield _gauge(
        "taskhub_webhook_deliveries",
        "Webhook deliveries not yet delivered, by status (pending, failed = retrying, dead = gave up).",
        ["status"],
        {(status,): n for status, n in by_status.items()},
    )
    endpoints = Endpoint.objects.aggregate(
        healthy=Count("id", filter=Q(enabled=True, failing_since__isnull=True)),
        failing=Count("id", filter=Q(enabled=True, failing_since__isnull=False)),
        disabled=Count("id", filter=Q(enabled=False)),
    )
    yield _gauge(
        "taskhub_webhook_endpoints",
        "Webhook endpoints by health: healthy, failing (enabled, last attempts failed), disabled.",
        ["state"],
        {(state,): n for state, n in endpoints.items()},
    )


def notification_families(now) -> Iterator[Metric]:
    Notification = operations.notification_model()
    if Notification is None:
        return
    since = now - timedelta(seconds=settings.METRICS_WINDOW_SECONDS)
    recent = _window_rows(Notification, "created_at", since).values_list("channel", "status").annotate(Count("id"))
    yield _gauge(
        "taskhub_notifications_recent",
        "Notifications created in the last METRICS_WINDOW_SECONDS, by channel and status now.",
        ["channel", "status"],
        {(channel, status): n for channel, status, n in recent},
    )
    waiting = [*Notification.PENDING, Notification.Status.FAILED]
    counts = dict.fromkeys(waiting, 0)
    counts.update(Notification.objects.filter(status__in=waiting).values_list("status").annotate(Count("id")))
    yield _gauge(
        "taskhub_notifications",
        "Notifications not sent, by status (queued, held for quiet hours, failed).",
        ["status"],
        {(status,): n for status, n in counts.items()},
    )


def outbox_families(now) -> Iterator[Metric]:
    backlogs = {"webhooks": operations.webhook_backlog(now), "notifications": operations.notification_backlog(now)}
    backlogs = {name: backlog for name, backlog in backlogs.items() if backlog is not None}
    yield _gauge(
        "taskhub_outbox_due",
        "Outbox rows due for an attempt now and not held by a worker.",
        ["outbox"],
        {(name,): b.due for name, b in backlogs.items()},
    )
    yield _gauge(
        "taskhub_outbox_oldest_due_age_seconds",
        "How long the oldest due outbox row has been waiting (0 when nothing is due).",
        ["outbox"],
        {(name,): b.oldest_due_age(now) for name, b in backlogs.items()},
    )


def celery_families(now) -> Iterator[Metric]:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")):
        client = health._redis(url)
        names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
        pipe = client.pipeline(transaction=False)
        for name in names:
            pipe.llen(name)
        lengths = pipe.execute()
        yield _gauge(
            "taskhub_celery_queue_length",
            "Messages waiting in each Celery queue (not yet taken by a worker).",
            ["queue"],
            {(name,): n for name, n in zip(names, lengths, strict=True)},
        )
    age = health.beat_heartbeat_age()
    if age is not None:
        yield GaugeMetricFamily(
            "taskhub_beat_heartbeat_age_seconds", "Seconds since beat's heartbeat task last ran on a worker.", age
        )


class OutboxCollector(Collector):
    """Scrape-time figures from PostgreSQL and Redis; a failing source is reported, not fatal."""

    sources = {
        "webhooks": webhook_families,
        "notifications": notification_families,
        "outbox": outbox_families,
        "celery": celery_families,
    }

    def collect(self) -> Iterator[Metric]:
        now = timezone.now()
        errors = {}
        for name, source in self.sources.items():
            try:
                families = list(source(now))
            except Exception:
                logger.warning("Metrics source %s failed.", name, exc_info=True)
                errors[(name,)] = 1
                continue
            errors[(name,)] = 0
            yield from families
        yield _gauge("taskhub_metrics_source_error", "1 when a metrics source failed this scrape.", ["source"], errors)


def registry() -> CollectorRegistry:
    scrape = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(scrape)
    else:
        scrape.register(REQUEST_LATENCY)
    scrape.register(OutboxCollector())
    return scrape


def allowed(request: HttpRequest) -> bool:
    """A matching bearer token, or a client address inside METRICS_ALLOWED_NETWORKS."""
    token = settings.METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not allowed(request):
        response = HttpResponse("Metrics need a bearer token or an allowed network.\n", status=403)
        if settings.METRICS_TOKEN:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
